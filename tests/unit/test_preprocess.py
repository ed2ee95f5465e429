"""serving.preprocess gives exactly what the fitted scikit-learn preprocessing gives, on generated tables."""
from __future__ import annotations

from types import SimpleNamespace

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings

from components.train.logic import build_pipeline
from serving import preprocess

WORDS = ["a", "b", "card", "web", "ÿ", ""]
# column kind -> (dtype, value strategy); None is the missing value of every kind
KINDS = {
    "float": ("float64", st.one_of(st.none(), st.floats(-1e6, 1e6))),
    "int": ("int64", st.integers(-1000, 1000)),
    "Int64": ("Int64", st.one_of(st.none(), st.integers(-1000, 1000))),
    "str": (object, st.one_of(st.none(), st.sampled_from(WORDS))),
    "bool": ("bool", st.booleans()),
    "boolean": ("boolean", st.one_of(st.none(), st.booleans())),
}
NUMERIC = ("float", "int", "Int64")


def column(kind: str, values: list):
    dtype = KINDS[kind][0]
    if kind == "float":
        return np.array([np.nan if v is None else v for v in values], dtype=dtype)
    return pd.array(values, dtype=dtype) if kind in ("Int64", "boolean") else np.array(values, dtype=dtype)


@st.composite
def tables(draw):
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=6))
    if not any(k in NUMERIC for k in kinds) and draw(st.booleans()):
        kinds.append("float")
    names = [f"{kind}_{i}" for i, kind in enumerate(kinds)]
    train_rows, serve_rows = draw(st.integers(2, 40)), draw(st.integers(1, 40))

    def frame(n):
        return pd.DataFrame({name: column(kind, draw(st.lists(KINDS[kind][1], min_size=n, max_size=n)))
                             for name, kind in zip(names, kinds)})

    contract = SimpleNamespace(numeric=[n for n, k in zip(names, kinds) if k in NUMERIC],
                               categorical=[n for n, k in zip(names, kinds) if k == "str"],
                               boolean=[n for n, k in zip(names, kinds) if k in ("bool", "boolean")])
    return contract, frame(train_rows), frame(serve_rows)


@pytest.mark.filterwarnings("ignore:Skipping features without any observed values")  # the all-missing case
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tables())
def test_numpy_preprocessing_equals_scikit_learns(table):
    contract, fit_on, serve = table
    all_missing = any(fit_on[c].isna().all() for c in contract.numeric)
    assume(not all(fit_on[c].isna().all() for c in contract.numeric) or not contract.numeric)  # sklearn: no fit
    fitted = build_pipeline(contract, "logistic_regression", {}, 0)[0].fit(fit_on)
    fast = preprocess.compile(fitted)
    assert (fast is None) == all_missing  # only a numeric column with nothing to impute from is left to sklearn
    if fast is not None:
        expected = fitted.transform(serve)
        got = fast.transform(serve)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)  # bit for bit, NaN nowhere


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tables())
def test_numpy_preprocessing_of_the_trees_shape_equals_scikit_learns(table):
    """The gradient-boosted trees' shape (numbers as float64, categories as codes): the same, bit for bit and NaN
    for NaN (missing and unknown values stay missing for the trees)."""
    contract, fit_on, serve = table
    fitted = build_pipeline(contract, "hist_gradient_boosting", {}, 0)[0].fit(fit_on)
    fast = preprocess.compile(fitted)
    assert fast is not None
    expected = fitted.transform(serve)
    got = fast.transform(serve)
    assert got.dtype == expected.dtype == np.float64 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_an_unknown_preprocessing_is_left_to_scikit_learn():
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    assert preprocess.compile(ColumnTransformer([("x", MinMaxScaler(), ["x"])]).fit(frame)) is None
    strict = ColumnTransformer([("c", OneHotEncoder(sparse_output=False), ["c"])]).fit(frame)  # unknown: error
    assert preprocess.compile(strict) is None
    assert preprocess.compile(ColumnTransformer([("c", OneHotEncoder(sparse_output=False, handle_unknown="ignore"),
                                                  ["c"])]).fit(frame)) is not None
