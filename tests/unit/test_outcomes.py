import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from components import contract, outcomes
from mlops.cli import main

SCHEMA = "schemas/features_v2.json"  # label is_fraud, values 0/1


@pytest.fixture(scope="module")
def spec():
    return contract.load(SCHEMA)


def files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))


def ingest(root, spec, **frames):
    return outcomes.ingest({f"{k}.csv": pd.DataFrame(v) for k, v in frames.items()}, str(root), "m", spec)


@pytest.mark.parametrize("frame, needle", [
    ({"is_fraud": [1]}, "missing column(s) ['request_id']"),
    ({"request_id": ["a"]}, "missing column(s) ['is_fraud']"),
    ({"request_id": ["a", "", None], "is_fraud": [1, 0, 1]}, "'request_id': 2 empty request id(s)"),
    ({"request_id": ["a", "x" * 129], "is_fraud": [1, 0]}, "1 request id(s) over 128 characters"),
    ({"request_id": ["a", "b", "c"], "is_fraud": [1, 2, 7]}, "'is_fraud': 2 label value(s) the contract does not "
                                                             "know (known: [0, 1]), e.g. [2, 7] at row(s) [1, 2]"),
    ({"request_id": ["a", "b"], "is_fraud": ["legit", 1]}, "e.g. ['legit'] at row(s) [0]"),
    ({"request_id": ["a", "b", "c"], "is_fraud": [1, 0, 1], "row": [0, -1, 1.5]},
     "'row': 2 value(s) not a non-negative integer, e.g. [-1.0, 1.5] at row(s) [1, 2]"),
    ({"request_id": ["a", "b"], "is_fraud": [1, 0], "observed_at": ["2026-01-02T03:04:05Z", "yesterday"]},
     "'observed_at': 1 unparseable time(s), e.g. ['yesterday'] at row(s) [1]"),
])
def test_bad_input_names_what_is_wrong_and_writes_nothing(tmp_path, spec, frame, needle):
    good = {"request_id": ["ok"], "is_fraud": [1]}
    with pytest.raises(outcomes.OutcomesError) as err:
        outcomes.ingest({"good.csv": pd.DataFrame(good), "bad.csv": pd.DataFrame(frame)}, str(tmp_path), "m", spec)
    assert str(err.value).startswith("bad.csv: ") and needle in str(err.value)
    assert files(tmp_path) == []


def test_string_labels_are_checked_and_kept(tmp_path, words):
    with pytest.raises(outcomes.OutcomesError, match=r"known: \['fraud', 'legit'\]\), e.g. \[1\]"):
        ingest(tmp_path, words, a={"request_id": ["a", "b"], "is_fraud": ["fraud", 1]})
    [done] = ingest(tmp_path, words, a={"request_id": ["a", "b"], "is_fraud": ["fraud", "legit"]})
    assert done["rows"] == 2
    table = pq.read_table(done["files"][0])
    assert table.column("is_fraud").to_pylist() == ["fraud", "legit"]


def test_multi_row_requests_dates_and_stored_types(tmp_path, spec):
    [done] = ingest(tmp_path, spec, a={
        "request_id": ["r1", "r1", "r1", "r2"], "row": [0, 1, 2, 0], "is_fraud": [1, 0, 0, 1],
        "observed_at": ["2026-03-01T23:30:00+00:00", "2026-03-01T10:00:00Z", "2026-03-02T00:00:00Z", None]})
    today = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    assert done["dates"] == sorted(["2026-03-01", "2026-03-02", today]) and done["rows"] == 4
    assert [f.split("/")[:2] for f in files(tmp_path)] == [["model=m", f"date={d}"] for d in done["dates"]]
    table = pq.read_table(tmp_path / "model=m" / "date=2026-03-01")
    assert str(table.schema.field("request_id").type) in ("string", "large_string")
    assert str(table.schema.field("row").type) == "int64" and str(table.schema.field("is_fraud").type) == "int64"
    assert str(table.schema.field("observed_at").type) == "timestamp[ms, tz=UTC]"
    assert sorted(table.column("row").to_pylist()) == [0, 1]


def test_csv_and_parquet_and_idempotent_reingest_through_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OUTCOMES_URI", str(tmp_path / "out"))
    frame = pd.DataFrame({"request_id": ["a", "a", "b"], "row": [0, 1, 0], "is_fraud": [1, 0, 0],
                          "observed_at": ["2026-03-01T00:00:00Z"] * 3})
    frame.to_csv(tmp_path / "o.csv", index=False)
    frame.assign(request_id=["c", "c", "d"]).to_parquet(tmp_path / "o.parquet")
    args = ["outcomes", "ingest", str(tmp_path / "o.csv"), str(tmp_path / "o.parquet"), "--schema", SCHEMA]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model_name"] == "fraud-detection"
    assert [(f["rows"], f["dates"], f["duplicates"]) for f in result["files"]] == [(3, ["2026-03-01"], 0)] * 2
    written = files(tmp_path / "out")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("already ingested") == 2 and "3 duplicate(s) skipped, 0 conflicting" in out
    assert files(tmp_path / "out") == written


def test_conflicting_labels_are_kept_and_reported(tmp_path, spec):
    ingest(tmp_path, spec, a={"request_id": ["a", "b"], "is_fraud": [1, 0], "observed_at": ["2026-03-01"] * 2})
    first, second = ingest(tmp_path, spec,
                           b={"request_id": ["a", "b", "c"], "is_fraud": [0, 0, 1], "observed_at": ["2026-03-02"] * 3},
                           c={"request_id": ["c"], "is_fraud": [0], "observed_at": ["2026-03-03"]})
    assert (first["rows"], first["duplicates"], first["conflicting"]) == (2, 1, 1)
    assert (second["rows"], second["conflicting"]) == (1, 1)
    assert len(outcomes.stored(str(tmp_path), "m", spec)) == 5


def test_cli_errors_exit_2_and_write_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OUTCOMES_URI", raising=False)
    pd.DataFrame({"request_id": ["a"], "is_fraud": [3]}).to_csv(tmp_path / "bad.csv", index=False)
    assert main(["outcomes", "ingest", str(tmp_path / "bad.csv")]) == 2
    assert "give --outcomes-uri or set OUTCOMES_URI" in capsys.readouterr().err
    monkeypatch.setenv("OUTCOMES_URI", str(tmp_path / "out"))
    assert main(["outcomes", "ingest", str(tmp_path / "bad.csv"), "--model-name", "x"]) == 2
    assert "bad.csv: column 'is_fraud': 1 label value(s)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
