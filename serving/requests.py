"""Turn request rows into a model-ready frame, checking each value against the feature contract.

pandera takes about 10 ms per call whatever the row count, more than the model itself, so the
contract's column checks (dtype, nullability, every range check, every `isin`) are compiled here into
plain per-value tests whose verdict equals pandera's on the frame the server builds (a property test
holds them to it). A contract using any other pandera check is still enforced: the frame then also
goes through pandera.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd
import pandera.pandas as pa

from components.contract import Contract

MAX_PROBLEMS = 20
LOWER = {"greater_than_or_equal_to": True, "greater_than": False}   # check -> bound inclusive
UPPER = {"less_than_or_equal_to": True, "less_than": False}
FAST_CHECKS = {"in_range", "isin", *LOWER, *UPPER}
# dtypes whose values the Rule builds exactly as pandera checks them; others also go through pandera
FAST_DTYPES = {"float64", "Float64", "int64", "Int64", "bool", "boolean", "str"}


class ClientError(ValueError):
    """A request the server rejects with a 4xx and a JSON body naming each problem."""

    def __init__(self, status: int, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.status, self.problems = status, problems or []

    def body(self) -> dict:
        return {"error": str(self), "problems": self.problems}


INT64 = (-(2**63), 2**63 - 1)


def _missing(value) -> bool:
    """JSON null, or a float NaN (which pandas reads as missing too)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _below(value, bound, inclusive: bool) -> bool:
    return value < bound or (value == bound and not inclusive)


@dataclass(frozen=True)
class Rule:
    column: str
    dtype: str                 # pandera's dtype name: float64, Float64, int64, Int64, bool, boolean, str, ...
    nullable: bool
    lo: float | None = None
    lo_inclusive: bool = True
    hi: float | None = None
    hi_inclusive: bool = True
    allowed: frozenset | None = None

    @property
    def family(self) -> str:
        name = self.dtype.lower()
        if name.startswith("bool"):
            return "bool"
        if name.startswith(("int", "uint")):
            return "int"
        if name.startswith("float"):
            return "float"
        return "str"

    @property
    def holds_missing(self) -> bool:
        """Whether the column's dtype can hold a missing value (numpy's int64 and bool cannot)."""
        return self.dtype not in ("int64", "bool")

    def problem(self, value) -> str | None:
        """Why `value` breaks this column's contract, or None."""
        if _missing(value):
            if not self.nullable:
                return "must not be null"
            return None if self.holds_missing else f"must not be null (dtype {self.dtype} has no missing value)"
        family = self.family
        if family == "bool":
            if not isinstance(value, bool):
                return f"must be true or false, got {value!r}"
        elif family in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"must be a number, got {value!r}"
            if family == "int":
                if isinstance(value, float) and not value.is_integer():
                    return f"must be a whole number, got {value!r}"
                value = int(value)
                if not INT64[0] <= value <= INT64[1]:
                    return f"must be a whole number within 64 bits, got {value!r}"
            else:
                try:
                    value = float(value)
                except OverflowError:
                    return f"{value!r} is beyond the range of a 64-bit float"
            why = self._out_of_range(value)
            if why:
                return why
        elif not isinstance(value, str):
            return f"must be a string, got {value!r}"
        if self.allowed is not None and value not in self.allowed:
            return f"{value!r} is not one of {sorted(self.allowed, key=str)}"
        return None

    def _out_of_range(self, value) -> str | None:
        """Compared as pandas compares the column: a whole number with a float bound as a float."""
        def num(bound):
            return float(value) if isinstance(bound, float) else value

        if self.lo is not None and _below(num(self.lo), self.lo, self.lo_inclusive):
            return f"{value!r} is below the allowed minimum {self.lo}{'' if self.lo_inclusive else ' (exclusive)'}"
        if self.hi is not None and _below(self.hi, num(self.hi), self.hi_inclusive):
            return f"{value!r} is above the allowed maximum {self.hi}{'' if self.hi_inclusive else ' (exclusive)'}"
        return None

    def as_column(self, values: list):
        """The values as the column training saw: the contract's dtype, missing as that dtype's NA."""
        if self.family == "str":
            return np.array(values, dtype=object)
        try:
            return np.array(values, dtype=np.dtype(self.dtype))  # float64, int64, bool: the fast path
        except TypeError:  # pandas' nullable dtypes (Int64, boolean, ...), which numpy does not know
            return pd.array(values, dtype=self.dtype)


def _tighter(current, new, lower: bool):
    """The tighter of two (bound, inclusive) pairs; at equal bounds, exclusive wins."""
    if current is None:
        return new
    if new[0] == current[0]:
        return current[0], current[1] and new[1]
    return new if (new[0] > current[0]) == lower else current


