"""Shared fixtures: the worked example's contract, small generated tables, a real MLflow server."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from components import contract as contract_mod
from mlops import datagen

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "features_v2.json"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str, why: str = "") -> str:
    """Path of the command `name` (on PATH or beside this interpreter, i.e. in the venv). Missing, the test
    is skipped on a developer's machine and FAILS under CI=true: a green CI means every layer ran."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        message = f"{name} is not installed{f' ({why})' if why else ''}"
        if CI:
            pytest.fail(f"{message}; under CI=true a missing tool is a failure (.ci/run installs it)", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def contract():
    return contract_mod.load(str(SCHEMA))


@pytest.fixture(scope="session")
def words(contract):
    """The worked example's contract with string labels "fraud" / "legit", positive class "fraud"."""
    doc = contract.to_dict()
    doc["positive_class"] = "fraud"
    column = doc["pandera"]["columns"]["is_fraud"]
    column["dtype"] = "str"
    column["checks"] = [{"value": ["fraud", "legit"], "options": {"check_name": "isin", "raise_warning": False,
                                                                  "ignore_na": True}}]
    return contract_mod.parse(doc)


@pytest.fixture(scope="session")
def transactions():
    """3,000 generated transactions (copy before changing)."""
    return datagen.generate(3000, seed=11)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send_json(handler, status: int, body) -> None:
    """Answer an http.server request with `body` as JSON (the API emulators' answers)."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server (SQLite backend, served artifacts) on a free loopback port."""
    home = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(
        [mlflow_bin, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}", "--artifacts-destination", str(home / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"MLflow server did not start:\n{(home / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield uri
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
