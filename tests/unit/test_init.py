"""`mlops init` on public tables shipped with scikit-learn: the contract, gates and baseline it writes."""
import json
import shlex

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from components import contract, dataio
from components.gates import check_gates
from mlops import starter
from mlops.cli import main, parser


@pytest.fixture(scope="module")
def cancer():
    """The Wisconsin breast cancer table: 569 rows, 30 numeric features, target 1 = benign."""
    return load_breast_cancer(as_frame=True).frame


def with_strings(cancer):
    """The same table with a "Yes"/"No" label (malignant), a categorical size and a boolean."""
    table = cancer.drop(columns="target")
    table["size"] = pd.qcut(cancer["mean radius"], 3, labels=["small", "medium", "large"]).astype(str)
    table["smooth"] = cancer["mean smoothness"] > cancer["mean smoothness"].median()
    table["malignant"] = np.where(cancer["target"] == 0, "Yes", "No")
    return table


def init(tmp_path, data, label, positive, *extra):
    return main(["init", "--data", str(data), "--label", label, "--positive-class", positive,
                 "--out", str(tmp_path / "start"), *extra])


def written(tmp_path):
    out = tmp_path / "start"
    spec = contract.load(str(out / starter.SCHEMA))
    gates_doc = yaml.safe_load((out / starter.GATES).read_text())
    gates = check_gates(gates_doc, starter.GATES)
    return spec, gates_doc, gates, yaml.safe_load((out / starter.BASELINE).read_text())


def test_init_on_breast_cancer(tmp_path, cancer, capsys):
    data = tmp_path / "cancer.parquet"
    dataio.write_table(cancer, str(data))
    assert init(tmp_path, data, "target", "1") == 0
    spec, gates_doc, gates, baseline = written(tmp_path)
    assert spec.positive_class == 1 and set(spec.features.values()) == {"numeric"}
    assert gates.slices.resolve(spec) == [] and "max_slice_recall_gap" not in gates.metrics
    assert gates.metrics["roc_auc"]["comparison"] == "gte" and gates.metrics["roc_auc"]["minimum"] > 0.5

    reference = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
                                cancer[spec.feature_columns], cancer["target"], cv=starter.folds(),
                                scoring="roc_auc")
    assert 0.5 < baseline["roc_auc"] < 1 and baseline["roc_auc"] == pytest.approx(reference.mean(), abs=0.01)
    assert 0.5 < baseline["average_precision"] < 1

    out = capsys.readouterr().out
    command = out.strip().splitlines()[-1].removeprefix("next: ")
    args = parser().parse_args(shlex.split(command)[1:])  # the printed command parses, flags and all
    assert (args.data, args.schema, args.gates, args.baseline) == (
        str(data), *(str(tmp_path / "start" / f) for f in (starter.SCHEMA, starter.GATES, starter.BASELINE)))


def test_init_with_string_labels_and_slices(tmp_path, cancer):
    data = tmp_path / "cancer.csv"
    with_strings(cancer).to_csv(data, index=False)
    assert init(tmp_path, data, "malignant", "Yes") == 0
    spec, _, gates, baseline = written(tmp_path)
    assert spec.positive_class == "Yes" and spec.allowed("malignant") == ["No", "Yes"]
    assert spec.categorical == ["size"] and spec.boolean == ["smooth"]
    assert gates.slices.resolve(spec) == ["size", "smooth"]
    # 569 rows: a fifth of them never holds a slice of 100 rows and 20 positives, so a gap could not be measured
    assert "max_slice_recall_gap" not in gates.metrics
    positive_rate = (cancer["target"] == 0).mean()
    assert positive_rate < baseline["average_precision"] < 1 and 0.5 < baseline["roc_auc"] < 1
    assert positive_rate < gates.metrics["average_precision"]["minimum"] < baseline["average_precision"]


def test_a_table_large_enough_to_slice_gets_the_gap_gate():
    digits = load_digits(as_frame=True).frame
    table = digits.drop(columns="target").assign(
        ink=pd.qcut(digits.drop(columns="target").sum(axis=1), 3, labels=["light", "medium", "heavy"]).astype(str),
        high=np.where(digits["target"] >= 5, "Yes", "No"))
    doc, gates_doc, baseline = starter.starting_set(table, "high", "Yes", "digits")
    assert gates_doc["slices"]["columns"] == ["ink"] and gates_doc["metrics"]["max_slice_recall_gap"]
    assert 0.5 < baseline["roc_auc"] < 1


@pytest.mark.parametrize("args, message", [
    (("--label", "nope", "--positive-class", "Yes"), "label column 'nope' is not in the data"),
    (("--label", "malignant", "--positive-class", "Maybe"), "--positive-class 'Maybe' is not a value of the label"),
    (("--label", "size", "--positive-class", "small"), "label column 'size' has 3 value(s)"),
])
def test_bad_input_is_an_error_and_writes_nothing(tmp_path, cancer, capsys, args, message):
    data = tmp_path / "cancer.csv"
    with_strings(cancer).to_csv(data, index=False)
    assert main(["init", "--data", str(data), *args, "--out", str(tmp_path / "start")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "start").exists()


def test_unreadable_data_and_a_non_empty_folder(tmp_path, cancer, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    assert init(tmp_path, bad, "target", "1") == 2
    assert "bad.parquet: cannot read as Parquet" in capsys.readouterr().err
    assert not (tmp_path / "start").exists()

    data = tmp_path / "cancer.parquet"
    dataio.write_table(cancer, str(data))
    (tmp_path / "start").mkdir()
    (tmp_path / "start" / starter.SCHEMA).write_text("mine")
    assert init(tmp_path, data, "target", "1") == 2
    assert "folder is not empty; give --force" in capsys.readouterr().err
    assert (tmp_path / "start" / starter.SCHEMA).read_text() == "mine"
    assert init(tmp_path, data, "target", "1", "--force") == 0
    assert json.loads((tmp_path / "start" / starter.SCHEMA).read_text())["label"] == "target"
    assert sorted(p.name for p in (tmp_path / "start").iterdir()) == sorted(
        [starter.SCHEMA, starter.GATES, starter.BASELINE])
