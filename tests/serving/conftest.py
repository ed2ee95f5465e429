"""A trained model registered in a real MLflow server, and the real model server started on loopback."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from components import decision
from components.modelfile import MODEL_FILE, file_sha256
from components.train import logic
from mlops import datagen
from tests.conftest import free_port
from tests.unit.test_train import FAST

MODEL = "fraud-serving"


def exchange(method: str, url: str, body=None, raw: bytes | None = None, timeout: float = 10,
             headers: dict | None = None):
    """(status, response headers, parsed JSON or text) of one request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, got, text = resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as err:
        status, got, text = err.code, err.headers, err.read().decode()
    try:
        return status, got, json.loads(text)
    except ValueError:
        return status, got, text


def http(method: str, url: str, body=None, raw: bytes | None = None, timeout: float = 10):
    """(status, parsed JSON or text) of one request."""
    status, _, answer = exchange(method, url, body, raw, timeout)
    return status, answer


def metric_samples(port: int, name: str) -> list[tuple[dict, float]]:
    """Samples of a metric on a /metrics page, as (labels, value)."""
    from prometheus_client.parser import text_string_to_metric_families

    _, text = http("GET", f"http://127.0.0.1:{port}/metrics")
    return [(s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name]


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, contract):
    """A model folder as train_model writes it, plus the rows to query it with."""
    folder = tmp_path_factory.mktemp("trained") / "model"
    result = logic.train(datagen.generate(4000, seed=31), contract, FAST)
    logic.save_model(result, contract, str(folder))
    return folder, result.holdout[contract.feature_columns].reset_index(drop=True)


@pytest.fixture(scope="session")
def registered(trained_model, mlflow_server):
    """The model registered as version 1 with alias production; MLFLOW_TRACKING_URI points at it."""
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server
    mlflow.set_tracking_uri(mlflow_server)
    client = MlflowClient(mlflow_server)
    folder, _ = trained_model
    experiment = client.create_experiment("serving-tests")
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL)
    tags = {"model_sha256": file_sha256(folder / MODEL_FILE), decision.TAG: decision.sha256(folder)}
    mv = client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                                     tags={k: v for k, v in tags.items() if v})  # as register_model tags it
    client.set_registered_model_alias(MODEL, "production", mv.version)
    return f"models:/{MODEL}@production"


@pytest.fixture(scope="session")
def pulled(registered, tmp_path_factory):
    """What the model-loader init container leaves in the shared volume."""
    from serving.model import pull

    folder = tmp_path_factory.mktemp("volume") / "current"
    info = pull(registered, str(folder))
    assert (info.name, info.version) == (MODEL, "1")
    return folder


def records(frame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


class Server:
    def __init__(self, env: dict, args: list[str], log: Path):
        self.port, self.metrics_port = free_port(), free_port()
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlops.cli", "serve", "--port", str(self.port),
             "--metrics-port", str(self.metrics_port), *args],
            env={**os.environ, **env}, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait(self, path: str = "/v1/health/ready", status: int = 200, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if http("GET", self.url + path, timeout=2)[0] == status:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{path} never answered {status}:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def start_server(tmp_path):
    servers = []

    def start(env: dict | None = None, args: list[str] | None = None) -> Server:
        server = Server({"WORKERS": "2", **(env or {})}, args or [], tmp_path / f"server{len(servers)}.log")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
