"""Quality gates: each metric against absolute bounds and, optionally, the baseline. Gates fail closed.

The gates file (configs/quality_gates.yaml) has the guide's format:

    metrics:
      accuracy:
        minimum: 0.92
        comparison: "gte"     # also >= the baseline's accuracy
      latency_p95_ms:
        maximum: 50
        comparison: "lte"     # also <= the baseline's, with LATENCY_TOLERANCE of slack
    slices:                   # optional: the per-slice table and max_slice_recall_gap
      columns: [channel]      # default: the categorical and boolean features
      min_rows: 100           # smaller slices are reported, not gated (default 100)
      min_positives: 20       # as are slices with fewer rows of the positive class (default 0)

`tolerance` (absolute, in the metric's unit) is slack for `comparison`. A gate passes only on a value that
meets it; the one exception, reported as "not applicable: no baseline", is a comparison without any
baseline value (the absolute bounds still apply) and a metric defined only against a production model
while there is none. A production model that failed to load or score fails every gate that needed it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from components.evaluate.logic import BASELINE_ONLY, METRICS, Slices

GATE_KEYS = {"minimum", "maximum", "comparison", "tolerance"}
LATENCY_TOLERANCE = 0.20  # a comparison on a latency_* metric without `tolerance` allows 20 % over the baseline
NOT_APPLICABLE = "not applicable: no baseline"


def finite_number(value) -> bool:
    """An int or float, not a bool (an int subclass) and not NaN or infinite (a NaN bound passes anything)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class GateConfigError(ValueError):
    """The gates file is malformed."""


class GateFailed(RuntimeError):
    """The candidate missed at least one gate."""


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
    # KFP passes the numbers of dict parameters as floats: whole ones back to int
    sizes = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in sizes.items()}
    for key, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise GateConfigError(f"{source}: slices.{key} must be an int >= 0, got {value!r}")
    return Slices(columns=columns, **sizes)


def check_gates(doc: dict, source: str = "quality gates") -> Gates:
    """The gates; reject unknown metrics, keys, comparisons and bad values, naming the file."""
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict) or not doc["metrics"]:
        hint = " ('gates:' is now 'metrics:', and 'baseline:' is 'comparison:')" if isinstance(doc, dict) and \
            "gates" in doc else ""
        raise GateConfigError(f"{source}: expected a top-level key 'metrics' mapping each metric to minimum / "
                              f"maximum / comparison{hint}")
    unknown = sorted(set(doc) - {"metrics", "slices", "online"})  # online: components.deploy.online checks it
    if unknown:
        raise GateConfigError(f"{source}: unknown top-level key(s) {unknown}; allowed: metrics, slices, online")
    gates = doc["metrics"]
    for metric, gate in gates.items():
        path = f"metrics.{metric}"
        if metric not in METRICS:
            raise GateConfigError(f"{source}: unknown metric {metric!r} in 'metrics'; known metrics: {list(METRICS)}")
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
    return Gates(metrics=gates, slices=_check_slices(doc.get("slices"), source))


@dataclass
class GateResult:
    passed: bool
    rows: list[dict]

    def to_json(self) -> str:
        return json.dumps({"passed": self.passed, "gates": self.rows}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "GateResult":
        doc = json.loads(text)
        return cls(passed=doc["passed"], rows=doc["gates"])

    def failures(self) -> str:
        return "; ".join(f"{r['metric']} {_fmt(r['value'])}: {r['reason']}" for r in self.rows if r["verdict"] == "fail")

    def to_markdown(self) -> str:
        lines = [f"## Quality gate: {'PASSED' if self.passed else 'FAILED'}", "",
                 "| metric | value | threshold | baseline | verdict | reason |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            base = "" if r["baseline"] is None else f"{r['baseline']:.4f}"
            lines.append(f"| {r['metric']} | {_fmt(r['value'])} | {r['threshold']} | {base} | {r['verdict']} | "
                         f"{r['reason']} |")
        return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


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


def evaluate_gates(gates: Gates, evaluation: dict) -> GateResult:
    """One row per gate: value, threshold, baseline, verdict (pass / fail / not applicable) and reason.

    `evaluation` is what evaluate_model wrote: metrics, missing (metric -> reason) and baseline."""
    metrics, missing = evaluation["metrics"], evaluation.get("missing", {})
    baseline = evaluation["baseline"]
    rows = []
    for metric, gate in sorted(gates.metrics.items(), key=lambda item: METRICS.index(item[0])):
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
        rows.append({"metric": metric, "value": value, "threshold": ", ".join(thresholds), "baseline": base,
                     "verdict": verdict, "reason": reason})
    return GateResult(passed=all(r["verdict"] != "fail" for r in rows), rows=rows)
