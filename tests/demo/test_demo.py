"""`mlops demo` as users run it (a real process): the registry history it leaves, a port in use, and Ctrl-C."""
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from mlflow import MlflowClient

from components import lifecycle
from components.trigger import logic as trigger
from mlops.demo import loop
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
# small and quick: a linear model, no tuning, gates a 2,000-row model meets (the loop, not the model, is tested)
TRAINING = {"seed": 1, "test_size": 0.25, "estimator": "logistic_regression", "params": {"max_iter": 200},
            "tuning": {}, "importance": {"n_repeats": 1, "max_rows": 500}}
GATES = {"metrics": {"roc_auc": {"minimum": 0.6}, "edge_cases_passed": {"minimum": 1}}}


def start(tmp_path, port: int) -> tuple[subprocess.Popen, Path, list[str]]:
    config = yaml.safe_load((ROOT / "configs" / "production.yaml").read_text())
    (tmp_path / "production.yaml").write_text(yaml.safe_dump({**config, "training": TRAINING}))
    (tmp_path / "gates.yaml").write_text(yaml.safe_dump(GATES))
    home = tmp_path / "demo"
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops.cli", "demo", "--rows", "2000", "--port", str(port), "--home", str(home),
         "--config", str(tmp_path / "production.yaml"), "--gates", str(tmp_path / "gates.yaml")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    return process, home, lines


def processes_of(home: Path) -> set[int]:
    """Every process the demo started: each carries MLOPS_DEMO=<its home> in its environment."""
    mark = f"{loop.MARKER}={home.resolve()}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark in (entry / "environ").read_bytes().split(b"\0"):
                found.add(int(entry.name))
        except OSError:
            pass
    return found


def wait_for(lines: list[str], text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in lines):
        assert process.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.2)


def test_the_loop_leaves_its_history_in_the_registry(tmp_path):
    process, home, lines = start(tmp_path, free_port())
    assert process.wait(timeout=600) == 0, "".join(lines)
    out = "".join(lines)
    assert not processes_of(home), out

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    v1, v2 = (client.get_model_version("fraud-detection", v) for v in ("1", "2"))
    assert [h["state"] for h in lifecycle.history(v1)] == ["staged", "production", "archived"]
    assert lifecycle.state(v1) == "archived" and lifecycle.history(v1)[-1]["reason"] == "replaced by version 2"
    assert lifecycle.state(v2) == "production" and "production" in v2.aliases
    assert len(client.search_model_versions("name = 'fraud-detection'")) == 2
    retrained = [mv for mv in (v1, v2) if mv.tags.get("trigger_reason") == trigger.REASON]
    assert retrained == [v2]
    why = json.loads(v2.tags["trigger_details"])
    assert why["model_version"] == "1" and len(why["drifted_features"]) / 13 > 0.3
    assert all(score > 0.15 for score in why["drifted_features"].values())
    runs = sorted(p.name for p in (home / "pipeline_root").glob("training-*"))
    request = client.get_registered_model("fraud-detection").tags[trigger.RUN]  # the outbox's request, settled
    settled = json.loads((home / "outbox" / f"{request}.settled.json").read_text())
    assert len(runs) == 2 and (settled["status"], settled["run"]) == ("succeeded", runs[1])

    assert re.search(r"clean traffic: version 1, 1,100 rows, no_drift", out), out
    assert re.search(r"drifted traffic: version 1, 1,100 rows, retrain", out), out
    served = re.search(r"requests: ([\d,]+) served \(version 1: ([\d,]+), version 2: ([\d,]+)\), 0 failed", out)
    assert served and all(int(n.replace(",", "")) > 0 for n in served.groups()), out
    assert f"mlflow ui --backend-store-uri sqlite:///{home.resolve()}/mlflow.db" in out


def test_a_port_in_use_is_refused_before_anything_runs(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process, home, lines = start(tmp_path, port)
        assert process.wait(timeout=120) == 2
    assert f"port {port} is in use" in "".join(lines) and "--port" in "".join(lines)
    assert not home.exists()


def test_ctrl_c_stops_every_process_it_started_and_leaves_the_registry_whole(tmp_path):
    process, home, lines = start(tmp_path, free_port())
    wait_for(lines, "step 2/8", process, 120)
    deadline = time.monotonic() + 60
    while len(started := processes_of(home)) < 3:  # the demo, its pipeline process, a step of the pipeline
        assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130, "".join(lines)
    assert "stopped; no process of the demo is left" in "".join(lines)
    left = {pid: Path(f"/proc/{pid}/status").read_text()[:300] for pid in started if Path(f"/proc/{pid}").exists()}
    assert not processes_of(home) and not left, left
    db = home / "mlflow.db"
    if db.exists():  # a version is registered whole (with its lifecycle state) or not at all
        versions = MlflowClient(f"sqlite:///{db}").search_model_versions()
        assert all(lifecycle.state(mv) for mv in versions)
