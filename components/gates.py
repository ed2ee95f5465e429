"""The quality gates file: its format, read and checked into Gates (the bounds per metric and the slices).

The gates file (configs/quality_gates.yaml) has the guide's format:

    metrics:
      accuracy:
        minimum: 0.92
        comparison: "gte"     # also >= the baseline's accuracy
      latency_p95_ms:
        maximum: 50
        comparison: "lte"     # also <= the baseline's, with some slack (the gate step's LATENCY_TOLERANCE)
    slices:                   # optional: the per-slice table and max_slice_recall_gap
      columns: [channel]      # default: the categorical and boolean features
      min_rows: 100           # smaller slices are reported, not gated (default 100)
      min_positives: 20       # as are slices with fewer rows of the positive class (default 0)

    live:                     # optional: the monitoring run's gates on predictions joined with outcomes
      min_labelled: 500       # fewer labelled rows (or positives): insufficient_labels, no verdict
      min_labelled_positives: 200
      window_days: 30         # predictions made between label_maturity_days + window_days and
      label_maturity_days: 0  # label_maturity_days ago
      implicit_negative_after_days: 90   # optional: a let-through row without outcome after 90 days is negative
      metrics:                # same format as above; a comparison's baseline is the version's metric.* tag
        recall: {minimum: 0.3, comparison: "gte", tolerance: 0.1}

`tolerance` (absolute, in the metric's unit) is slack for `comparison`. The `online` section is the deploy
step's (components.deploy.online checks it). Evaluation reads the slices from here, the gate step the bounds,
the live performance check the `live` section.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from components.metrics import BASELINE_ONLY, METRICS, Slices
from components.numbers import finite_number, is_int, whole

GATE_KEYS = {"minimum", "maximum", "comparison", "tolerance"}
LATENCY_TOLERANCE = 0.20  # a comparison on a latency_* metric without `tolerance` allows 20 % over the baseline
NOT_APPLICABLE = "not applicable: no baseline"
# What the live check measures on predictions joined with their outcomes, and the live gates may gate; the
# baseline of a comparison is the version's own value measured at registration (its metric.* tag).
LIVE_METRICS = ("precision", "recall", "f1", "flag_rate", "expected_cost", "roc_auc", "average_precision")
# How much truth a live verdict needs and which predictions count (the live section's keys besides metrics).
LIVE_DEFAULTS = {"min_labelled": 500, "min_labelled_positives": 200, "window_days": 30.0,
                 "label_maturity_days": 0.0}
LIVE_OPTIONAL = ("implicit_negative_after_days",)  # absent: a row without outcome is never labelled


class GateConfigError(ValueError):
    """The gates file is malformed."""


@dataclass(frozen=True)
class Gates:
    metrics: dict[str, dict]
    slices: Slices = field(default_factory=Slices)


def _check_slices(doc, source: str) -> Slices:
    if doc is None:
        return Slices()
    if not isinstance(doc, dict) or set(doc) - {"columns", "min_rows", "min_positives"}:
        raise GateConfigError(f"{source}: 'slices' may hold 'columns' (a list of feature columns), 'min_rows' and "
                              f"'min_positives' (ints), got {doc!r}")
    columns = doc.get("columns")
    if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
        raise GateConfigError(f"{source}: slices.columns must be a list of feature column names, got {columns!r}")
    sizes = {"min_rows": doc.get("min_rows", Slices.min_rows), "min_positives": doc.get("min_positives", 0)}
    sizes = {k: whole(v) for k, v in sizes.items()}
    for key, value in sizes.items():
        if not is_int(value) or value < 0:
            raise GateConfigError(f"{source}: slices.{key} must be an int >= 0, got {value!r}")
    return Slices(columns=columns, **sizes)


def _check_metric_gates(gates, source: str, section: str, known: tuple[str, ...]) -> dict:
    """A `metrics:` mapping of metric -> minimum / maximum / comparison / tolerance, checked."""
    for metric, gate in gates.items():
        path = f"{section}.{metric}"
        if metric not in known:
            raise GateConfigError(f"{source}: unknown metric {metric!r} in '{section}'; known metrics: {list(known)}")
        if not isinstance(gate, dict) or not gate:
            raise GateConfigError(f"{source}: {path} must map some of {sorted(GATE_KEYS)} to values, got {gate!r}")
        unknown = sorted(set(gate) - GATE_KEYS)
        if unknown:
            raise GateConfigError(f"{source}: unknown key(s) {unknown} in '{path}'; allowed: {sorted(GATE_KEYS)}")
        if gate.get("comparison", "gte") not in ("gte", "lte"):
            raise GateConfigError(f"{source}: {path}.comparison must be 'gte' or 'lte', got {gate['comparison']!r}")
        for key, value in gate.items():
            if key != "comparison" and not finite_number(value):
                raise GateConfigError(f"{source}: {path}.{key} must be a finite number, got {value!r}")
        if "tolerance" in gate and "comparison" not in gate:
            raise GateConfigError(f"{source}: {path}.tolerance is slack against the baseline, so {path} needs "
                                  f"'comparison' too; got tolerance {gate['tolerance']!r} without it")
        if gate.get("tolerance", 0) < 0:
            raise GateConfigError(f"{source}: {path}.tolerance must be >= 0, got {gate['tolerance']!r}")
    return gates


def check_gates(doc: dict, source: str = "quality gates") -> Gates:
    """The gates; reject unknown metrics, keys, comparisons and bad values, naming the file."""
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict) or not doc["metrics"]:
        hint = " ('gates:' is now 'metrics:', and 'baseline:' is 'comparison:')" if isinstance(doc, dict) and \
            "gates" in doc else ""
        raise GateConfigError(f"{source}: expected a top-level key 'metrics' mapping each metric to minimum / "
                              f"maximum / comparison{hint}")
    unknown = sorted(set(doc) - {"metrics", "slices", "online", "live"})  # online: components.deploy.online
    if unknown:
        raise GateConfigError(f"{source}: unknown top-level key(s) {unknown}; allowed: metrics, slices, online, live")
    check_live(doc.get("live"), source)
    gates = _check_metric_gates(doc["metrics"], source, "metrics", METRICS)
    return Gates(metrics=gates, slices=_check_slices(doc.get("slices"), source))


def check_live(doc, source: str = "quality gates") -> dict:
    """The `live:` section, checked, with its defaults filled in (absent: LIVE_DEFAULTS and no metric gated)."""
    if doc is None:
        return {**LIVE_DEFAULTS, "metrics": {}}
    keys = sorted([*LIVE_DEFAULTS, *LIVE_OPTIONAL, "metrics"])
    if not isinstance(doc, dict):
        raise GateConfigError(f"{source}: 'live' must be a mapping of {keys}, got {doc!r}")
    unknown = sorted(set(doc) - set(keys))
    if unknown:
        raise GateConfigError(f"{source}: unknown key(s) {unknown} in 'live'; allowed: {keys}")
    out = {**LIVE_DEFAULTS, **{k: v for k, v in doc.items() if k != "metrics"}}
    for key, value in out.items():
        if not finite_number(value) or value < 0 or (key.startswith("min_") and not is_int(whole(value))):
            kind = "an int >= 0" if key.startswith("min_") else "a number >= 0"
            raise GateConfigError(f"{source}: live.{key} must be {kind}, got {value!r}")
        out[key] = int(whole(value)) if key.startswith("min_") else float(value)
    if out["window_days"] <= 0:
        raise GateConfigError(f"{source}: live.window_days must be > 0, got {out['window_days']!r}")
    metrics = doc.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise GateConfigError(f"{source}: live.metrics must map metrics to minimum / maximum / comparison, "
                              f"got {metrics!r}")
    out["metrics"] = _check_metric_gates(metrics, source, "live.metrics", LIVE_METRICS)
    return out


def _comparison(metric: str, gate: dict, value: float | None, base: float) -> tuple[str, str | None]:
    """(threshold text, failure or None) of a gate's comparison with the baseline value `base`."""
    sign = 1 if gate["comparison"] == "gte" else -1
    if "tolerance" in gate or not metric.startswith("latency_"):
        tol = gate.get("tolerance", 0)
        limit, text = base - sign * tol, f"{'>=' if sign > 0 else '<='} baseline {'-' if sign > 0 else '+'} {tol}"
        slack = f"by more than {tol}"
    else:
        factor = 1 - sign * LATENCY_TOLERANCE
        limit, text = base * factor, f"{'>=' if sign > 0 else '<='} baseline x {factor:g}"
        slack = f"by more than {LATENCY_TOLERANCE:.0%}"
    if value is not None and sign * (value - limit) < 0:
        return text, f"worse than baseline {base:.4f} {slack}"
    return text, None


