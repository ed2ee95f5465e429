"""The online gates: the `online` section of configs/quality_gates.yaml, checked on live canary traffic by
the AnalysisTemplate `model-canary-analysis` (manifests/base/analysis-template.yaml).

    online:
      max_latency_p95_seconds: 0.1          # the canary's p95 request latency
      max_error_rate: 0.01                  # the canary's server errors (5xx) / requests
      max_client_error_rate_increase: 0.02  # canary 4xx ratio minus the stable pods' 4xx ratio
      max_shed_rate_increase: 0.02          # canary load-shed (503) ratio minus the stable pods'

Every key is required (the file is the one place for these values). The deploy step passes them, with the
model's name and version, as the Rollout's analysis arguments (analysis_args): key `x_y` is argument `x-y`.
"""
from __future__ import annotations

from decimal import Decimal

from components.gates import GateConfigError
from components.numbers import finite_number

ONLINE_KEYS = ("max_latency_p95_seconds", "max_error_rate", "max_client_error_rate_increase",
               "max_shed_rate_increase")
RATIOS = {"max_error_rate", "max_client_error_rate_increase", "max_shed_rate_increase"}


def check_online(doc: dict, source: str = "quality gates") -> dict:
    """The `online` section of the gates document `doc`; a malformed one raises GateConfigError naming
    `source`, the key and the value."""
    online = doc.get("online") if isinstance(doc, dict) else None
    if not isinstance(online, dict):
        raise GateConfigError(f"{source}: expected an 'online' section mapping {list(ONLINE_KEYS)} to numbers, "
                              f"got {online!r}")
    unknown = sorted(set(online) - set(ONLINE_KEYS))
    if unknown:
        raise GateConfigError(f"{source}: unknown key(s) {unknown} in 'online'; allowed: {list(ONLINE_KEYS)}")
    missing = [key for key in ONLINE_KEYS if key not in online]
    if missing:
        raise GateConfigError(f"{source}: 'online' lacks {missing}")
    for key in ONLINE_KEYS:
        value = online[key]
        if not finite_number(value):
            raise GateConfigError(f"{source}: online.{key} must be a finite number, got {value!r}")
        if key in RATIOS and not 0 <= value <= 1:
            raise GateConfigError(f"{source}: online.{key} is a ratio of requests (0.01 is 1 %), so between 0 "
                                  f"and 1; got {value!r}")
        if key not in RATIOS and value <= 0:
            raise GateConfigError(f"{source}: online.{key} must be a positive number of seconds, got {value!r}")
    return {key: online[key] for key in ONLINE_KEYS}


def online_of(doc: dict, source: str = "quality gates") -> dict | None:
    """The checked `online` section of the gates document, or None when it has none (the guide's own file)."""
    return check_online(doc, source) if isinstance(doc, dict) and "online" in doc else None


def plain_number(value: float) -> str:
    """A number as an expr-lang literal for the analysis conditions: plain decimal, never `1e-05`."""
    return format(Decimal(repr(value)), "f")


def analysis_args(name: str, version, online: dict) -> dict[str, str]:
    """The analysis arguments of model `name` version `version` under the checked `online` section."""
    if not name or any(c in name for c in '"\\\n'):
        raise ValueError(f"model name {name!r} cannot be put in a PromQL label matcher")
    if not str(version).isdigit():
        raise ValueError(f"model version must be a registry version number, got {version!r}")
    return {"model-name": name, "model-version": str(version),
            **{key.replace("_", "-"): plain_number(online[key]) for key in ONLINE_KEYS}}
