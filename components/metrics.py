"""The metrics a model is measured on and the slices they are measured over: what evaluation computes, the gates
judge and the reports show.
"""
from __future__ import annotations

from dataclasses import dataclass

from components.contract import Contract

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision")
# Where a model decides (components.decision) and what its decisions cost; `expected_cost` with the candidate's
# costs for both models, whatever their objective.
DECISION_METRICS = ("threshold", "flag_rate", "expected_cost", "brier_score")
# What both the candidate and the production model are measured on (the latter as the baseline); the
# thresholded ones at each model's own threshold.
SHARED_METRICS = CLASSIFICATION_METRICS + DECISION_METRICS + ("latency_p95_ms", "latency_p95_ms_batch32",
                                                              "memory_mb", "max_slice_recall_gap")
METRICS = SHARED_METRICS + ("flag_rate_ratio", "model_size_mb", "feature_importance_stability",
                            "edge_cases_passed")
# Defined only against a production model: not applicable (rather than missing) while there is none.
BASELINE_ONLY = ("flag_rate_ratio", "feature_importance_stability")


@dataclass(frozen=True)
class Slices:
    """Per-slice metrics: per value of each column (None: the categorical and boolean features);
    slices of fewer than `min_rows` rows, or fewer than `min_positives` rows of the positive class (recall
    on a handful of positives is noise), are reported, not gated."""
    columns: list[str] | None = None
    min_rows: int = 100
    min_positives: int = 0

    def resolve(self, contract: Contract) -> list[str]:
        columns = self.columns if self.columns is not None else contract.categorical + contract.boolean
        unknown = [c for c in columns if c not in contract.features]
        if unknown:
            raise ValueError(f"slice column(s) {unknown} are not features of contract {contract.name!r} "
                             f"({contract.source}); features: {contract.feature_columns}")
        return list(columns)


def metric_text(value) -> str:
    """A metric's value in a report: four decimals, or n/a when it has none."""
    return "n/a" if value is None else f"{value:.4f}"
