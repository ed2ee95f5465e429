"""Quality gates: each metric against absolute bounds and, optionally, the baseline."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from components.evaluate.logic import METRICS

GATE_KEYS = {"minimum", "maximum", "baseline", "tolerance"}


def finite_number(value) -> bool:
    """An int or float, not a bool (an int subclass) and not NaN or infinite (a NaN bound passes anything)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class GateConfigError(ValueError):
    """The gates file is malformed."""


class GateFailed(RuntimeError):
    """The candidate missed at least one gate."""


def check_gates(doc: dict, source: str = "quality gates") -> dict[str, dict]:
    """Return the gates mapping; reject unknown metrics, keys, comparisons and bad values, naming the file."""
    if not isinstance(doc, dict) or set(doc) != {"gates"} or not isinstance(doc["gates"], dict):
        raise GateConfigError(f"{source}: expected a single top-level key 'gates' mapping metric -> bounds")
    gates = doc["gates"]
    for metric, gate in gates.items():
        path = f"gates.{metric}"
        if metric not in METRICS:
            raise GateConfigError(f"{source}: unknown metric {metric!r} in 'gates'; known metrics: {list(METRICS)}")
        if not isinstance(gate, dict) or not gate:
            raise GateConfigError(f"{source}: {path} must map some of {sorted(GATE_KEYS)} to values, got {gate!r}")
        unknown = sorted(set(gate) - GATE_KEYS)
        if unknown:
            raise GateConfigError(f"{source}: unknown key(s) {unknown} in '{path}'; allowed: {sorted(GATE_KEYS)}")
        if gate.get("baseline", "gte") not in ("gte", "lte"):
            raise GateConfigError(f"{source}: {path}.baseline must be 'gte' or 'lte', got {gate['baseline']!r}")
        for key, value in gate.items():
            if key != "baseline" and not finite_number(value):
                raise GateConfigError(f"{source}: {path}.{key} must be a finite number, got {value!r}")
        if "tolerance" in gate and "baseline" not in gate:
            raise GateConfigError(f"{source}: {path}.tolerance is slack against the baseline, so {path} needs "
                                  f"'baseline' too; got tolerance {gate['tolerance']!r} without it")
        if gate.get("tolerance", 0) < 0:
            raise GateConfigError(f"{source}: {path}.tolerance must be >= 0, got {gate['tolerance']!r}")
    return gates


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
        return "; ".join(f"{r['metric']} {r['value']:.4g}: {r['reason']}" for r in self.rows if r["verdict"] == "fail")

    def to_markdown(self) -> str:
        lines = [f"## Quality gate: {'PASSED' if self.passed else 'FAILED'}", "",
                 "| metric | value | threshold | baseline | verdict | reason |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            value = "n/a" if r["value"] is None else f"{r['value']:.4f}"
            base = "" if r["baseline"] is None else f"{r['baseline']:.4f}"
            lines.append(f"| {r['metric']} | {value} | {r['threshold']} | {base} | {r['verdict']} | {r['reason']} |")
        return "\n".join(lines) + "\n"


def evaluate_gates(gates: dict[str, dict], metrics: dict, baseline: dict) -> GateResult:
    """One row per gate: value, threshold, baseline, verdict (pass/fail) and reason."""
    rows = []
    for metric, gate in sorted(gates.items(), key=lambda item: METRICS.index(item[0])):
        value, base = metrics.get(metric), baseline.get(metric)
        bounds, failures = [], []
        if "minimum" in gate:
            bounds.append(f">= {gate['minimum']}")
            if value is not None and value < gate["minimum"]:
                failures.append(f"below minimum {gate['minimum']}")
        if "maximum" in gate:
            bounds.append(f"<= {gate['maximum']}")
            if value is not None and value > gate["maximum"]:
                failures.append(f"above maximum {gate['maximum']}")
        if "baseline" in gate and base is not None:
            tol = gate.get("tolerance", 0)
            if gate["baseline"] == "gte":
                bounds.append(f">= baseline - {tol}")
                if value is not None and value < base - tol:
                    failures.append(f"worse than baseline {base:.4f} by more than {tol}")
            else:
                bounds.append(f"<= baseline + {tol}")
                if value is not None and value > base + tol:
                    failures.append(f"worse than baseline {base:.4f} by more than {tol}")
        if value is None:
            reason = "not available (no baseline to compare with); not gated"
        else:
            reason = "; ".join(failures) or "within bounds"
        rows.append({"metric": metric, "value": value, "threshold": ", ".join(bounds), "baseline": base,
                     "verdict": "fail" if failures else "pass", "reason": reason})
    return GateResult(passed=all(r["verdict"] == "pass" for r in rows), rows=rows)
