"""The drift check's decision: the production model's logged inputs scored against the reference profile of its
training split (PSI, and Kolmogorov-Smirnov for numeric features), the retraining rule, and the gauges it pushes.

The profile (components.profile) holds per feature the training split's bins and their shares, nulls a bin of
their own. The check streams the window of the log (components.drift.inference_log) batch by batch, counts the
production version's rows per bin with `index_in` and vectorised comparisons, and scores each feature on the
summed counts: memory is bounded by a batch, whatever the window holds.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np

from components import inference_log
from components.drift import DriftError
from components.drift.inference_log import batches
from components.numbers import finite_number
from components.profile import ProfileError, read_profile

EPSILON = 1e-4  # share given to an empty bin before taking logs: PSI stays finite
CONFIG_KEYS = {"min_samples": int, "drift_threshold": float, "drifted_share": float, "window_hours": float,
               "bins": int}


def check_config(doc, source: str = "drift config") -> dict:
    """The drift settings with their types; an error naming the key and value otherwise."""
    if not isinstance(doc, dict):
        raise DriftError(f"{source}: expected a mapping of {sorted(CONFIG_KEYS)}")
    unknown, missing = sorted(set(doc) - set(CONFIG_KEYS)), sorted(set(CONFIG_KEYS) - set(doc))
    if unknown or missing:
        raise DriftError(f"{source}: unknown key(s) {unknown} / missing key(s) {missing}; "
                         f"expected {sorted(CONFIG_KEYS)}")
    out = {}
    for key, kind in CONFIG_KEYS.items():
        value = doc[key]
        ok = finite_number(value)
        if kind is int:
            ok = ok and float(value).is_integer() and value >= 1
        if not ok or value < 0:
            raise DriftError(f"{source}: {key} must be a {'positive integer' if kind is int else 'number >= 0'}, "
                             f"got {value!r}")
        out[key] = kind(value)
    if out["drifted_share"] > 1:
        raise DriftError(f"{source}: drifted_share is a share of the features (0 to 1), got {out['drifted_share']}")
    if out["window_hours"] <= 0:
        raise DriftError(f"{source}: window_hours must be > 0, got {out['window_hours']}")
    return out


# --- scoring ----------------------------------------------------------------------------------------------

def current_counts(column, spec: dict) -> np.ndarray:
    """Counts of a pyarrow column on the reference bins: value bins, [unseen,] null (chunk by chunk)."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    size = len(spec["edges"]) + 2 if spec["kind"] == "numeric" else len(spec["values"]) + 2
    return sum((_chunk_counts(chunk, spec) for chunk in chunks), np.zeros(size, dtype=np.int64))


def _chunk_counts(chunk, spec: dict) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if spec["kind"] == "numeric":
        # bin k holds edges[k-1] <= x < edges[k] (np.searchsorted side="right"); counting x >= edge for each
        # edge gives the same counts in a few vectorised passes, without a binary search per value
        x = chunk.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN
        present = len(x) - int(np.count_nonzero(np.isnan(x)))  # NaN in a request reads as null
        at_least = [present, *(int(np.count_nonzero(x >= edge)) for edge in spec["edges"]), 0]
        return np.array([*np.subtract(at_least[:-1], at_least[1:]), len(x) - present], dtype=np.int64)
    n = len(spec["values"])
    if pa.types.is_dictionary(chunk.type):  # bin the dictionary once, then count its indices
        per_entry = np.bincount(pc.fill_null(chunk.indices, len(chunk.dictionary)).to_numpy(zero_copy_only=False),
                                minlength=len(chunk.dictionary) + 1)
        codes = np.append(_codes(chunk.dictionary, spec["values"]), n + 1)
        return np.bincount(codes, weights=per_entry, minlength=n + 2).astype(np.int64)
    return np.bincount(_codes(chunk, spec["values"]), minlength=n + 2)


def _codes(array, values: list) -> np.ndarray:
    """Bin of each value: its index among the reference values, len(values) when unseen, +1 when null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(values)
    if len(array) == 0 or pa.types.is_null(array.type):
        return np.full(len(array), n + 1, dtype=np.int64)
    try:
        value_set = pa.array(values).cast(array.type) if values else pa.array([], array.type)
        idx = pc.index_in(array, value_set=value_set)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # another type than in training: every value unseen
        idx = pa.nulls(len(array), pa.int32())
    codes = pc.fill_null(idx, n).to_numpy(zero_copy_only=False).astype(np.int64)
    codes[array.is_null().to_numpy(zero_copy_only=False)] = n + 1
    return codes


def reference_shares(spec: dict) -> np.ndarray:
    """Reference shares on the same bins as current_counts (an unseen bin of 0 for categoricals)."""
    unseen = [] if spec["kind"] == "numeric" else [0.0]
    return np.array([*spec["shares"], *unseen, spec["null_share"]], dtype=float)


def _smoothed(shares: np.ndarray) -> np.ndarray:
    shares = np.maximum(shares, EPSILON)
    return shares / shares.sum()


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors on the same bins; empty bins smoothed, never inf."""
    r, c = _smoothed(reference), _smoothed(current)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_on_bins(reference: np.ndarray, current: np.ndarray) -> float | None:
    """Kolmogorov-Smirnov distance of the non-null values on the bins; None when either side has none."""
    r, c = reference[:-1], current[:-1]
    if r.sum() <= 0 or c.sum() <= 0:
        return None
    return float(np.max(np.abs(np.cumsum(r / r.sum()) - np.cumsum(c / c.sum()))))


