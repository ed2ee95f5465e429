"""The fitted preprocessing of a training pipeline as plain numpy, for small batches.

scikit-learn's transform calls validate their input on every call (dtype checks, feature names, dataframe
dispatch), which costs about 5 ms per micro-batch: twenty times the model on a few rows. `compile` turns the
ColumnTransformers that `components.train.logic.build_pipeline` fits (for linear models and forests: numeric
features through a median SimpleImputer then StandardScaler, categorical and boolean ones one-hot, unknown
values ignored; for gradient-boosted trees: numeric features as float64, categorical and boolean ones as their
category's code, unknown and missing NaN) into the same arithmetic on numpy arrays, and gives None for
anything else, which then goes through scikit-learn itself. Models registered with either shape serve.
tests/unit/test_preprocess.py checks the output equals scikit-learn's, bit for bit, on generated tables.
"""
from __future__ import annotations

import math

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler


class _Numeric:
    """Median SimpleImputer then StandardScaler: NaN -> the median; then (x - mean) / scale."""

    def __init__(self, columns: list[str], imputer: SimpleImputer, scaler: StandardScaler):
        self.columns, self.fill = columns, imputer.statistics_
        self.mean, self.scale = scaler.mean_ if scaler.with_mean else None, scaler.scale_ if scaler.with_std else None

    def __call__(self, frame) -> np.ndarray:
        x = np.column_stack([frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in self.columns])
        missing = np.isnan(x)
        if missing.any():
            x = np.where(missing, self.fill, x)
        if self.mean is not None:
            x = x - self.mean
        if self.scale is not None:
            x = x / self.scale
        return x


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


class _OneHot:
    """OneHotEncoder(handle_unknown="ignore"): one 1.0 per column in the value's category, none for unknowns."""

    def __init__(self, columns: list[str], encoder: OneHotEncoder):
        self.width = sum(len(c) for c in encoder.categories_)
        # per column: (name, whether scikit-learn reads it as floats (its categories came out as floats: pandas'
        # nullable boolean), category -> output column, the NaN category's output column)
        self.columns, offset = [], 0
        for column, categories in zip(columns, encoder.categories_):
            positions = {c: offset + i for i, c in enumerate(categories.tolist()) if not _is_nan(c)}
            nan = next((offset + i for i, c in enumerate(categories.tolist()) if _is_nan(c)), None)
            self.columns.append((column, categories.dtype.kind == "f", positions, nan))
            offset += len(categories)

    def __call__(self, frame) -> np.ndarray:
        out = np.zeros((len(frame), self.width))
        for column, floats, positions, nan in self.columns:
            values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan) if floats else frame[column]
            for row, value in enumerate(values.tolist()):
                j = nan if _is_nan(value) else positions.get(value)
                if j is not None:
                    out[row, j] = 1.0
        return out


class _Floats:
    """StandardScaler(with_mean=False, with_std=False): the numbers as float64, missing as NaN."""

    def __init__(self, columns: list[str]):
        self.columns = columns

    def __call__(self, frame) -> np.ndarray:
        return np.column_stack([frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in self.columns])


class _Codes:
    """OrdinalEncoder(unknown_value=NaN, encoded_missing_value=NaN): each value's position among its column's
    categories; unknown and missing values NaN."""

    def __init__(self, columns: list[str], encoder: OrdinalEncoder):
        self.columns = [(column, categories.dtype.kind == "f",
                         {c: float(i) for i, c in enumerate(categories.tolist()) if not _is_nan(c)})
                        for column, categories in zip(columns, encoder.categories_)]

    def __call__(self, frame) -> np.ndarray:
        out = np.full((len(frame), len(self.columns)), np.nan)
        for j, (column, floats, codes) in enumerate(self.columns):
            values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan) if floats else frame[column]
            for row, value in enumerate(values.tolist()):
                if not _is_nan(value):  # None is a category of its own where fitting saw it
                    out[row, j] = codes.get(value, np.nan)
        return out


def _block(transformer, columns: list[str]):
    if (type(transformer) is Pipeline and len(transformer.steps) == 2 and type(transformer[0]) is SimpleImputer
            and type(transformer[1]) is StandardScaler):
        imputer, scaler = transformer[0], transformer[1]
        if (imputer.add_indicator or not _is_nan(imputer.missing_values)
                or np.isnan(imputer.statistics_).any()):  # an all-missing column is dropped: not handled here
            return None
        return _Numeric(columns, imputer, scaler)
    if type(transformer) is StandardScaler and not transformer.with_mean and not transformer.with_std:
        return _Floats(columns)
    if (type(transformer) is OrdinalEncoder and transformer.handle_unknown == "use_encoded_value"
            and _is_nan(transformer.unknown_value) and _is_nan(transformer.encoded_missing_value)
            and not transformer._infrequent_enabled and transformer.dtype in (np.float64, float)
            and all(c.dtype.kind in "bOf" for c in transformer.categories_)):
        return _Codes(columns, transformer)
    if (type(transformer) is OneHotEncoder and transformer.handle_unknown == "ignore" and transformer.drop is None
            and not transformer._infrequent_enabled and transformer.sparse_output is False
            and transformer.dtype in (np.float64, float)
            and all(c.dtype.kind in "bOf" for c in transformer.categories_)):
        return _OneHot(columns, transformer)
    return None


def compile(preprocess) -> "Preprocessor | None":
    """The numpy form of a fitted ColumnTransformer of build_pipeline's shape, or None."""
    if type(preprocess) is not ColumnTransformer or preprocess.remainder != "drop" or preprocess.sparse_output_:
        return None
    blocks = []
    for _, transformer, columns in preprocess.transformers_:
        if transformer == "drop":
            continue
        block = _block(transformer, list(columns)) if isinstance(columns, (list, tuple)) else None
        if block is None:
            return None
        blocks.append(block)
    return Preprocessor(blocks) if blocks else None


class Preprocessor:
    def __init__(self, blocks: list):
        self.blocks = blocks

    def transform(self, frame) -> np.ndarray:
        """The model's input for `frame`: what the ColumnTransformer's transform gives."""
        return np.hstack([block(frame) for block in self.blocks])
