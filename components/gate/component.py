"""quality_gate: pass or fail the candidate on every configured gate."""
from kfp.dsl import Artifact, Input, Markdown, Output

from components.image import component


@component
def quality_gate(
    evaluation: Input[Artifact],
    quality_gates: dict,
    report: Output[Markdown],
    gate_report: Output[Artifact],
) -> bool:
    """Returns whether every gate passed; the per-gate table says why."""
    import json

    from components import memory
    from components.gate import logic
    from components.gates import check_gates

    with open(evaluation.path) as fh:
        result = json.load(fh)
    gates = check_gates(quality_gates, "quality_gates parameter")
    outcome = logic.evaluate_gates(gates, result)
    with open(report.path, "w") as fh:
        fh.write(outcome.to_markdown())
    with open(gate_report.path, "w") as fh:
        fh.write(outcome.to_json())
    print(outcome.to_markdown())
    memory.report()
    return outcome.passed


@component
def stop_on_failed_gate(gate_report: Input[Artifact]):
    """Fail the run, naming each missed gate: a candidate that misses a gate is a failed run."""
    from components.gate import logic

    with open(gate_report.path) as fh:
        result = logic.GateResult.from_json(fh.read())
    raise logic.GateFailed(f"quality gate failed, nothing registered: {result.failures()}")
