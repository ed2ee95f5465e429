"""The decision policy: its configuration, the threshold it tunes on predictions the holdout never saw, and
`decision.json` beside the model, read by evaluation, the gates' baseline and the server. A registered model's
decision.json is read only as it was registered: its bytes checked against the version tag TAG (a version
registered before that tag: unchecked).

A row is decided positive exactly when the positive class's probability is at least the threshold.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from components.modelfile import ModelIntegrityError, checked_bytes, file_sha256
from components.numbers import finite_number

FILE = "decision.json"  # in the model folder, beside the model file
TAG = "decision_sha256"  # the version tag holding the sha256 of decision.json's bytes as registered
DEFAULT_THRESHOLD = 0.5  # a model registered without decision.json is measured and served here
OBJECTIVES = {
    "min_cost": {"cost_false_negative", "cost_false_positive"},
    "max_recall": {"min_precision"},
    "fixed": {"threshold"},
}
COSTS = ("cost_false_negative", "cost_false_positive")


class DecisionError(ValueError):
    """A malformed decision section, or an objective no threshold meets."""


def check_decision(doc, source: str = "decision") -> dict:
    """The checked policy: `{objective, its parameters[, costs]}`; absent or empty is `fixed` at 0.5. Costs may be
    given with any objective (the expected cost is then measured); they are required by `min_cost`."""
    if doc is None or doc == {}:
        return {"objective": "fixed", "threshold": DEFAULT_THRESHOLD}
    if not isinstance(doc, dict):
        raise DecisionError(f"{source}: expected a mapping with 'objective', got {doc!r}")
    objective = doc.get("objective")
    if objective not in OBJECTIVES:
        raise DecisionError(f"{source}: objective must be one of {sorted(OBJECTIVES)}, got {objective!r}")
    allowed = OBJECTIVES[objective] | set(COSTS)
    unknown, missing = sorted(set(doc) - allowed - {"objective"}), sorted(OBJECTIVES[objective] - set(doc))
    if unknown or missing:
        raise DecisionError(f"{source}: objective {objective!r} takes {sorted(OBJECTIVES[objective])} "
                            f"(and optionally {list(COSTS)}); unknown {unknown}, missing {missing}")
    given_costs = [c for c in COSTS if c in doc]
    if len(given_costs) == 1:
        raise DecisionError(f"{source}: give both {list(COSTS)} or neither, got only {given_costs[0]}")
    for key in given_costs:
        if not finite_number(doc[key]) or doc[key] <= 0:
            raise DecisionError(f"{source}: {key} must be a positive number, got {doc[key]!r}")
    if objective == "max_recall" and not (finite_number(doc["min_precision"]) and 0 < doc["min_precision"] <= 1):
        raise DecisionError(f"{source}: min_precision must be a number with 0 < p <= 1, got {doc['min_precision']!r}")
    if objective == "fixed" and not (finite_number(doc["threshold"]) and 0 <= doc["threshold"] <= 1):
        raise DecisionError(f"{source}: threshold must be a number with 0 <= t <= 1, got {doc['threshold']!r}")
    return {"objective": objective, **{k: float(doc[k]) for k in sorted(allowed) if k in doc}}


def costs(policy: dict) -> tuple[float, float] | None:
    """(cost of a missed positive, cost of a false alarm) when the policy names them."""
    return (policy["cost_false_negative"], policy["cost_false_positive"]) if "cost_false_negative" in policy else None


def curve(probability, positive) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct decision: (thresholds descending, true positives, false positives) when deciding positive
    the rows with probability >= threshold. Each threshold is the highest of the thresholds giving its decision;
    the first, 1.0 or just above the highest probability, flags nothing where that is possible within [0, 1]."""
    probability = np.asarray(probability, dtype="float64")
    positive = np.asarray(positive).astype(bool)
    order = np.argsort(-probability, kind="stable")
    p, y = probability[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(p) != 0), len(p) - 1] if len(p) else np.array([], dtype=int)
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    thresholds = p[last]
    if not len(p) or p[0] < 1.0:
        thresholds, tp, fp = np.r_[1.0, thresholds], np.r_[0, tp], np.r_[0, fp]
    return thresholds, tp, fp


def figures(probability, positive, threshold: float, policy: dict) -> dict:
    """What a threshold decides on labelled rows: rows, positives, flagged, precision (None when nothing is
    flagged), recall (None without positives), flag rate, and the mean cost per row when costs are known."""
    probability = np.asarray(probability, dtype="float64")
    positive = np.asarray(positive).astype(bool)
    flagged = probability >= threshold
    tp, fp = int((flagged & positive).sum()), int((flagged & ~positive).sum())
    fn, rows = int((~flagged & positive).sum()), len(positive)
    out = {"rows": rows, "positives": int(positive.sum()), "flagged": int(flagged.sum()),
           "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None,
           "flag_rate": float(flagged.mean()) if rows else None}
    if costs(policy):
        cfn, cfp = costs(policy)
        out["expected_cost"] = (cfn * fn + cfp * fp) / rows if rows else None
    return out


