"""The server's compiled request checks give pandera's verdict, row by row, under generated contracts."""
import json
import math

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from hypothesis import HealthCheck, given, settings

from components.contract import parse
from serving.requests import ClientError, RequestReader

GRID = [-2, -1, 0, 0.5, 1, 2.5, 3, 6, 9, 10]  # bounds and allowed values come from here, so rows hit them
LETTERS = ["a", "b", "c", "d"]


def range_check(draw, whole: bool):
    bound = st.sampled_from([g for g in GRID if not whole or float(g).is_integer()])
    kind = draw(st.sampled_from(["in_range", "ge", "gt", "le", "lt"]))
    if kind == "in_range":
        lo, hi = sorted((draw(bound), draw(bound)))
        closed = lo == hi  # pandera refuses an empty interval
        return pa.Check.in_range(lo, hi, include_min=closed or draw(st.booleans()),
                                 include_max=closed or draw(st.booleans()))
    return {"ge": pa.Check.ge, "gt": pa.Check.gt, "le": pa.Check.le, "lt": pa.Check.lt}[kind](draw(bound))


@st.composite
def contracts(draw):
    """A contract of four features with stacked range checks, numeric and string `isin`, nullable columns."""
    def numeric(whole: bool):
        checks = [range_check(draw, whole) for _ in range(draw(st.integers(0, 3)))]
        if draw(st.booleans()):
            pool = [g for g in GRID if not whole or float(g).is_integer()]
            checks.append(pa.Check.isin(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=5, unique=True))))
        return draw(st.permutations(checks))

    int_dtype = draw(st.sampled_from(["int64", "Int64"]))
    columns = {
        "f": pa.Column("float64", numeric(False), nullable=draw(st.booleans())),
        "i": pa.Column(int_dtype, numeric(True), nullable=draw(st.booleans())),
        "b": pa.Column(draw(st.sampled_from(["bool", "boolean"])), nullable=draw(st.booleans())),
        "s": pa.Column(str, [pa.Check.isin(draw(st.lists(st.sampled_from(LETTERS), min_size=1, unique=True)))]
                       if draw(st.booleans()) else [], nullable=draw(st.booleans())),
        "y": pa.Column("int64"),
    }
    schema = pa.DataFrameSchema(columns, strict=True)
    features = {"f": "numeric", "i": "numeric", "b": "boolean", "s": "categorical"}
    return parse({"name": "generated", "version": "1", "label": "y", "positive_class": 1, "features": features,
                  "pandera": json.loads(schema.to_json())})


NUMBERS = st.one_of(st.sampled_from(GRID), st.sampled_from([float(g) for g in GRID]),
                    st.sampled_from([g + d for g in GRID for d in (-1e-9, 1e-9)]),
                    st.integers(-12, 12), st.floats(-12, 12), st.sampled_from([2**63, -(2**63) - 1, 2**63 - 1, 1e300]))
ANYTHING = st.one_of(st.none(), st.sampled_from([math.nan, math.inf, -math.inf]), st.booleans(), NUMBERS,
                     st.sampled_from([*LETTERS, "", "1", "e"]))
VALUES = {"f": st.one_of(NUMBERS, ANYTHING), "i": st.one_of(NUMBERS, ANYTHING),
          "b": st.one_of(st.booleans(), ANYTHING), "s": st.one_of(st.sampled_from(LETTERS), ANYTHING)}
ROWS = st.fixed_dictionaries(VALUES)


def fits(family: str, value) -> bool:
    """Whether a JSON value's own type is the column's: only such values are converted to the contract's dtype."""
    if family == "bool":
        return isinstance(value, bool)
    if family in ("int", "float"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def column_for(rule, value):
    """The column the server builds for a value; for a value of another type, or one that dtype cannot hold
    exactly, the column pandas itself reads from it (which a contract with coerce=False refuses by dtype)."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if missing or fits(rule.family, value):
        try:
            column = rule.as_column([value])
        except (TypeError, ValueError, OverflowError):
            column = None
        if column is not None:
            built = column[0]
            if (missing and pd.isna(built)) or (not missing and not pd.isna(built) and built == value):
                return column
    return pd.Series([value])


def pandera_accepts(reader, row) -> bool:
    frame = pd.DataFrame({name: column_for(rule, row[name]) for name, rule in reader.rules.items()})
    try:
        reader.contract.feature_schema.validate(frame)
    except (pa.errors.SchemaError, pa.errors.SchemaErrors):
        return False
    return True


def server_accepts(reader, row) -> bool:
    try:
        reader.check([row])
    except ClientError as err:
        assert err.status == 422 and err.problems, err
        return False
    return True


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # NaN into Int64, refused
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contract=contracts(), rows=st.lists(ROWS, min_size=1, max_size=8))
def test_fast_checks_give_panderas_verdict(contract, rows):
    reader = RequestReader(contract)
    assert reader.pandera is None  # the generated checks are all compiled: the fast path alone decides
    for row in rows:
        assert server_accepts(reader, row) == pandera_accepts(reader, row), (row, contract.to_dict()["pandera"])


def contract_of(column: pa.Column):
    schema = pa.DataFrameSchema({"x": column, "y": pa.Column("int64")})
    return parse({"name": "c", "version": "1", "label": "y", "positive_class": 1, "features": {"x": "numeric"},
                  "pandera": json.loads(schema.to_json())})


@pytest.mark.parametrize("column, accepted, refused", [
    # the cases: a numeric isin inside a wider range; a tighter bound listed before in_range
    (pa.Column("int64", [pa.Check.in_range(0, 10), pa.Check.isin(list(range(7)))]), [0, 6], [9, 7]),
    (pa.Column("float64", [pa.Check.le(5), pa.Check.in_range(0, 10)]), [0.0, 5], [5.5, 9]),
    (pa.Column("float64", [pa.Check.in_range(0, 10), pa.Check.lt(5), pa.Check.gt(0)]), [0.1, 4.9], [0, 5]),
])
def test_every_check_of_a_column_counts(column, accepted, refused):
    reader = RequestReader(contract_of(column))
    for value in accepted:
        assert server_accepts(reader, {"x": value}), value
    for value in refused:
        assert not server_accepts(reader, {"x": value}), value


def test_a_missing_value_in_a_dtype_that_cannot_hold_one_is_a_clear_422():
    reader = RequestReader(contract_of(pa.Column("int64", nullable=True)))
    with pytest.raises(ClientError, match="dtype int64 has no missing value"):
        reader.check([{"x": None}])
    assert reader.frame(reader.check([{"x": 3}]))["x"].dtype == np.int64
