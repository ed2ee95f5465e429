"""The online gates: the `online` section of configs/quality_gates.yaml, checked on live canary traffic by
the AnalysisTemplate `model-canary-analysis` (manifests/base/analysis-template.yaml).

    online:
      max_latency_p95_seconds: 0.1          # the canary's p95 request latency
      max_error_rate: 0.01                  # the canary's server errors (5xx) / requests
      max_client_error_rate_increase: 0.02  # canary 4xx ratio minus the stable pods' 4xx ratio
      max_shed_rate_increase: 0.02          # canary load-shed (503) ratio minus the stable pods'
      max_flag_rate_ratio_drift: 2          # observed / expected flag rate ratio within [1/2, 2]
      min_flagged_for_flag_rate: 20         # fewer rows decided positive on either side: inconclusive

The first four keys are required (the file is the one place for these values); the flag-rate keys default to
the values above. The deploy step passes them, with the model's name and version and its expected flag rate
ratio, as the Rollout's analysis arguments (analysis_args): key `x_y` is argument `x-y`.
"""
from __future__ import annotations

from decimal import Decimal

from components.gates import GateConfigError
from components.numbers import finite_number, is_int, whole

REQUIRED = ("max_latency_p95_seconds", "max_error_rate", "max_client_error_rate_increase", "max_shed_rate_increase")
DEFAULTS = {"max_flag_rate_ratio_drift": 2, "min_flagged_for_flag_rate": 20}
ONLINE_KEYS = REQUIRED + tuple(DEFAULTS)
RATIOS = {"max_error_rate", "max_client_error_rate_increase", "max_shed_rate_increase"}


def _check_value(key: str, value, source: str) -> None:
    if key == "min_flagged_for_flag_rate":
        if not is_int(value) or value < 1:
            raise GateConfigError(f"{source}: online.{key} must be a whole number of rows decided positive, at "
                                  f"least 1; got {value!r}")
        return
    if not finite_number(value):
        raise GateConfigError(f"{source}: online.{key} must be a finite number, got {value!r}")
    if key == "max_flag_rate_ratio_drift":
        if value <= 1:
            raise GateConfigError(f"{source}: online.{key} is a factor r (observed / expected flag rate ratio "
                                  f"within [1/r, r]), so above 1; got {value!r}")
    elif key in RATIOS:
        if not 0 <= value <= 1:
            raise GateConfigError(f"{source}: online.{key} is a ratio of requests (0.01 is 1 %), so between 0 "
                                  f"and 1; got {value!r}")
    elif value <= 0:
        raise GateConfigError(f"{source}: online.{key} must be a positive number of seconds, got {value!r}")


def check_online(doc: dict, source: str = "quality gates") -> dict:
    """The `online` section of the gates document `doc`, defaults filled in; a malformed one raises
    GateConfigError naming `source`, the key and the value."""
    online = doc.get("online") if isinstance(doc, dict) else None
    if not isinstance(online, dict):
        raise GateConfigError(f"{source}: expected an 'online' section mapping {list(ONLINE_KEYS)} to numbers, "
                              f"got {online!r}")
    unknown = sorted(set(online) - set(ONLINE_KEYS))
    if unknown:
        raise GateConfigError(f"{source}: unknown key(s) {unknown} in 'online'; allowed: {list(ONLINE_KEYS)}")
    missing = [key for key in REQUIRED if key not in online]
    if missing:
        raise GateConfigError(f"{source}: 'online' lacks {missing}")
    checked = {**DEFAULTS, **online}
    checked["min_flagged_for_flag_rate"] = whole(checked["min_flagged_for_flag_rate"])  # KFP passes 20 as 20.0
    for key in ONLINE_KEYS:
        _check_value(key, checked[key], source)
    return {key: checked[key] for key in ONLINE_KEYS}


def online_of(doc: dict, source: str = "quality gates") -> dict | None:
    """The checked `online` section of the gates document, or None when it has none (the guide's own file)."""
    return check_online(doc, source) if isinstance(doc, dict) and "online" in doc else None


def plain_number(value: float) -> str:
    """A number as an expr-lang and PromQL literal for the analysis: plain decimal, never `1e-05`."""
    return format(Decimal(repr(value)), "f")


def analysis_args(name: str, version, online: dict, expected_flag_rate_ratio: float) -> dict[str, str]:
    """The analysis arguments of model `name` version `version` under the checked `online` section;
    `expected_flag_rate_ratio` is the version's flag rate over production's on its holdout (a positive number)."""
    if not name or any(c in name for c in '"\\\n'):
        raise ValueError(f"model name {name!r} cannot be put in a PromQL label matcher")
    if not str(version).isdigit():
        raise ValueError(f"model version must be a registry version number, got {version!r}")
    return {"model-name": name, "model-version": str(version),
            "expected-flag-rate-ratio": plain_number(expected_flag_rate_ratio),
            **{key.replace("_", "-"): plain_number(online[key]) for key in ONLINE_KEYS}}