def _rule(contract: Contract, column: str) -> tuple[Rule, bool]:
    """The column's Rule: the intersection of all its range checks and of all its `isin` checks; and whether
    it has checks (or a dtype) the Rule cannot express, which pandera then enforces."""
    spec = contract.schema.columns[column]
    dtype = contract.dtype(column)
    as_float = dtype.lower().startswith("float")
    low = high = allowed = None
    other = dtype not in FAST_DTYPES
    for check in spec.checks:
        stats = check.statistics or {}
        if check.name not in FAST_CHECKS or not check.ignore_na or check.raise_warning:
            other = True
        elif check.name == "isin":
            values = frozenset(v for v in stats["allowed_values"] if not _missing(v))
            allowed = values if allowed is None else allowed & values
        else:
            if check.name in ("in_range", *LOWER):
                bound = float(stats["min_value"]) if as_float else stats["min_value"]
                low = _tighter(low, (bound, LOWER.get(check.name, stats.get("include_min", True))), lower=True)
            if check.name in ("in_range", *UPPER):
                bound = float(stats["max_value"]) if as_float else stats["max_value"]
                high = _tighter(high, (bound, UPPER.get(check.name, stats.get("include_max", True))), lower=False)
    return Rule(column, dtype, bool(spec.nullable), *(low or (None, True)), *(high or (None, True)),
                allowed=allowed), other


class RequestReader:
    """Checks request rows (dicts of feature -> JSON value) and builds the frame the model expects."""

    def __init__(self, contract: Contract):
        self.contract = contract
        compiled = [_rule(contract, c) for c in contract.feature_columns]
        self.rules = {rule.column: rule for rule, _ in compiled}
        self.pandera = contract.feature_schema if any(other for _, other in compiled) else None

    def check(self, rows: list, where: str = "instances") -> list[dict]:
        """The rows, if every value keeps the contract; else a ClientError naming each problem."""
        if not isinstance(rows, list):
            raise ClientError(400, f"'{where}' must be a list of objects")
        if not rows:
            raise ClientError(400, f"'{where}' is empty: send at least one row")
        problems = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                problems.append({"field": f"{where}[{i}]", "problem": "must be an object of feature -> value"})
                continue
            for name in row.keys() - self.rules.keys():
                problems.append({"field": f"{where}[{i}].{name}", "problem": "unknown feature"})
            for name, rule in self.rules.items():
                if name not in row:
                    problems.append({"field": f"{where}[{i}].{name}", "problem": "missing feature"})
                    continue
                why = rule.problem(row[name])
                if why:
                    problems.append({"field": f"{where}[{i}].{name}", "problem": why})
            if len(problems) >= MAX_PROBLEMS:
                break
        if problems:
            raise ClientError(422, _summary(problems), problems[:MAX_PROBLEMS])
        if self.pandera is not None:
            try:
                self.pandera.validate(self.frame(rows), lazy=True)
            except pa.errors.SchemaErrors as exc:
                cases = exc.failure_cases.head(MAX_PROBLEMS)
                problems = [{"field": f"{where}[{c['index']}].{c['column']}",
                             "problem": f"check {c['check']} failed for {c['failure_case']!r}"}
                            for _, c in cases.iterrows()]
                raise ClientError(422, _summary(problems), problems) from None
        return rows

    def frame(self, rows: list[dict]) -> pd.DataFrame:
        """The model's input frame for checked rows, with the contract's dtypes."""
        return pd.DataFrame({name: rule.as_column([row[name] for row in rows]) for name, rule in self.rules.items()})


def _summary(problems: list[dict]) -> str:
    first = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return f"invalid request: {first}{more}"


class _NotFinite(ValueError):
    """A number JSON cannot carry: Infinity, or beyond a 64-bit float."""


def _constant(text: str):
    if text == "NaN":
        return None
    raise _NotFinite(f"{text} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"{text} is beyond the range of a 64-bit float")
    return value


def parse_json(body: bytes):
    """The body as JSON, or a 400. MLflow clients send NaN for missing values, which strict parsers refuse: NaN
    reads as null. Infinity, numbers beyond float range and nesting deeper than 1024 levels are refused."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(body, parse_constant=_constant, parse_float=_finite)
        except _NotFinite as refused:
            raise ClientError(400, f"malformed JSON: {refused}") from None
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's parser can go
            raise ClientError(400, f"malformed JSON: {exc}") from None


def rows_from_body(payload) -> tuple[list, str]:
    """Rows from the KServe v1 body or MLflow's dataframe_split / dataframe_records bodies."""
    if not isinstance(payload, dict):
        raise ClientError(400, "the body must be a JSON object")
    for key in ("instances", "dataframe_records", "inputs"):
        if key in payload:
            return payload[key], key
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list) \
                or not isinstance(split.get("data"), list):
            raise ClientError(400, "'dataframe_split' must hold 'columns' (list) and 'data' (list of rows)")
        columns = split["columns"]
        rows = []
        for i, values in enumerate(split["data"]):
            if not isinstance(values, list) or len(values) != len(columns):
                raise ClientError(400, f"dataframe_split.data[{i}] must be a list of {len(columns)} values")
            rows.append(dict(zip(columns, values)))
        return rows, "dataframe_split.data"
    raise ClientError(400, "the body must hold 'instances', 'dataframe_records', 'dataframe_split' or 'inputs'")
