"""A model is loaded only as it was registered, and one server serves one model version.

Tampering is done as an attacker with write access to the artifact store would: by overwriting the
registered version's files there, never its registry tags.
"""
import json
import pickle
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow.sklearn
import pytest
import yaml
from mlflow import MlflowClient

from components import decision
from components.modelfile import MODEL_FILE, ModelIntegrityError, file_sha256
from components.registry import champion
from serving.model import INFO_FILE, load, pull
from tests.conftest import ROOT
from tests.serving.conftest import http, metric_samples, records


class Payload:
    """What an attacker pickles: loading it runs `open(marker, "w")`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def register_folder(client: MlflowClient, name: str, folder: Path, alias: str | None = None) -> tuple[str, str]:
    """(version, run id) of `folder` registered under `name`, tagged as register_model tags it with its model
    file's hash and its decision.json's (when it has one)."""
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    tags = {"model_sha256": file_sha256(folder / MODEL_FILE), decision.TAG: decision.sha256(folder)}
    mv = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                                     tags={k: v for k, v in tags.items() if v})
    if alias:
        client.set_registered_model_alias(name, alias, mv.version)
    return str(mv.version), run.info.run_id


def switch_to_pickle(folder: Path, marker: Path) -> list[Path]:
    """Rewrite a model folder's MLmodel to the pickle format with a code-running model.pkl; the changed files."""
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    meta["flavors"]["sklearn"].update(serialization_format="pickle", pickled_model="model.pkl")
    meta["flavors"]["sklearn"].pop("skops_trusted_types", None)
    meta["flavors"]["python_function"]["model_path"] = "model.pkl"
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))
    (folder / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    return [folder / "MLmodel", folder / "model.pkl"]


def alter_model_file(folder: Path) -> list[Path]:
    """Change the model file's bytes, keeping it a valid skops file (a re-saved zip)."""
    import skops.io as sio

    from components.modelfile import TRUSTED_TYPES

    path = folder / MODEL_FILE
    path.write_bytes(sio.dumps(sio.load(path, trusted=TRUSTED_TYPES)))
    return [path]


def alter_decision(folder: Path) -> list[Path]:
    """Change decision.json's threshold, keeping it a valid decision: nothing would be decided positive."""
    path = folder / decision.FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), "threshold": 1.0}))
    return [path]


@pytest.fixture(scope="module")
def tampered(trained_model, registered, mlflow_server, tmp_path_factory):
    """Model 'tampered': version 1 switched to pickle, version 2 with its model file altered, version 3 with its
    decision.json altered, all after registration; aliases 'pickled', 'altered' and 'redecided'. Also the marker
    file that loading the pickle creates."""
    folder, _ = trained_model
    client = MlflowClient(mlflow_server)
    work = tmp_path_factory.mktemp("tampered")
    marker = work / "code-ran"
    for alias, tamper in (("pickled", lambda f: switch_to_pickle(f, marker)), ("altered", alter_model_file),
                          ("redecided", alter_decision)):
        version, run_id = register_folder(client, "tampered", folder, alias)
        copy = work / alias
        shutil.copytree(folder, copy)
        for changed in tamper(copy):
            client.log_artifact(run_id, str(changed), "model")  # overwrites the registered file
    return {"marker": marker, "work": work}


def test_the_pickle_switch_is_a_real_attack(tampered):
    """The old way of loading (MLflow following the folder's MLmodel) runs the attacker's code."""
    mlflow.sklearn.load_model("models:/tampered@pickled")
    assert tampered["marker"].exists()
    tampered["marker"].unlink()


