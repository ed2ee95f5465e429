"""Scoring a frame with a trained pipeline, the same way in evaluation and serving."""
from __future__ import annotations

import numpy as np
import pandas as pd

from components.contract import Contract


def positive_probability(model, frame: pd.DataFrame, contract: Contract) -> np.ndarray:
    """Probability of the positive class for each row; an empty frame gives an empty array."""
    if frame.empty:
        return np.empty(0, dtype="float64")
    return model.predict_proba(frame[contract.feature_columns])[:, 1]


def is_positive(labels, model) -> np.ndarray:
    """Labels as 0/1, 1 for the class whose probability `positive_probability` gives (any label values)."""
    return (np.asarray(labels) == model.classes_[1]).astype(int)
