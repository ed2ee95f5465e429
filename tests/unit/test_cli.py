import json

from components import contract, dataio
from mlops.cli import main


def test_generate_then_infer_a_schema(tmp_path, capsys):
    data = tmp_path / "t.parquet"
    assert main(["data", "generate", "--rows", "500", "--seed", "2", "--drift", "0.5", "--out", str(data)]) == 0
    assert "500 rows" in capsys.readouterr().out and len(dataio.read_table(str(data))) == 500
    out = tmp_path / "schema.json"
    assert main(["schema", "infer", "--data", str(data), "--label", "is_fraud", "--out", str(out)]) == 0
    spec = contract.load(str(out))
    assert spec.label == "is_fraud" and spec.features["channel"] == "categorical"
    assert spec.features["card_present"] == "boolean" and spec.features["amount"] == "numeric"
    assert json.loads(out.read_text())["pandera"]["strict"] is True


def test_user_errors_exit_2_naming_the_file(tmp_path, capsys):
    assert main(["schema", "infer", "--data", str(tmp_path / "none.csv"), "--label", "y",
                 "--out", str(tmp_path / "s.json")]) == 2
    assert "none.csv: file not found" in capsys.readouterr().err
    assert main(["run", "training", "--schema", str(tmp_path / "missing.json"), "--home", str(tmp_path)]) == 2
    assert "missing.json: schema file not found" in capsys.readouterr().err
    assert not (tmp_path / "pipeline_root").exists()


def test_schema_infer_takes_ranges_from_the_sample_only_when_asked(tmp_path, capsys):
    data = tmp_path / "t.parquet"
    assert main(["data", "generate", "--rows", "300", "--seed", "4", "--out", str(data)]) == 0
    table = dataio.read_table(str(data))
    loose, strict = tmp_path / "loose.json", tmp_path / "strict.json"
    assert main(["schema", "infer", "--data", str(data), "--label", "is_fraud", "--out", str(loose)]) == 0
    assert "types, kinds and signs" in capsys.readouterr().out
    assert main(["schema", "infer", "--data", str(data), "--label", "is_fraud", "--out", str(strict),
                 "--strict-from-sample"]) == 0
    assert "ranges, non-nullability and categorical values from the sample" in capsys.readouterr().out
    loose, strict = contract.load(str(loose)), contract.load(str(strict))
    assert loose.bounds("amount") == (0, True, None, True) and loose.allowed("channel") is None
    assert loose.nullable("amount") and not strict.nullable("amount")
    assert strict.bounds("amount") == (table["amount"].min(), True, table["amount"].max(), True)
    assert sorted(strict.allowed("channel")) == sorted(table["channel"].unique())
    assert loose.allowed("is_fraud") == strict.allowed("is_fraud") == [0, 1]
