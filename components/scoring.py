"""Scoring a frame with a trained pipeline, the same way in training, evaluation and serving.

The positive class is the contract's `positive_class`, never a position among the model's classes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from components.contract import Contract


def positive_index(classes, contract: Contract) -> int:
    """The column of `predict_proba` that holds the contract's positive class."""
    hits = np.flatnonzero(np.asarray(classes, dtype=object) == contract.positive_class)
    if len(hits) != 1:
        raise ValueError(f"positive_class {contract.positive_class!r} of contract {contract.name!r} is not one of "
                         f"the model's classes {list(np.asarray(classes).tolist())}")
    return int(hits[0])


def positive_probability(model, frame: pd.DataFrame, contract: Contract) -> np.ndarray:
    """Probability of the positive class for each row; an empty frame gives an empty array."""
    if frame.empty:
        return np.empty(0, dtype="float64")
    proba = model.predict_proba(frame[contract.feature_columns])
    return proba[:, positive_index(model.classes_, contract)]


def is_positive(labels, contract: Contract) -> np.ndarray:
    """Labels as 0/1: 1 where the label is the contract's positive class."""
    return (np.asarray(labels, dtype=object) == contract.positive_class).astype(int)
