"""Scoring a frame with a trained pipeline, the same way in training, evaluation and serving.

The positive class is the contract's `positive_class`, never a position among the model's classes.
Metrics are computed on 0/1 labels (1 = positive class) and the positive class's probability, so string
labels, and a positive class that sorts first, score exactly like 0/1.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from components.contract import Contract
from components.decision import DEFAULT_THRESHOLD

# name -> (metric of (0/1 labels, predictions), whether it takes the probability (else 0/1 predictions))
SCORES = {
    "roc_auc": (skm.roc_auc_score, True),
    "average_precision": (skm.average_precision_score, True),
    "neg_log_loss": (lambda y, p: -skm.log_loss(y, p, labels=[0, 1]), True),
    "neg_brier_score": (lambda y, p: -skm.brier_score_loss(y, p, pos_label=1), True),
    "accuracy": (skm.accuracy_score, False),
    "balanced_accuracy": (skm.balanced_accuracy_score, False),
    "precision": (partial(skm.precision_score, zero_division=0), False),
    "recall": (partial(skm.recall_score, zero_division=0), False),
    "f1": (partial(skm.f1_score, zero_division=0), False),
}


def positive_index(classes, contract: Contract) -> int:
    """The column of `predict_proba` that holds the contract's positive class."""
    hits = np.flatnonzero(np.asarray(classes, dtype=object) == contract.positive_class)
    if len(hits) != 1:
        raise ValueError(f"positive_class {contract.positive_class!r} of contract {contract.name!r} is not one of "
                         f"the model's classes {list(np.asarray(classes).tolist())}")
    return int(hits[0])


def class_names(classes, contract: Contract) -> list[str]:
    """[negative, positive] as text, from the model's two classes and the contract's positive class."""
    index = positive_index(classes, contract)
    values = np.asarray(classes, dtype=object).tolist()
    return [str(values[1 - index]), str(values[index])]


def positive_probability(model, frame: pd.DataFrame, contract: Contract) -> np.ndarray:
    """Probability of the positive class for each row; an empty frame gives an empty array."""
    if frame.empty:
        return np.empty(0, dtype="float64")
    proba = model.predict_proba(frame[contract.feature_columns])
    return proba[:, positive_index(model.classes_, contract)]


def is_positive(labels, contract: Contract) -> np.ndarray:
    """Labels as 0/1: 1 where the label is the contract's positive class."""
    return (np.asarray(labels, dtype=object) == contract.positive_class).astype(int)


def score(name: str, positive, proba, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Metric `name` of 0/1 labels against the positive class's probability (decided positive at `threshold`
    where it needs decisions)."""
    metric, takes_proba = SCORES[name]
    proba = np.asarray(proba, dtype="float64")
    return float(metric(positive, proba if takes_proba else (proba >= threshold).astype(int)))


def scorer(name: str, contract: Contract):
    """A scikit-learn scorer `(estimator, X, y) -> float` for `name` that knows the positive class."""
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}; known: {sorted(SCORES)}")

    def scoring(estimator, X, y) -> float:
        return score(name, is_positive(y, contract), positive_probability(estimator, X, contract))

    return scoring
