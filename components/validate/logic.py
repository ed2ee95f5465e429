"""Validate a table against the feature contract with pandera (lazy: every failure at once)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa

from components.contract import Contract

MAX_VALUES_SHOWN = 5


class ValidationFailed(ValueError):
    """The data breaks the contract; the message names each column, check and offending values."""

    def __init__(self, message: str, report: "ValidationReport"):
        super().__init__(message)
        self.report = report


@dataclass
class ValidationReport:
    source: str
    rows: int
    columns: int
    contract: str
    failures: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> str:
        return json.dumps({
            "source": self.source, "rows": self.rows, "columns": self.columns,
            "contract": self.contract, "passed": self.passed, "failures": self.failures,
        }, indent=2, default=str)

    def to_markdown(self) -> str:
        verdict = "passed" if self.passed else f"FAILED ({len(self.failures)} failing checks)"
        lines = [f"## Data validation: {verdict}", "",
                 f"- data: `{self.source}`", f"- rows: {self.rows}, columns: {self.columns}",
                 f"- contract: `{self.contract}`", ""]
        if self.failures:
            lines += ["| column | check | failures | examples |", "|---|---|---|---|"]
            lines += [f"| {f['column']} | {f['check']} | {f['count']} | {', '.join(map(str, f['examples']))} |"
                      for f in self.failures]
        return "\n".join(lines) + "\n"

    def write(self, markdown_path: str, json_path: str) -> None:
        with open(markdown_path, "w") as fh:
            fh.write(self.to_markdown())
        with open(json_path, "w") as fh:
            fh.write(self.to_json())

    def summary(self) -> str:
        parts = [_describe(f) for f in self.failures]
        return f"{self.source} breaks the contract {self.contract}: " + "; ".join(parts)


TABLE_CHECKS = {"column_in_dataframe": "missing column (column_in_dataframe)",
                "column_in_schema": "unexpected column (column_in_schema)"}


def _describe(failure: dict) -> str:
    column, check = failure["column"], failure["check"]
    if check in TABLE_CHECKS.values():
        return f"column {column!r}: {check}"
    if check.startswith("dtype("):  # pandera reports the actual dtype as the failure case
        return f"column {column!r}: dtype {failure['examples'][0]}, expected {check[7:-2]}"
    return (f"column {column!r}: check {check!r} failed for {failure['count']} row(s), e.g. "
            f"{', '.join(map(repr, failure['examples']))}")


def _failures(cases: pd.DataFrame) -> list[dict]:
    table_level = cases["check"].isin(list(TABLE_CHECKS))
    cases = cases.assign(
        column=cases["column"].where(~table_level, cases["failure_case"]).fillna("<table>").astype(str),
        check=cases["check"].astype(str).replace(TABLE_CHECKS))
    out = []
    for (column, check), group in cases.groupby(["column", "check"], sort=True):
        examples = group["failure_case"].drop_duplicates().head(MAX_VALUES_SHOWN).tolist()
        out.append({"column": column, "check": check, "count": int(len(group)),
                    "examples": [None if pd.isna(v) else v for v in examples]})
    return out


def validate(df: pd.DataFrame, contract: Contract, source: str = "<data>") -> tuple[pd.DataFrame, ValidationReport]:
    """Return the validated frame and its report; raise ValidationFailed naming every failure."""
    report = ValidationReport(source=source, rows=len(df), columns=df.shape[1],
                              contract=f"{contract.name} v{contract.version}")
    try:
        validated = contract.schema.validate(df, lazy=True, inplace=True)  # no copy of the table
    except pa.errors.SchemaErrors as exc:
        report.failures = _failures(exc.failure_cases)
        raise ValidationFailed(report.summary(), report) from None
    return validated, report