@pytest.mark.parametrize("alias, message", [
    ("pickled", r"MLmodel: serialization_format is 'pickle'; only 'skops'"),
    ("altered", rf"{MODEL_FILE}: sha256 \w+ differs from the registered model_sha256"),
    ("redecided", rf"{decision.FILE}: sha256 \w+ differs from the registered decision_sha256"),
])
def test_a_tampered_version_is_refused_by_evaluation_and_pull(tampered, mlflow_server, tmp_path, alias, message):
    with pytest.raises(ModelIntegrityError, match=message):
        champion(mlflow_server, "tampered", alias)
    out = tmp_path / "current"
    with pytest.raises(ModelIntegrityError, match=message):
        pull(f"models:/tampered@{alias}", str(out))
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-done left behind
    cli = subprocess.run([sys.executable, "-m", "mlops.cli", "model", "pull", "--model-uri",
                          f"models:/tampered@{alias}", "--output", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 2 and "mlops: error:" in cli.stderr and alias in cli.stderr
    assert not tampered["marker"].exists()


@pytest.mark.parametrize("alias, named", [("pickled", "MLmodel"), ("altered", MODEL_FILE),
                                          ("redecided", f"{decision.FILE}: sha256")])
def test_the_server_refuses_a_tampered_registry_version(start_server, tampered, alias, named):
    server = start_server(args=["--model-uri", f"models:/tampered@{alias}"])
    assert server.proc.wait(timeout=300) == 1
    log = server.log.read_text()
    assert "cannot be served: ModelIntegrityError" in log and named in log, log[-2000:]
    assert "Started parent process" not in log  # no worker ever started
    assert not tampered["marker"].exists()


def test_the_server_refuses_a_tampered_folder(start_server, pulled, registered, tampered, tmp_path):
    expected = json.loads((pulled / INFO_FILE).read_text())["model_sha256"]
    altered = tmp_path / "altered"
    shutil.copytree(pulled.resolve(), altered)
    alter_model_file(altered)
    server = start_server({"MODEL_PATH": str(altered), "MODEL_SHA256": expected, "WORKERS": "1"})
    server.wait("/v1/health/ready", status=503)
    deadline = time.time() + 120
    while (reason := http("GET", f"{server.url}/v1/health/ready")[1]["reason"]) == "loading":
        assert time.time() < deadline
        time.sleep(0.2)
    assert "ModelIntegrityError" in reason and f"{altered / MODEL_FILE}: sha256" in reason
    assert http("POST", f"{server.url}/invocations", {"instances": [{}]})[0] == 503

    pickled = tmp_path / "pickled"
    shutil.copytree(pulled.resolve(), pickled)
    switch_to_pickle(pickled, tampered["marker"])
    strict = start_server({"MODEL_PATH": str(pickled), "FAIL_FAST": "true", "WORKERS": "1"})
    assert strict.proc.wait(timeout=300) == 1
    assert f"{pickled / 'MLmodel'}: serialization_format is 'pickle'" in strict.log.read_text()
    assert not tampered["marker"].exists()


def test_a_decision_changed_after_the_pull_is_refused(pulled, tmp_path):
    """The pull record keeps decision.json's hash: a later load from the folder checks it."""
    changed = tmp_path / "changed"
    shutil.copytree(pulled.resolve(), changed)
    alter_decision(changed)
    with pytest.raises(ModelIntegrityError, match=rf"{changed / decision.FILE}: sha256 \w+ differs from the "
                                                  "registered decision_sha256"):
        load(str(changed))


@pytest.fixture(scope="module")
def two_versions(trained_model, registered, mlflow_server):
    """Model 'pinned' with versions 1 and 2 (one model file each, different bytes); alias production -> 1."""
    folder, _ = trained_model
    client = MlflowClient(mlflow_server)
    register_folder(client, "pinned", folder, "production")
    other = folder.parent / "resaved"
    shutil.copytree(folder, other)
    alter_model_file(other)
    register_folder(client, "pinned", other)
    return client


def test_workers_serve_the_version_the_alias_named_at_start(start_server, two_versions, trained_model):
    client = two_versions
    client.set_registered_model_alias("pinned", "production", "1")
    _, rows = trained_model
    server = start_server({"WORKERS": "3"}, ["--model-uri", "models:/pinned@production"])
    deadline = time.time() + 300
    while "pinned to pinned version 1" not in server.log.read_text():
        assert server.proc.poll() is None and time.time() < deadline, server.log.read_text()[-2000:]
        time.sleep(0.05)
    client.set_registered_model_alias("pinned", "production", "2")  # while the workers start
    try:
        server.wait(timeout=300)
        url = f"{server.url}/v1/models/pinned:predict"
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda r: http("POST", url, {"instances": [r]}), records(rows.head(60))))
        assert {(status, body["model_version"]) for status, body in answers} == {(200, "1")}
        # readiness waited for all three workers, and each created its series when its model loaded
        versions = {labels["model_version"] for labels, _ in
                    metric_samples(server.metrics_port, "model_inference_requests_total")
                    if labels["model"] == "pinned"}
        assert versions == {"1"}
    finally:
        client.set_registered_model_alias("pinned", "production", "1")


def test_pull_of_the_same_version_is_a_no_op_and_another_replaces_it_atomically(two_versions, tmp_path):
    out = tmp_path / "models" / "current"
    first = pull("models:/pinned/1", str(out))
    target, stamp = out.resolve(), (out / INFO_FILE).stat().st_mtime_ns
    assert first.version == "1" and out.is_symlink()
    assert pull("models:/pinned@production", str(out)) == first  # production -> 1: nothing to do
    assert out.resolve() == target and (out / INFO_FILE).stat().st_mtime_ns == stamp

    seen, errors, stop = set(), [], threading.Event()

    def read():  # what a server starting meanwhile would read
        while not stop.is_set():
            try:
                seen.add(json.loads((out / INFO_FILE).read_text())["version"])
                (out / MODEL_FILE).read_bytes()
            except Exception as exc:  # noqa: BLE001 - any failure to read is what this test looks for
                errors.append(repr(exc))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in ("2", "1", "2"):
            assert pull(f"models:/pinned/{version}", str(out)).version == version
    finally:
        stop.set()
        reader.join()
    assert errors == [] and seen == {"1", "2"}
    assert json.loads((out / INFO_FILE).read_text())["version"] == "2"
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(["current", out.resolve().name])  # old ones gone

    (out / MODEL_FILE).write_bytes(b"corrupted")  # same version, damaged: pulled again, not trusted
    assert pull("models:/pinned/2", str(out)).version == "2"
    assert file_sha256(out / MODEL_FILE) == two_versions.get_model_version("pinned", "2").tags["model_sha256"]
