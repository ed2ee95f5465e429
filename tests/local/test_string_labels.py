"""A table whose label holds strings, the positive class sorting first ("fraud" < "legit"), end to end:
`mlops schema infer`, `mlops run training` (kfp.local, a real MLflow server), then `mlops serve`."""
import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from components import dataio
from mlops import datagen
from tests.conftest import ROOT
from tests.serving.conftest import Server, http, records

MODEL = "strings-e2e"
pytestmark = pytest.mark.filterwarnings("ignore")


def mlops(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mlops.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, env={**os.environ, **(env or {})})


def test_string_labels_train_register_and_serve(tmp_path, mlflow_server):
    table = datagen.generate(10_000, seed=5)
    table["is_fraud"] = np.where(table["is_fraud"] == 1, "fraud", "legit")
    data = tmp_path / "strings.parquet"
    dataio.write_table(table, str(data))

    schema = tmp_path / "strings.json"
    inferred = mlops("schema", "infer", "--data", data, "--label", "is_fraud", "--out", schema)
    assert inferred.returncode == 2 and "give --positive-class VALUE" in inferred.stderr
    inferred = mlops("schema", "infer", "--data", data, "--label", "is_fraud", "--positive-class", "fraud",
                     "--out", schema)
    assert inferred.returncode == 0, inferred.stderr
    assert json.loads(schema.read_text())["positive_class"] == "fraud"

    config = yaml.safe_load((ROOT / "configs" / "production.yaml").read_text())
    config["registry"]["model_name"] = MODEL
    config["training"]["tuning"]["param_grid"] = {"max_leaf_nodes": [15, 31]}  # scoring: average_precision
    config["decision"] = {"objective": "fixed", "threshold": 0.5}  # as configured: served at 0.5
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    gates = {"metrics": {"roc_auc": {"minimum": 0.8}, "average_precision": {"minimum": 0.2},
                         "recall": {"minimum": 0.05}, "edge_cases_passed": {"minimum": 1}}}
    (tmp_path / "gates.yaml").write_text(yaml.safe_dump(gates))
    (tmp_path / "baseline.yaml").write_text(yaml.safe_dump({"roc_auc": 0.8}))
    run = mlops("run", "training", "--data", data, "--schema", schema, "--config", tmp_path / "config.yaml",
                "--gates", tmp_path / "gates.yaml", "--baseline", tmp_path / "baseline.yaml",
                "--tracking-uri", mlflow_server, "--home", tmp_path / "home", "--git-commit", "abc")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "quality gate: PASSED" in run.stdout and f"model '{MODEL}' version 1" in run.stdout
    (evaluation,) = (tmp_path / "home" / "pipeline_root").glob("*/evaluate-model/evaluation")
    assert json.loads(evaluation.read_text())["class_names"] == ["legit", "fraud"]

    mlflow.set_tracking_uri(mlflow_server)
    version = mlflow.MlflowClient().get_model_version(MODEL, "1")
    assert (version.tags["decision_objective"], version.tags["decision_threshold"]) == ("fixed", "0.5")
    model = mlflow.sklearn.load_model(f"models:/{MODEL}/1")
    server = Server({"WORKERS": "1", "MLFLOW_TRACKING_URI": mlflow_server},
                    ["--model-uri", f"models:/{MODEL}/1"], tmp_path / "server.log")
    try:
        server.wait()
        features = table.drop(columns=["is_fraud"])
        predicted = model.predict(features)
        rows = pd.concat([features[predicted == "fraud"].head(10), features[predicted == "legit"].head(10)])
        status, body = http("POST", f"{server.url}/v1/models/{MODEL}:predict", {"instances": records(rows)})
    finally:
        server.stop()
    assert status == 200, body
    assert body["predictions"] == model.predict(rows).tolist()
    assert body["predictions"] == ["fraud"] * 10 + ["legit"] * 10  # the labels as trained
    fraud = list(model.classes_).index("fraud")
    assert np.allclose(body["probabilities"], model.predict_proba(rows)[:, fraud])
    assert all((p >= 0.5) == (label == "fraud") for p, label in zip(body["probabilities"], body["predictions"]))
