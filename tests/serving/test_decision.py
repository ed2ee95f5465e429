"""The real server decides at the model's threshold (decision.json beside the model file) on every path."""
import json
import shutil
from dataclasses import replace

import mlflow.sklearn
import numpy as np
import pyarrow.dataset as ds
import pytest
from mlflow import MlflowClient

from components import decision
from components.modelfile import ModelIntegrityError
from components.registry import champion
from components.train import logic
from mlops import datagen
from serving.model import load, pull
from serving.requests import RequestReader
from tests.serving.conftest import http, metric_samples, records
from tests.serving.test_model_loading import register_folder
from tests.unit.test_train import FAST

NAME = "fraud-decided"


def served_frame(rows, contract):
    """The rows as the server sees them: after the JSON round trip and the request checks."""
    reader = RequestReader(contract)
    return reader.frame(reader.check(records(rows)))[contract.feature_columns]


def served_probabilities(folder, rows, contract, positive=1) -> np.ndarray:
    """The positive class's probability of each row as the server computes it."""
    model = mlflow.sklearn.load_model(str(folder))
    return model.predict_proba(served_frame(rows, contract))[:, list(model.classes_).index(positive)]


def threshold_between(proba: np.ndarray) -> tuple[float, int, int]:
    """(threshold, row just below it, row just above it): halfway between two neighbouring probabilities below
    0.5, so the row above is decided positive here and negative at 0.5."""
    order = np.argsort(proba)
    p = proba[order]
    gaps = np.flatnonzero((np.diff(p) > 1e-6) & (p[1:] < 0.5))
    i = gaps[len(gaps) // 2]
    return float((p[i] + p[i + 1]) / 2), int(order[i]), int(order[i + 1])


def decided_copy(source, target, threshold: float | None):
    """A copy of a model folder with decision.json at `threshold`, or without decision.json for None."""
    shutil.copytree(source, target)
    (target / decision.FILE).unlink(missing_ok=True)
    if threshold is not None:
        decision.write(target, {"objective": "min_cost", "cost_false_negative": 25.0, "cost_false_positive": 1.0},
                       threshold, {"method": "validation_split"})
    return target


def predictions_on_both_endpoints(server, rows) -> list[list]:
    """The predictions for `rows` from :predict and from /invocations; a body over 64 KiB takes the full path
    (ASGI, a batch larger than MAX_BATCH_SIZE predicted in a thread), a small one the direct path."""
    status, kserve = http("POST", f"{server.url}/v1/models/{NAME}:predict", {"instances": records(rows)})
    assert status == 200, kserve
    split = json.loads(rows.to_json(orient="split", index=False))
    status, mlflow_body = http("POST", f"{server.url}/invocations", {"dataframe_split": split})
    assert status == 200, mlflow_body
    return [kserve["predictions"], mlflow_body["predictions"]]


def counted(server, name: str) -> float:
    return sum(v for labels, v in metric_samples(server.metrics_port, name)
               if labels.get("model") == NAME and labels.get("role") == "canary")


def logged(folder):
    return ds.dataset(str(folder), format="parquet", partitioning="hive").to_table().to_pandas()


def test_rows_either_side_of_the_threshold_get_opposite_predictions_counted_and_logged(start_server, trained_model,
                                                                                      contract, tmp_path):
    source, rows = trained_model
    proba = served_probabilities(source, rows, contract)
    threshold, below, above = threshold_between(proba)
    folder = decided_copy(source, tmp_path / "model", threshold)
    log_dir = tmp_path / "inference-log"
    server = start_server({"MODEL_PATH": str(folder), "MODEL_NAME": NAME, "MODEL_ROLE": "canary",
                           "INFERENCE_LOG_URI": str(log_dir), "INFERENCE_LOG_FLUSH_SECONDS": "60"})
    server.wait()
    assert http("GET", f"{server.url}/v1/models/{NAME}")[1]["threshold"] == threshold

    pair = rows.iloc[[below, above]]
    assert len(records(rows)) > 32 and len(json.dumps(records(rows))) > 65_536  # the full path
    assert predictions_on_both_endpoints(server, pair) == [[0, 1], [0, 1]]
    want = np.where(proba >= threshold, 1, 0).tolist()
    assert predictions_on_both_endpoints(server, rows) == [want, want]
    assert want != np.where(proba >= 0.5, 1, 0).tolist()  # decided otherwise at 0.5

    positives = 2 * (1 + sum(want))
    assert counted(server, "model_inference_predicted_positive_total") == positives
    assert counted(server, "model_inference_rows_total") == 2 * (2 + len(rows))
    assert server.stop() == 0  # SIGTERM flushes the inference log
    table = logged(log_dir)
    assert len(table) == 2 * (2 + len(rows)) and table["prediction"].sum() == positives
    assert table["prediction"].tolist() == (table["probability"] >= threshold).astype(int).tolist()


def test_without_decision_json_the_threshold_is_one_half(start_server, trained_model, contract, tmp_path):
    source, rows = trained_model
    folder = decided_copy(source, tmp_path / "model", None)
    server = start_server({"MODEL_PATH": str(folder), "MODEL_NAME": NAME, "MODEL_ROLE": "canary", "WORKERS": "1"})
    server.wait()
    assert http("GET", f"{server.url}/v1/models/{NAME}")[1]["threshold"] == 0.5
    assert counted(server, "model_inference_predicted_positive_total") == 0  # the series exists before traffic
    want = mlflow.sklearn.load_model(str(folder)).predict(served_frame(rows, contract)).tolist()  # as before
    assert predictions_on_both_endpoints(server, rows) == [want, want]
    assert counted(server, "model_inference_predicted_positive_total") == 2 * sum(want) > 0


@pytest.fixture(scope="module")
def string_labels(tmp_path_factory, contract):
    """A model trained on "fraud" / "legit" (the positive class sorts first), and its holdout rows."""
    spec = replace(contract, positive_class="fraud")
    data = datagen.generate(3000, seed=37)
    result = logic.train(data.assign(is_fraud=data["is_fraud"].map({1: "fraud", 0: "legit"})), spec, FAST)
    folder = tmp_path_factory.mktemp("strings") / "model"
    logic.save_model(result, spec, str(folder))
    return folder, result.holdout[spec.feature_columns].reset_index(drop=True), spec


def test_string_labels_are_decided_at_the_threshold(start_server, string_labels, tmp_path):
    source, rows, spec = string_labels
    proba = served_probabilities(source, rows, spec, positive="fraud")
    threshold, below, above = threshold_between(proba)
    folder = decided_copy(source, tmp_path / "model", threshold)
    log_dir = tmp_path / "inference-log"
    server = start_server({"MODEL_PATH": str(folder), "MODEL_NAME": NAME, "MODEL_ROLE": "canary", "WORKERS": "1",
                           "INFERENCE_LOG_URI": str(log_dir), "INFERENCE_LOG_FLUSH_SECONDS": "60"})
    server.wait()
    assert predictions_on_both_endpoints(server, rows.iloc[[below, above]]) == [["legit", "fraud"]] * 2
    want = np.where(proba >= threshold, "fraud", "legit").tolist()
    assert predictions_on_both_endpoints(server, rows) == [want, want]
    assert counted(server, "model_inference_predicted_positive_total") == 2 * (1 + want.count("fraud"))
    server.stop()  # SIGTERM flushes the inference log
    table = logged(log_dir)
    assert table["prediction"].tolist() == np.where(table["probability"] >= threshold, "fraud", "legit").tolist()


def test_a_malformed_decision_json_is_refused_naming_it(trained_model, registered, mlflow_server, tmp_path):
    source, _ = trained_model
    folder = decided_copy(source, tmp_path / "model", None)
    (folder / decision.FILE).write_text(json.dumps({"objective": "min_cost", "threshold": 1.5}))
    with pytest.raises(decision.DecisionError, match=f"{folder / decision.FILE}: threshold must be"):
        load(str(folder))
    version, _ = register_folder(MlflowClient(mlflow_server), "fraud-bad-decision", folder)
    with pytest.raises(ModelIntegrityError, match="decision.json: threshold must be"):
        pull(f"models:/fraud-bad-decision/{version}", str(tmp_path / "pulled"))
    assert not (tmp_path / "pulled").exists()


@pytest.mark.parametrize("threshold, tagged", [(0.25, True), (None, False), (0.25, False)])
def test_a_registered_decision_loads_where_evaluation_pull_and_server_read_it(trained_model, registered, mlflow_server,
                                                                           tmp_path, threshold, tagged):
    """Tagged: checked and loaded; without decision.json: decided at 0.5; a decision.json on a version registered
    without its hash: refused everywhere (added after registration)."""
    folder = decided_copy(trained_model[0], tmp_path / "model", threshold)
    client = MlflowClient(mlflow_server)
    name = f"fraud-registered-{threshold}-{tagged}"
    version, _ = register_folder(client, name, folder, "production")
    if not tagged and threshold is not None:
        client.delete_model_version_tag(name, version, decision.TAG)
    assert (decision.TAG in client.get_model_version(name, version).tags) is tagged
    if not tagged and threshold is not None:
        with pytest.raises(ModelIntegrityError, match="present, but the version was registered without"):
            champion(mlflow_server, name)
        with pytest.raises(ModelIntegrityError, match="present, but the version was registered without"):
            pull(f"models:/{name}@production", str(tmp_path / "pulled"))
        assert not (tmp_path / "pulled").exists()
        return
    assert champion(mlflow_server, name).decision == decision.read(folder)
    info = pull(f"models:/{name}@production", str(tmp_path / "pulled"))
    assert info.decision_sha256 == decision.sha256(folder)
    assert load(str(tmp_path / "pulled")).threshold == (0.5 if threshold is None else threshold)