def judge(gates: dict, metrics: dict, missing: dict, baseline: dict) -> list[dict]:
    """One row per gate of `gates` (metric -> bounds): value, threshold, baseline, verdict (pass / fail / not
    applicable) and reason. Gates fail closed: a gate passes only on a value that meets it; the one exception,
    "not applicable: no baseline", is a comparison without any baseline value (the absolute bounds still apply)
    and a metric defined only against a production model while there is none. `missing`: metric -> why it has
    no value; `baseline`: {"metrics", and optionally "missing", "error", "note", "production_model"}."""
    rows = []
    for metric, gate in sorted(gates.items(), key=lambda item: METRICS.index(item[0])):
        value, base = metrics.get(metric), baseline["metrics"].get(metric)
        thresholds, failures, notes = [], [], []
        if "minimum" in gate:
            thresholds.append(f">= {gate['minimum']}")
            if value is not None and value < gate["minimum"]:
                failures.append(f"below minimum {gate['minimum']}")
        if "maximum" in gate:
            thresholds.append(f"<= {gate['maximum']}")
            if value is not None and value > gate["maximum"]:
                failures.append(f"above maximum {gate['maximum']}")
        if "comparison" in gate:
            if base is not None:
                text, failure = _comparison(metric, gate, value, base)
                thresholds.append(text)
                failures += [failure] if failure else []
            else:
                thresholds.append(f"{'>=' if gate['comparison'] == 'gte' else '<='} baseline")
                why = baseline.get("error") or baseline.get("missing", {}).get(metric)
                (failures if why else notes).append(f"no baseline value: {why}" if why else NOT_APPLICABLE)
        if value is None:
            if metric in BASELINE_ONLY and not baseline.get("production_model"):
                notes = [NOT_APPLICABLE]
            else:
                failures.insert(0, f"missing: {missing.get(metric, 'not computed')}")
        if failures:
            verdict, reason = "fail", "; ".join(failures)
        elif notes and (value is None or not {"minimum", "maximum"} & set(gate)):
            verdict, reason = "not applicable", NOT_APPLICABLE  # nothing but the missing baseline was asked
        else:
            verdict, reason = "pass", "; ".join(["within bounds", *notes])
        if "comparison" in gate and base is not None and baseline.get("note"):
            reason += f"; {baseline['note']}"  # e.g. a production model without decision.json, measured at 0.5
        rows.append({"metric": metric, "value": value, "threshold": ", ".join(thresholds), "baseline": base,
                     "verdict": verdict, "reason": reason})
    return rows