def tune(probability, positive, policy: dict) -> float:
    """The threshold the policy chooses on these predictions: `fixed` its own; `min_cost` the lowest total cost;
    `max_recall` the highest recall whose precision is at least `min_precision`. Ties take the highest threshold.
    No threshold meeting `min_precision` is an error naming the best precision reached and where."""
    if policy["objective"] == "fixed":
        return policy["threshold"]
    thresholds, tp, fp = curve(probability, positive)
    if policy["objective"] == "min_cost":
        cfn, cfp = costs(policy)
        total = cfn * (tp[-1] - tp) + cfp * fp
        tied = np.isclose(total, total.min(), rtol=1e-9, atol=0)  # equal costs summed in another order are ties
        return float(thresholds[int(np.flatnonzero(tied)[0])])  # descending: the first is the highest
    flagged = tp + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(flagged > 0, tp / np.maximum(flagged, 1), np.nan)
    meets = precision >= policy["min_precision"] - 1e-12
    if not meets.any():
        best = int(np.nanargmax(precision)) if np.isfinite(precision).any() else 0
        reached = "no row decided positive" if math.isnan(precision[best]) else f"{precision[best]:.4f}"
        raise DecisionError(f"no threshold reaches min_precision {policy['min_precision']:g} on the validation "
                            f"predictions: the best precision is {reached} at threshold {thresholds[best]:.6g}")
    recall = np.where(meets, tp, -1)
    return float(thresholds[int(np.flatnonzero(recall == recall.max())[0])])


def write(folder: str | Path, policy: dict, threshold: float, validation: dict) -> dict:
    """decision.json in the model folder: the policy, the threshold and the validation figures it was chosen on."""
    doc = {**policy, "threshold": float(threshold), "validation": validation}
    Path(folder, FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return doc


def sha256(folder: str | Path) -> str | None:
    """What TAG records: the sha256 of decision.json's bytes, None without one."""
    path = Path(folder, FILE)
    return file_sha256(path) if path.is_file() else None


def read(folder: str | Path, expected_sha256: str | None = None, registered: bool = False) -> dict | None:
    """The decision stored with a model, or None for a model registered before decisions were (it is decided
    at DEFAULT_THRESHOLD). With `expected_sha256` (a version's TAG) the file must be there and its bytes hash to
    it; a `registered` model without one must have no decision.json (a version registered with a decision has the
    tag); either is else a ModelIntegrityError. Neither: read unchecked (a candidate, before registration). The
    bytes checked are the bytes parsed."""
    path = Path(folder, FILE)
    if not path.is_file():
        if expected_sha256 is not None:
            raise ModelIntegrityError(f"{path}: missing, but registered with {TAG} {expected_sha256}: "
                                      "the file was removed after registration")
        return None
    if registered and expected_sha256 is None:
        raise ModelIntegrityError(f"{path}: present, but the version was registered without a {TAG} tag: the file "
                                  "was added after registration, so its threshold is not the registered one")
    data = checked_bytes(path, expected_sha256, TAG)
    try:
        doc = json.loads(data)
        threshold = doc["threshold"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DecisionError(f"{path}: not a readable decision: {exc}") from exc
    if not (finite_number(threshold) and 0 <= threshold <= 1):
        raise DecisionError(f"{path}: threshold must be a number in [0, 1], got {threshold!r}")
    return doc


def threshold_of(decision: dict | None) -> float:
    return DEFAULT_THRESHOLD if decision is None else float(decision["threshold"])


def summary_lines(evaluation: dict) -> list[str]:
    """From an evaluation (evaluate_model's JSON): where the candidate and the production model decide, and what
    that catches and costs on the holdout; for the reports, the run summary and the demo."""
    base = evaluation["baseline"]
    models = [("candidate", evaluation["metrics"], evaluation.get("decision"), None)]
    if base.get("production_model") and not base.get("error"):
        models.append((base["source"], base["metrics"], base.get("decision"), base.get("note")))
    lines = []
    for who, metrics, chosen, note in models:
        how = (f"{chosen['objective']} threshold {chosen['threshold']:.4g}" if chosen
               else f"threshold {threshold_of(None):.4g} (no decision.json)")
        shown = ", ".join(f"{m.replace('_', ' ')} {metrics[m]:.4f}" for m in
                          ("precision", "recall", "flag_rate", "expected_cost") if metrics.get(m) is not None)
        lines.append(f"{who}: {how}; {shown}" + (f" ({note})" if note else ""))
    return lines
