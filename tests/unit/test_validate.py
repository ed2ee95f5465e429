import numpy as np
import pytest

from components import dataio
from components.validate.logic import ValidationFailed, validate


def failures(df, contract):
    with pytest.raises(ValidationFailed) as err:
        validate(df, contract, source="t.parquet")
    return err.value


def test_valid_data_passes(transactions, contract):
    clean, report = validate(transactions, contract, source="t.parquet")
    assert report.passed and report.rows == len(transactions) == len(clean)
    assert "passed" in report.to_markdown()


@pytest.mark.parametrize("breakage, column, check", [
    (lambda d: d.drop(columns=["channel"]), "channel", "column_in_dataframe"),
    (lambda d: d.assign(promo_code="X"), "promo_code", "column_in_schema"),
    (lambda d: d.assign(hour_of_day=d["hour_of_day"].astype(str)), "hour_of_day", "dtype('int64')"),
    (lambda d: d.assign(amount=d["amount"].astype("float32")), "amount", "dtype('float64')"),
    (lambda d: d.assign(amount=d["amount"].where(d.index != 3, np.nan)), "amount", "not_nullable"),
    (lambda d: d.assign(hour_of_day=d["hour_of_day"].where(d.index != 5, 31)), "hour_of_day", "in_range(0, 23)"),
    (lambda d: d.assign(channel=d["channel"].where(d.index != 7, "fax")), "channel", "isin"),
])
def test_each_breakage_is_named(transactions, contract, breakage, column, check):
    err = failures(breakage(transactions.copy()), contract)
    named = [f for f in err.report.failures if f["column"] == column]
    assert named and check in named[0]["check"], err.report.failures
    assert column in str(err) and "t.parquet" in str(err)
    if "dtype" in check:
        assert "expected" in str(err)


def test_offending_values_are_reported(transactions, contract):
    df = transactions.copy()
    df.loc[[1, 2], "amount"] = [-5.0, 99999.0]
    err = failures(df, contract)
    (row,) = [f for f in err.report.failures if f["column"] == "amount"]
    assert row["count"] == 2 and set(row["examples"]) == {-5.0, 99999.0}
    assert "-5.0" in str(err) and "| amount |" in err.report.to_markdown()


def test_unreadable_inputs(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(dataio.DataError, match="empty.csv: the file is empty"):
        dataio.read_table(str(empty))
    with pytest.raises(dataio.DataError, match="nope.parquet: file not found"):
        dataio.read_table(str(tmp_path / "nope.parquet"))
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"this is not parquet")
    with pytest.raises(dataio.DataError, match="corrupt.parquet: cannot read as Parquet"):
        dataio.read_table(str(corrupt))
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b\n")
    with pytest.raises(dataio.DataError, match="no rows"):
        dataio.read_table(str(header_only))


def test_csv_and_parquet_round_trip(tmp_path, transactions, contract):
    transactions.to_csv(tmp_path / "t.csv", index=False)
    validate(dataio.read_table(str(tmp_path / "t.csv")), contract)
    dataio.write_table(transactions, str(tmp_path / "sub" / "t.parquet"))
    validate(dataio.read_table(str(tmp_path / "sub" / "t.parquet")), contract)
    import hashlib

    _, digest = dataio.read_table_and_sha256(str(tmp_path / "t.csv"))
    assert digest == hashlib.sha256((tmp_path / "t.csv").read_bytes()).hexdigest()
