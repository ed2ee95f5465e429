"""validate_data prints its report to the step's log: KFP uploads no outputs of a failed step."""
import pytest
from kfp.dsl import Artifact, Dataset, Markdown

from components import dataio
from components.validate.component import validate_data
from components.validate.logic import ValidationFailed
from tests.conftest import SCHEMA


def run(tmp_path, frame):
    data = tmp_path / "data.parquet"
    dataio.write_table(frame, str(data))
    outputs = {name: cls(name=name, uri=str(tmp_path / name), metadata={})
               for name, cls in (("validated", Dataset), ("report", Markdown), ("failure_cases", Artifact))}
    validate_data.python_func(data_uri=str(data), schema_uri=str(SCHEMA), **outputs)


def test_the_report_is_in_the_log_on_success(tmp_path, transactions, capsys):
    run(tmp_path, transactions)
    log = capsys.readouterr().out
    assert "## Data validation: passed" in log and f"rows: {len(transactions)}" in log


def test_the_report_is_in_the_log_on_failure(tmp_path, transactions, capsys):
    bad = transactions.copy()
    bad.loc[:4, "hour_of_day"] = 99
    with pytest.raises(ValidationFailed):
        run(tmp_path, bad)
    log = capsys.readouterr().out
    assert "## Data validation: FAILED" in log
    (row,) = [line for line in log.splitlines() if line.startswith("| hour_of_day |")]
    assert "| 5 |" in row and "99" in row
