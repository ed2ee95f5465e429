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

`tolerance` (absolute, in the metric's unit) is slack for `comparison`. The `online` section is the deploy
step's (components.deploy.online checks it). Evaluation reads the slices from here, the gate step the bounds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from components.metrics import METRICS, Slices
from components.numbers import finite_number, is_int, whole

GATE_KEYS = {"minimum", "maximum", "comparison", "tolerance"}


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
