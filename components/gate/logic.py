"""The quality gate's verdict: each metric against its absolute bounds and, optionally, the baseline; gates fail
closed.

The gates come from components.gates. A gate passes only on a value that meets it; the one exception, reported
as "not applicable: no baseline", is a comparison without any baseline value (the absolute bounds still apply)
and a metric defined only against a production model while there is none. A production model that failed to
load or score fails every gate that needed it. A comparison on a latency_* metric without `tolerance` allows
LATENCY_TOLERANCE over the baseline.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from components.gates import Gates
from components.metrics import BASELINE_ONLY, METRICS, metric_text

LATENCY_TOLERANCE = 0.20  # a comparison on a latency_* metric without `tolerance` allows 20 % over the baseline
NOT_APPLICABLE = "not applicable: no baseline"


class GateFailed(RuntimeError):
    """The candidate missed at least one gate."""


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
        return "; ".join(f"{r['metric']} {metric_text(r['value'])}: {r['reason']}"
                         for r in self.rows if r["verdict"] == "fail")

    def to_markdown(self) -> str:
        lines = [f"## Quality gate: {'PASSED' if self.passed else 'FAILED'}", "",
                 "| metric | value | threshold | baseline | verdict | reason |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            base = "" if r["baseline"] is None else f"{r['baseline']:.4f}"
            lines.append(f"| {r['metric']} | {metric_text(r['value'])} | {r['threshold']} | {base} | {r['verdict']} | "
                         f"{r['reason']} |")
        return "\n".join(lines) + "\n"


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
        if "comparison" in gate and base is not None and baseline.get("note"):
            reason += f"; {baseline['note']}"  # e.g. a production model without decision.json, measured at 0.5
        rows.append({"metric": metric, "value": value, "threshold": ", ".join(thresholds), "baseline": base,
                     "verdict": verdict, "reason": reason})
    return GateResult(passed=all(r["verdict"] != "fail" for r in rows), rows=rows)