def score(tables, profile: dict) -> tuple[dict, int]:
    """(per feature: PSI, KS (numeric), and the reference and current shares on the bins; rows scored) of a
    pyarrow Table or an iterable of them (batches of the log): counts add up batch by batch."""
    import pyarrow as pa

    tables = [tables] if isinstance(tables, pa.Table) else tables
    counts, rows = {}, 0
    for table in tables:
        rows += table.num_rows
        for feature, spec in profile["features"].items():
            found = current_counts(table[feature], spec)
            counts[feature] = found if feature not in counts else counts[feature] + found
    out = {}
    for feature, spec in profile["features"].items():
        reference = reference_shares(spec)
        current = counts[feature] / rows if rows else np.zeros(len(reference))
        out[feature] = {"psi": psi(reference, current) if rows else 0.0,
                        "ks": ks_on_bins(reference, current) if spec["kind"] == "numeric" else None,
                        "reference": reference.tolist(), "current": current.tolist()}
    return out, rows


def decide(samples: int, scores: dict[str, float], config: dict) -> dict:
    """The guide's rule: no decision under min_samples rows; retrain when more than drifted_share of the
    features score above drift_threshold."""
    drifted = sorted((f for f, s in scores.items() if s > config["drift_threshold"]), key=lambda f: -scores[f])
    share = len(drifted) / len(scores) if scores else 0.0
    if samples < config["min_samples"]:
        return {"decision": "insufficient_data", "drifted_features": [], "drifted_share": 0.0,
                "reason": f"waiting for more data: {samples} of {config['min_samples']}"}
    if share > config["drifted_share"]:
        return {"decision": "retrain", "drifted_features": drifted, "drifted_share": share,
                "reason": f"{len(drifted)} of {len(scores)} features drifted (PSI > {config['drift_threshold']}): "
                          f"share {share:.2f} > {config['drifted_share']}"}
    return {"decision": "no_drift", "drifted_features": drifted, "drifted_share": share,
            "reason": f"{len(drifted)} of {len(scores)} features drifted (PSI > {config['drift_threshold']}): "
                      f"share {share:.2f} <= {config['drifted_share']}"}


def evaluate(tables, profile: dict, config: dict) -> tuple[dict, dict]:
    """(result without context, per-feature detail) for logged rows: a pyarrow Table, or batches of them."""
    detail, rows = score(tables, profile)
    scores = {f: round(d["psi"], 6) for f, d in detail.items()}
    verdict = decide(rows, scores, config)
    result = {"decision": verdict["decision"], "samples": rows,
              "drifted_share": round(verdict["drifted_share"], 6), "drifted_features": verdict["drifted_features"],
              "scores": scores, "reason": verdict["reason"],
              "ks": {f: round(d["ks"], 6) for f, d in detail.items() if d["ks"] is not None}}
    return result, detail


def window_end(text: str) -> datetime | None:
    """The end of the window a check reads: None (now) for "", else an ISO 8601 time with its UTC offset."""
    try:
        return inference_log.window_end(text)
    except inference_log.LogError as exc:
        raise DriftError(str(exc)) from exc


def check(log_uri: str, tracking_uri: str, model_name: str, config: dict, now: datetime | None = None,
          pushgateway_url: str | None = None, registry_uri: str = "") -> tuple[dict, dict, dict]:
    """One drift check of the production model: (result, per-feature detail, profile)."""
    try:
        version, profile = read_profile(tracking_uri, model_name, registry_uri=registry_uri)
    except ProfileError as exc:
        raise DriftError(str(exc)) from exc
    kinds = {f: s["kind"] for f, s in profile["features"].items()}
    skipped = []  # streamed: memory bounded by a batch, whatever the window holds
    result, detail = evaluate(batches(log_uri, model_name, version, kinds, config["window_hours"], now, skipped),
                              profile, config)
    result.update({"model_name": model_name, "model_version": version, "window_hours": config["window_hours"],
                   "thresholds": {k: config[k] for k in ("min_samples", "drift_threshold", "drifted_share")},
                   "skipped_files": skipped})
    result["pushgateway"] = push(pushgateway_url, result) if pushgateway_url else None
    return result, detail, profile


# --- outputs ----------------------------------------------------------------------------------------------

def gauges(result: dict):
    """The check's result as Prometheus gauges, in a registry of their own."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    model, version = result["model_name"], result["model_version"]
    scores = Gauge("model_feature_drift_score", "PSI of a feature against the training reference",
                   ["model", "model_version", "feature"], registry=registry)
    for feature, value in result["scores"].items():
        scores.labels(model, version, feature).set(value)
    Gauge("model_drift_samples", "Logged rows the drift check scored", ["model", "model_version"],
          registry=registry).labels(model, version).set(result["samples"])
    Gauge("model_drift_retrain_due", "1 when the drift check found retraining due", ["model", "model_version"],
          registry=registry).labels(model, version).set(1 if result["decision"] == "retrain" else 0)
    return registry


def push(url: str, result: dict, timeout: float = 10.0) -> dict:
    """Push the scores to a Prometheus Pushgateway under job=<model name>, replacing that group (its
    push_time_seconds is when the check last ran); a failure is logged and returned."""
    from components import pushgateway

    return pushgateway.push(url, result["model_name"], gauges(result), timeout=timeout)
