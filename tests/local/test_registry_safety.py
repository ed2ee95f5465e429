"""register_model against a real MLflow server: any model name, concurrent registrations of one model."""
import threading

import pytest
from mlflow import MlflowClient

from components import decision
from components.modelfile import MODEL_FILE, file_sha256, load_model
from components.profile import read_profile, write_profile
from components.register import logic
from components.registry import champion
from components.train.logic import save_model, train
from tests.unit.test_train import FAST

GATES = {"passed": True, "gates": [{"metric": "roc_auc", "verdict": "pass"}]}


@pytest.fixture(scope="module")
def saves(transactions, contract, tmp_path_factory):
    """Two saves of one trained model: the same content, different model file bytes."""
    result = train(transactions, contract, FAST)
    folders = [tmp_path_factory.mktemp("saves") / f"model{i}" for i in range(2)]
    for folder in folders:
        save_model(result, contract, str(folder))
    return folders


def register(uri: str, name: str, folder) -> logic.Registration:
    profile = folder.parent / f"{folder.name}-profile.json"
    write_profile({"rows": 1, "bins": 10, "features": {}}, str(profile))
    return logic.register(uri, name, str(folder), {"git_commit": "abc"}, {"roc_auc": 0.9}, FAST,
                          {"amount": 0.1}, GATES, {"metrics": {"roc_auc": 0.9}}, str(profile))


def live_versions(client: MlflowClient, name: str, folder) -> list:
    found = client.search_model_versions(f"tags.content_sha256 = '{logic.content_hash(str(folder))}'")
    return [mv for mv in found if mv.name == name]


def test_saves_differ_in_bytes_not_in_content(saves):
    assert file_sha256(saves[0] / MODEL_FILE) != file_sha256(saves[1] / MODEL_FILE)
    assert logic.content_hash(str(saves[0])) == logic.content_hash(str(saves[1]))


def test_a_name_with_quotes_registers_once_and_loads(mlflow_server, saves):
    name = """fraud's "best" model"""
    first = register(mlflow_server, name, saves[0])
    assert (first.version, first.alias, first.created) == ("1", "staged", True)
    again = register(mlflow_server, name, saves[1])  # retrained, same content: nothing new
    assert (again.version, again.created) == ("1", False)
    client = MlflowClient(mlflow_server)
    mv = client.get_model_version_by_alias(name, "staged")
    assert mv.status == "READY" and mv.tags["model_sha256"] == file_sha256(saves[0] / MODEL_FILE)
    assert mv.tags[decision.TAG] == decision.sha256(saves[0])
    version, profile = read_profile(mlflow_server, name, alias="staged")  # beside the model, its hash checked
    assert version == "1" and profile == {"rows": 1, "bins": 10, "features": {}}
    assert len(live_versions(client, name, saves[0])) == 1
    staged = champion(mlflow_server, name, "staged")  # the bytes registered are the bytes checked
    assert staged.version == "1" and staged.decision == decision.read(saves[0])


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_registrations_of_one_model_end_with_one_version(mlflow_server, saves, round_):
    name = f"concurrent-{round_}"
    barrier, results, errors = threading.Barrier(2), [None, None], []

    def run(i):
        try:
            barrier.wait()
            results[i] = register(mlflow_server, name, saves[i])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    client = MlflowClient(mlflow_server)
    (mv,) = live_versions(client, name, saves[0])
    assert {r.version for r in results} == {str(mv.version)} and sum(r.created for r in results) == 1
    assert client.get_model_version_by_alias(name, "staged").version == mv.version
    assert client.get_model_version(name, mv.version).status == "READY"
    # the version's run holds the bytes its tag names: no other run's upload landed in it
    import mlflow.artifacts

    folder = mlflow.artifacts.download_artifacts(f"runs:/{mv.run_id}/model", tracking_uri=mlflow_server)
    load_model(folder, mv.tags["model_sha256"])
    experiment = client.get_experiment_by_name(name)
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [mv.run_id]

