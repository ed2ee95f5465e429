"""Synthetic card transactions matching schemas/features_v2.json, with learnable fraud signal."""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

LABEL = "is_fraud"  # the label column, as schemas/features_v2.json names it
CHANNELS = ["pos", "online", "mobile", "atm"]
CATEGORIES = ["grocery", "restaurants", "fuel", "electronics", "online_retail", "travel",
              "entertainment", "health", "jewelry", "gambling", "cash_advance", "other"]
# Mix of merchant categories for card-present and card-not-present transactions.
_MIX_PRESENT = np.array([30, 20, 12, 5, 0, 3, 8, 8, 2, 2, 0, 10], dtype=float)
_MIX_REMOTE = np.array([6, 6, 0, 16, 40, 12, 8, 3, 3, 4, 0, 2], dtype=float)
_AMOUNT_FACTOR = dict(zip(CATEGORIES, [0.8, 0.7, 0.9, 3.0, 1.3, 4.0, 1.0, 1.2, 5.0, 1.5, 2.0, 1.0]))
_CATEGORY_RISK = dict(zip(CATEGORIES, [0.0, 0.0, 0.2, 0.7, 0.5, 0.4, 0.1, 0.0, 1.0, 1.0, 0.9, 0.2]))
_INTERCEPT = -8.55
_CONCEPT_INTERCEPT = -5.75

# What --drift shifts: larger amounts, more online retail and electronics, less trusted devices and
# bursts of transactions, which make fraud more frequent; and, leaving the fraud rate as it is, higher
# spending habits, busier days, more weekend shopping and longer distances from home. The fraud
# mechanism itself is unchanged (covariate shift).
DRIFTED_FEATURES = ("amount", "merchant_category", "device_trust_score", "txn_count_1h", "amount_avg_30d",
                    "txn_count_24h", "day_of_week", "distance_from_home_km")

# What --concept-drift changes: which transactions are fraud, not what the transactions look like (concept
# drift). The new pattern puts fraud where the old one does not look: amounts close to the card's 30-day
# average, card-present payments on trusted devices, daytime, low-risk categories (grocery, restaurants,
# health, fuel), established accounts, near home. Every feature is drawn exactly as before; only the
# probability of fraud is mixed, (1 - concept) * old + concept * new, as if a `concept` share of the rows
# followed the new pattern. Both patterns give about 2 % fraud without drift, so the fraud rate stays put.


def generate(rows: int, seed: int = 0, drift: float = 0.0, concept: float = 0.0) -> pd.DataFrame:
    """`rows` transactions; `drift` (0 = none, 1 = strong) shifts DRIFTED_FEATURES; `concept` (0 = the
    original fraud pattern, 1 = the new one) moves the label only."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if drift < 0:
        raise ValueError(f"drift must be >= 0, got {drift}")
    if not 0 <= concept <= 1:
        raise ValueError(f"concept must be between 0 and 1, got {concept}")

    def rng(stream: str) -> np.random.Generator:
        """One random stream per quantity, so drifting one feature leaves the others as they were."""
        return np.random.default_rng([seed, zlib.crc32(stream.encode())])

    channel = rng("channel").choice(CHANNELS, size=rows, p=[0.55, 0.30, 0.10, 0.05])
    present = rng("card_present").random(rows)
    card_present = np.where(np.isin(channel, ["pos", "atm"]), present < 0.97, present < 0.02)

    remote_mix = _MIX_REMOTE.copy()
    remote_mix[CATEGORIES.index("online_retail")] *= 1 + drift
    remote_mix[CATEGORIES.index("electronics")] *= 1 + 2 * drift
    category = np.where(
        card_present,
        rng("category_present").choice(CATEGORIES, size=rows, p=_MIX_PRESENT / _MIX_PRESENT.sum()),
        rng("category_remote").choice(CATEGORIES, size=rows, p=remote_mix / remote_mix.sum()),
    )
    category = np.where(channel == "atm", "cash_advance", category)

    amount_avg_30d = np.round(rng("amount_avg_30d").lognormal(3.8 + 2 * drift, 0.6, rows), 2)
    factor = np.vectorize(_AMOUNT_FACTOR.get)(category)
    amount = amount_avg_30d * factor * rng("amount").lognormal(0.0, 0.7, rows) * (1 + drift)
    amount = np.round(np.clip(amount, 0.01, 50000.0), 2)

    hour = np.mod(np.round(rng("hour_of_day").normal(14, 4.5, rows)), 24).astype("int64")
    day = rng("day_of_week").integers(0, 7, rows, dtype="int64")
    weekend = rng("weekend").random(rows) < 4 * drift / (1 + 4 * drift)  # moved to Saturday or Sunday
    day = np.where(weekend, 5 + day % 2, day)
    count_1h = rng("txn_count_1h").poisson(0.3 * (1 + 2 * drift), rows).astype("int64")
    count_24h = (count_1h + rng("txn_count_24h").poisson(3.0 * (1 + 2 * drift), rows)).astype("int64")
    account_age = np.clip(rng("account_age_days").exponential(1500, rows), 0, 36500).astype("int64")
    international = rng("is_international").random(rows) < 0.06
    distance = (rng("distance").lognormal(1.5 + 4 * drift, 1.2, rows)
                + international * rng("distance_abroad").uniform(300, 9000, rows))
    distance = np.round(np.clip(distance, 0, 20050.0), 1)
    distance[rng("distance_missing").random(rows) < 0.05] = np.nan
    trust = np.clip(rng("device_trust_score").beta(5, 2, rows) - 0.3 * drift, 0, 1).round(3)
    trust[card_present] = np.nan

    risk = np.vectorize(_CATEGORY_RISK.get)(category)
    logit = (
        _INTERCEPT
        + 2.0 * np.log(amount / np.maximum(amount_avg_30d, 0.01))
        + 1.2 * count_1h
        + 1.5 * international
        + 2.0 * ((hour >= 0) & (hour <= 5))
        + 2.5 * risk
        + 1.0 * ~card_present
        - 8.0 * (np.nan_to_num(trust, nan=0.7) - 0.7)
        - 0.3 * np.log1p(account_age / 30)
        + 0.15 * np.log1p(np.nan_to_num(distance, nan=5.0))
    )
    new_logit = (
        _CONCEPT_INTERCEPT
        - 3.0 * np.abs(np.log(amount / np.maximum(amount_avg_30d, 0.01)))
        + 1.5 * card_present
        + 4.0 * (np.nan_to_num(trust, nan=0.9) - 0.7)
        + 1.5 * ((hour >= 9) & (hour <= 17))
        - 3.0 * risk
        + 0.3 * np.log1p(account_age / 30)
        - 0.3 * np.log1p(np.nan_to_num(distance, nan=5.0))
    )
    p_fraud = (1 - concept) / (1 + np.exp(-logit)) + concept / (1 + np.exp(-new_logit))
    is_fraud = (rng("is_fraud").random(rows) < p_fraud).astype("int64")

    return pd.DataFrame({
        "amount": amount,
        "amount_avg_30d": amount_avg_30d,
        "hour_of_day": hour,
        "day_of_week": day,
        "txn_count_1h": count_1h,
        "txn_count_24h": count_24h,
        "account_age_days": account_age,
        "distance_from_home_km": distance,
        "device_trust_score": trust,
        "merchant_category": category.astype(object),
        "channel": channel.astype(object),
        "card_present": card_present,
        "is_international": international,
        LABEL: is_fraud,
    })
