"""`mlops dataset from-log`: the served rows with an outcome, features as logged and label from the outcome, a
table that validates against the contract; a flagged row without an outcome is never in it."""
import json

import numpy as np
import pandas as pd

from components import contract
from mlops import cli, datagen
from serving.inference_log import InferenceLogger
from tests.conftest import ROOT

SCHEMA = str(ROOT / "schemas" / "features_v2.json")


def test_from_log_writes_the_labelled_served_rows(tmp_path, capsys):
    log_uri, outcomes_uri = str(tmp_path / "log"), str(tmp_path / "outcomes")
    table = datagen.generate(600, seed=5)
    features = table.drop(columns=[datagen.LABEL])
    ids = [f"req-{i // 3}" for i in range(600)]  # requests of three rows each
    rows = [i % 3 for i in range(600)]
    writer = InferenceLogger(log_uri, "fraud", flush_seconds=0.05)
    probability = np.linspace(0, 1, 600)
    writer.log(features, (probability >= 0.5).astype(int), probability, "1", "stable", ids, rows)
    writer.log(features.iloc[:30], np.zeros(30, int), probability[:30], "1", "stable", ids[:30], rows[:30])  # retried
    writer.close()
    labelled = np.arange(0, 600, 2)  # every other row's truth has arrived
    pd.DataFrame({"request_id": np.array(ids)[labelled], "row": np.array(rows)[labelled],
                  datagen.LABEL: table[datagen.LABEL].to_numpy()[labelled]}).to_csv(tmp_path / "o.csv", index=False)
    assert cli.main(["outcomes", "ingest", str(tmp_path / "o.csv"), "--outcomes-uri", outcomes_uri,
                     "--model-name", "fraud", "--schema", SCHEMA]) == 0
    capsys.readouterr()
    out = tmp_path / "served.parquet"
    assert cli.main(["dataset", "from-log", "--log-uri", log_uri, "--outcomes-uri", outcomes_uri, "--model-name",
                     "fraud", "--schema", SCHEMA, "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    served = pd.read_parquet(out)
    spec = contract.load(SCHEMA)
    assert summary["rows"] == len(served) == len(labelled)  # the retried rows count once
    assert list(served.columns) == [*spec.feature_columns, spec.label]
    expected = table.iloc[labelled].reset_index(drop=True)
    key = ["amount", "account_age_days", "hour_of_day"]
    pd.testing.assert_frame_equal(served.sort_values(key).reset_index(drop=True),
                                  expected.sort_values(key).reset_index(drop=True), check_dtype=False)
    spec.schema.validate(served)


def test_from_log_refuses_a_window_end_without_offset(tmp_path, capsys):
    code = cli.main(["dataset", "from-log", "--log-uri", str(tmp_path), "--outcomes-uri", str(tmp_path),
                     "--schema", SCHEMA, "--out", str(tmp_path / "x.parquet"), "--until", "2026-01-01T00:00"])
    assert code == 2 and "UTC offset" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
