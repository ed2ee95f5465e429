"""The quality gate's verdict: each metric against its absolute bounds and, optionally, the baseline; gates fail
closed.

The gates come from components.gates, which also judges each one (`judge`, shared with the live gates). A
production model that failed to load or score fails every gate that needed it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from components.gates import Gates, judge
from components.metrics import metric_text


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


def evaluate_gates(gates: Gates, evaluation: dict) -> GateResult:
    """One row per gate: value, threshold, baseline, verdict (pass / fail / not applicable) and reason.

    `evaluation` is what evaluate_model wrote: metrics, missing (metric -> reason) and baseline."""
    rows = judge(gates.metrics, evaluation["metrics"], evaluation.get("missing", {}), evaluation["baseline"])
    return GateResult(passed=all(r["verdict"] != "fail" for r in rows), rows=rows)
