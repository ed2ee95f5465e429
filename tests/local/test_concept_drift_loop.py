"""Concept drift closed under kfp.local, against a real MLflow server: the features the model serves look as in
training, but fraud has changed its pattern; the outcomes show the model missing it. The monitoring run answers
no input drift and `retrain` for performance, submits exactly one retraining (tagged with the performance reason
and the failed live gates), and a second check reports the cooldown."""
import json
from dataclasses import replace

import pytest
import yaml
from mlflow import MlflowClient

from components import dataio, registry
from components.scoring import positive_probability
from components.trigger import logic as trigger
from mlops import cli, datagen, local
from pipelines import defaults
from serving.inference_log import InferenceLogger
from tests.conftest import ROOT

MODEL = "concept-loop"
pytestmark = pytest.mark.filterwarnings("ignore")
TRAINING = {"seed": 1, "test_size": 0.25, "estimator": "logistic_regression", "params": {"max_iter": 300},
            "tuning": {}, "importance": {"n_repeats": 1, "max_rows": 500}}
GATES = {"metrics": {"roc_auc": {"minimum": 0.6}, "edge_cases_passed": {"minimum": 1}}}
LIVE = {"min_labelled": 500, "min_labelled_positives": 40, "window_days": 30, "label_maturity_days": 0,
        "metrics": {"recall": {"minimum": 0.3, "comparison": "gte", "tolerance": 0.1},
                    "roc_auc": {"comparison": "gte", "tolerance": 0.03}}}
SERVED = 5000


def serve(log_uri: str, tracking_uri: str, tmp_path) -> str:
    """Score concept-drifted traffic with the production model as the server would, log it, and write the
    truth that arrives later as an outcomes file (string request ids, one row per request)."""
    champion = registry.champion(tracking_uri, MODEL)
    table = datagen.generate(SERVED, seed=3, concept=1.0)
    features = table.drop(columns=[datagen.LABEL])
    probability = positive_probability(champion.model, features, champion.contract)
    threshold = champion.decision["threshold"]
    ids = [f"txn-{i:05d}" for i in range(SERVED)]
    writer = InferenceLogger(log_uri, MODEL, flush_seconds=0.05)
    writer.log(features, (probability >= threshold).astype(int), probability, champion.version, "stable", ids)
    writer.close()
    path = tmp_path / "outcomes.csv"
    table.assign(request_id=ids)[["request_id", datagen.LABEL]].to_csv(path, index=False)
    return str(path)


def test_concept_drift_retrains_for_performance_once(mlflow_server, tmp_path, capsys):
    home, log_uri, outcomes_uri = tmp_path / "home", str(tmp_path / "log"), str(tmp_path / "outcomes")
    settings = replace(defaults.load(root=ROOT), schema_uri=str(ROOT / "schemas" / "features_v2.json"),
                       tracking_uri=mlflow_server, model_name=MODEL, training_config=TRAINING, quality_gates=GATES,
                       deployment_target="local")
    dataio.write_table(datagen.generate(4000, 1), str(tmp_path / "first.parquet"))
    dataio.write_table(datagen.generate(4000, 2, concept=1.0), str(tmp_path / "new.parquet"))
    v1 = local.run_training(str(tmp_path / "first.parquet"), settings, home, commit="0123abcd")
    assert v1.deployment["outcome"] == "promoted", v1.log.read_text()[-3000:]

    outcomes_file = serve(log_uri, mlflow_server, tmp_path)
    gates_file = tmp_path / "gates.yaml"
    gates_file.write_text(yaml.safe_dump({**GATES, "live": LIVE}))
    assert cli.main(["outcomes", "ingest", outcomes_file, "--outcomes-uri", outcomes_uri, "--model-name", MODEL,
                     "--schema", str(ROOT / "schemas" / "features_v2.json")]) == 0

    drift = replace(defaults.load_drift(root=ROOT, gates=gates_file), tracking_uri=mlflow_server, model_name=MODEL)
    parameters = {"drift_config": {**drift.config, "min_samples": 1000}, "outcomes_uri": outcomes_uri,
                  "training_data_uri": str(tmp_path / "new.parquet"),
                  # the retrained version waits for its rollout: production stays version 1, still missing fraud
                  "training_parameters": {"training_config": TRAINING, "quality_gates": GATES,
                                          "deployment_target": "none"}}
    first = local.run_drift_check(log_uri, drift, home, parameters, training=settings)
    result, performance = first.result, first.result["performance"]
    assert result["drift_decision"] == "no_drift", result["reason"]
    assert (result["decision"], result["reasons"]) == ("retrain", ["performance"]), performance["reason"]
    assert performance["decision"] == "performance_degraded" and performance["model_version"] == "1"
    assert performance["logged"] == performance["labelled"] == SERVED and performance["coverage"] == 1.0
    assert performance["metrics"]["recall"] < float(v1.evaluation["metrics"]["recall"]) - 0.1
    failed = {row["metric"] for row in performance["gates"] if row["verdict"] == "fail"}
    assert "recall" in failed
    assert first.retraining["submitted"] is True, first.retraining
    (retrained,) = first.retrainings
    assert retrained.status == "succeeded", retrained.error

    client = MlflowClient(mlflow_server)
    v2 = client.get_model_version(MODEL, "2")
    assert v2.tags["trigger_reason"] == trigger.PERFORMANCE_REASON
    why = json.loads(v2.tags["trigger_details"])
    assert why["reasons"] == ["performance"] and why["drifted_features"] == {}
    assert {g["metric"] for g in why["failed_live_gates"]} == failed
    assert all(g["value"] is not None for g in why["failed_live_gates"])
    assert client.get_model_version_by_alias(MODEL, "production").version == "1"

    # an hour later the same check, through the CLI: still degraded, and the cooldown holds
    (tmp_path / "drift.yaml").write_text(yaml.safe_dump(parameters["drift_config"]))
    assert cli.main(["run", "drift-check", "--log-uri", log_uri, "--model-name", MODEL, "--tracking-uri", mlflow_server,
                     "--drift-config", str(tmp_path / "drift.yaml"), "--training-data", str(tmp_path / "new.parquet"),
                     "--outcomes-uri", outcomes_uri, "--gates", str(gates_file), "--home", str(home),
                     "--json"]) == 0
    second = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert second["decision"] == "retrain" and second["reasons"] == ["performance"]
    assert second["retraining"]["submitted"] is False
    assert second["retraining"]["reason"].startswith("cooldown:"), second["retraining"]
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 2
