"""`mlops demo` as users run it (a real process): the registry history it leaves, the outcomes it sends and the
live performance the monitoring runs measure, v2 trained on the served rows labelled by their outcomes, a port
in use, and Ctrl-C."""
import hashlib
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import yaml
from mlflow import MlflowClient

from components import lifecycle
from components.trigger import logic as trigger
from mlops import cli, datagen
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
    served = re.search(r"requests: ([\d,]+) served \(version 1: ([\d,]+), version 2: ([\d,]+)\), 0 failed, "
                       r"([\d,]+) rows", out)
    assert served and all(int(n.replace(",", "")) > 0 for n in served.groups()), out
    assert f"mlflow ui --backend-store-uri sqlite:///{home.resolve()}/mlflow.db" in out

    outcomes_and_live_performance(home, out, int(served.group(4).replace(",", "")))
    v2_trained_on_the_served_rows(home, out, v2, tmp_path)


def monitoring_results(home: Path) -> list[dict]:
    """The monitoring runs' results (drift check, with `performance`), in the order they ran."""
    runs = sorted((home / "pipeline_root").glob("drift-check-*/check-performance/result"))
    return [json.loads(p.read_text()) for p in runs]


def outcomes_and_live_performance(home: Path, out: str, served_rows: int) -> None:
    # every served row's outcome was ingested: one per (request id, row)
    parts = (home / "outcomes" / "model=fraud-detection").glob("date=*/*.parquet")
    stored = pd.concat(pd.read_parquet(p) for p in parts)
    assert len(stored) == served_rows == len(stored.drop_duplicates(["request_id", "row"]))
    assert set(stored["is_fraud"]) == {0, 1}
    assert len(re.findall(r"outcomes: [\d,]+ rows of [\d,]+ served requests ingested", out)) == 3, out

    # the monitoring runs measured version 1 on them; the live minimum of 200 frauds (the default: the test's
    # gates have no live section) is not met by this traffic
    checks = monitoring_results(home)
    assert [(c["decision"], c["reasons"]) for c in checks] == [("no_drift", []), ("retrain", ["drift"])]
    for check, rows in zip(checks, (1100, 2200)):  # the live window holds every phase so far
        (version,) = check["performance"]["versions"].items()
        assert version[0] == "1" and version[1]["labelled"] == version[1]["logged"] == rows, version
        assert all(version[1]["metrics"][m] is not None for m in ("precision", "recall", "expected_cost"))
        assert check["performance"]["decision"] == "insufficient_labels"
    assert re.search(r"live performance: version 1: 1,100 of 1,100 logged rows labelled \([\d,]+ frauds\), "
                     r"precision \d\.\d{3}, recall \d\.\d{3}, expected cost \d\.\d{3}", out), out
    assert "monitoring decision: no_drift (reasons: none)" in out, out
    assert "monitoring decision: retrain (reasons: drift)" in out, out
    summary = out[out.index("Summary ("):]
    assert "version   labelled    logged  frauds  precision  recall  expected_cost" in summary, summary
    assert re.search(r"production version 1: insufficient_labels: waiting for outcomes: \d+ of 200 positives", summary)
    assert "decision: retrain (reasons: drift); retraining: submitted" in summary, summary
    after = summary[summary.index("after the switch"):]  # both versions measured once v2 has served
    assert re.search(r"\n    1 +[\d,]+ +[\d,]+ .*\n    2 +[\d,]+ +[\d,]+ ", after) and "production version 2: " in after


def v2_trained_on_the_served_rows(home: Path, out: str, v2, tmp_path: Path) -> None:
    """v2 trained on the drifted window's served rows as `mlops dataset from-log` builds them, then as many
    fresh labelled rows as v1 trained on."""
    table = home / "data" / "retraining-drifted.parquet"
    assert v2.tags["data_sha256"] == hashlib.sha256(table.read_bytes()).hexdigest()
    summary = out[out.index("Summary ("):]
    assert f"v2 trained on {table.resolve()}:" in summary
    assert re.search(r"1,100 served rows labelled by their outcomes \(\d+ frauds\) \+ 2,000 fresh labelled rows "
                     r"with drift 0.3: served rows alone are fewer than v1's 2,000", summary), summary
    drifted = monitoring_results(home)[1]
    assert cli.main(["dataset", "from-log", "--log-uri", str(home / "inference-log"), "--outcomes-uri",
                     str(home / "outcomes"), "--until", drifted["performance"]["window"]["checked_at"],
                     "--window-days", repr(drifted["window_hours"] / 24), "--out", str(tmp_path / "from-log.parquet"),
                     "--config", str(tmp_path / "production.yaml"), "--gates", str(tmp_path / "gates.yaml"),
                     "--schema", str(ROOT / "schemas" / "features_v2.json"), "--json"]) == 0
    from_log, trained = pd.read_parquet(tmp_path / "from-log.parquet"), pd.read_parquet(table)
    assert len(from_log) == 1100 and len(trained) == 1100 + 2000
    pd.testing.assert_frame_equal(trained.iloc[:len(from_log)], from_log)
    # each served row carries its own transaction's label: the drifted traffic as generated
    sent = datagen.generate(1100, loop.SEED + 2, loop.DRIFT)
    features = [c for c in sent.columns if c != datagen.LABEL]
    pd.testing.assert_frame_equal(from_log[list(sent.columns)].sort_values(features).reset_index(drop=True),
                                  sent.sort_values(features).reset_index(drop=True), check_dtype=False)


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
    wait_for(lines, "step 2/9", process, 120)
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
