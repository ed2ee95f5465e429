"""The loop closed under kfp.local, against a real MLflow server: a small training run deploys version 1, the
model server's log writer records drifted traffic, and two consecutive drift-check pipeline runs submit one
retraining (a request in the outbox, which the local runner carries out as a training run after the check),
whose version carries the reason."""
import json
from dataclasses import replace

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from components import dataio
from components.trigger import logic as trigger
from mlops import cli, datagen, local
from pipelines import defaults
from serving.inference_log import InferenceLogger
from tests.conftest import ROOT

MODEL = "drift-loop"
pytestmark = pytest.mark.filterwarnings("ignore")
# small and quick: a linear model, no tuning, gates a 2,000-row model meets
TRAINING = {"seed": 1, "test_size": 0.25, "estimator": "logistic_regression", "params": {"max_iter": 200},
            "tuning": {}, "importance": {"n_repeats": 1, "max_rows": 500}}
GATES = {"metrics": {"roc_auc": {"minimum": 0.6}, "edge_cases_passed": {"minimum": 1}}}


def log_traffic(log_uri: str, version: str, rows: int, seed: int) -> None:
    """What the server writes when it serves `rows` drifted requests with `version`."""
    frame = datagen.generate(rows, seed, drift=2.0).drop(columns=["is_fraud"])
    writer = InferenceLogger(log_uri, MODEL, flush_seconds=0.05)
    writer.log(frame, np.zeros(rows, dtype=int), np.zeros(rows), version, "stable", [f"r{i}" for i in range(rows)])
    writer.close()


def test_drift_submits_one_retraining_tagged_with_its_reason(mlflow_server, tmp_path, capsys):
    home, log_uri = tmp_path / "home", str(tmp_path / "inference-log")
    settings = replace(defaults.load(root=ROOT), schema_uri=str(ROOT / "schemas" / "features_v2.json"),
                       tracking_uri=mlflow_server, model_name=MODEL, training_config=TRAINING, quality_gates=GATES,
                       deployment_target="local")
    for name, seed in (("first.parquet", 1), ("new.parquet", 2)):
        dataio.write_table(datagen.generate(2000, seed), str(tmp_path / name))
    v1 = local.run_training(str(tmp_path / "first.parquet"), settings, home, commit="0123abcd")
    assert v1.deployment["outcome"] == "promoted", v1.log.read_text()[-3000:]

    drift = replace(defaults.load_drift(root=ROOT), tracking_uri=mlflow_server, model_name=MODEL)
    parameters = {"drift_config": {**drift.config, "min_samples": 1000},
                  "training_data_uri": str(tmp_path / "new.parquet"),
                  "training_parameters": {"training_config": TRAINING, "quality_gates": GATES}}
    log_traffic(log_uri, "1", 1200, seed=3)
    first = local.run_drift_check(log_uri, drift, home, parameters)
    assert first.result["decision"] == "retrain" and first.result["samples"] == 1200, first.result["reason"]
    assert {"amount", "device_trust_score", "txn_count_1h"} <= set(first.result["drifted_features"])
    assert first.retraining["submitted"] is True, first.retraining
    run = first.retraining["run"]  # the request in the outbox, carried out by the runner after the check
    (retrained,) = first.retrainings
    assert (retrained.request, retrained.status) == (run, "succeeded")
    assert (retrained.run.run_dir / "register-model" / "registration").is_file()

    client = MlflowClient(mlflow_server)
    v2 = client.get_model_version_by_alias(MODEL, "production")  # deploy target local promotes it
    assert v2.version == "2" and v2.tags["trigger_reason"] == trigger.REASON
    why = json.loads(v2.tags["trigger_details"])
    assert why["drifted_features"] == {f: first.result["scores"][f] for f in first.result["drifted_features"]}
    assert why["samples"] == 1200 and why["model_version"] == "1" and why["drift_check_run_id"]
    assert client.get_registered_model(MODEL).tags[trigger.RUN] == run

    # an hour later version 2 serves the same drifted traffic: retraining is due again, and not submitted
    log_traffic(log_uri, "2", 1200, seed=4)
    second = local.run_drift_check(log_uri, drift, home, parameters)
    assert second.result["decision"] == "retrain" and second.result["model_version"] == "2"
    assert second.retraining["submitted"] is False and second.retraining["reason"].startswith("cooldown:")
    assert run in second.retraining["reason"]
    assert [v.version for v in client.search_model_versions(f"name = '{MODEL}'")] == ["2", "1"]
    assert len(list(local.pipeline_root(home).glob("training-*"))) == 2  # version 1's and the one retraining

    # `mlops run drift-check` does the same in one process, with the same local state: the cooldown holds
    (tmp_path / "drift.yaml").write_text(yaml.safe_dump(parameters["drift_config"]))
    assert cli.main(["run", "drift-check", "--log-uri", log_uri, "--model-name", MODEL, "--tracking-uri", mlflow_server,
                     "--drift-config", str(tmp_path / "drift.yaml"), "--training-data", str(tmp_path / "new.parquet"),
                     "--home", str(home), "--json"]) == 0
    third = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert third["decision"] == "retrain" and third["retraining"]["submitted"] is False
    assert third["retraining"]["reason"].startswith(f"cooldown: retraining run {run} (succeeded)")
