"""Turn request rows into a model-ready frame, checking each value against the feature contract.

pandera takes about 10 ms per call whatever the row count, more than the model itself, so the
contract's column checks (dtype, nullability, ranges, allowed values) are compiled here into plain
per-value tests. A contract using any other pandera check is still enforced: the frame then also goes
through pandera.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from components.contract import Contract

MAX_PROBLEMS = 20
FAST_CHECKS = {"in_range", "greater_than_or_equal_to", "greater_than", "less_than_or_equal_to", "less_than",
               "isin"}


class ClientError(ValueError):
    """A request the server rejects with a 4xx and a JSON body naming each problem."""

    def __init__(self, status: int, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.status, self.problems = status, problems or []

    def body(self) -> dict:
        return {"error": str(self), "problems": self.problems}


INT64 = (-(2**63), 2**63 - 1)


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

    def problem(self, value) -> str | None:
        """Why `value` breaks this column's contract, or None."""
        if value is None:
            return None if self.nullable else "must not be null"
        family = self.family
        if family == "bool":
            return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
        if family in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"must be a number, got {value!r}"
            if not math.isfinite(value):
                return f"must be finite, got {value!r}"
            if family == "int" and not (float(value).is_integer() and INT64[0] <= value <= INT64[1]):
                return f"must be a whole number within 64 bits, got {value!r}"
            if self.lo is not None and (value < self.lo or (value == self.lo and not self.lo_inclusive)):
                return f"{value!r} is below the allowed minimum {self.lo}"
            if self.hi is not None and (value > self.hi or (value == self.hi and not self.hi_inclusive)):
                return f"{value!r} is above the allowed maximum {self.hi}"
            return None
        if not isinstance(value, str):
            return f"must be a string, got {value!r}"
        if self.allowed is not None and value not in self.allowed:
            return f"{value!r} is not one of {sorted(self.allowed)}"
        return None

    def as_column(self, values: list):
        """The values as the column training saw: the contract's dtype, missing as that dtype's NA."""
        if self.family == "str":
            return np.array(values, dtype=object)
        try:
            return np.array(values, dtype=np.dtype(self.dtype))  # float64, int64, bool: the fast path
        except TypeError:  # pandas' nullable dtypes (Int64, boolean, ...), which numpy does not know
            return pd.array(values, dtype=self.dtype)


def _rule(contract: Contract, column: str) -> tuple[Rule, bool]:
    """The column's Rule, and whether it has checks the Rule cannot express."""
    spec = contract.schema.columns[column]
    bounds = contract.bounds(column)
    allowed = contract.allowed(column)
    other = any(check.name not in FAST_CHECKS for check in spec.checks)
    return Rule(column, contract.dtype(column), bool(spec.nullable), *bounds,
                allowed=None if allowed is None else frozenset(allowed)), other


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
