"""The model server never imports kfp: the real `mlops serve` entry point, every one of its processes.

A `sitecustomize` module on PYTHONPATH runs at the start of every Python process the server starts (the
main process and each spawned uvicorn worker) and keeps writing what that process has in `sys.modules`.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.serving.conftest import MODEL, http, records

PROBE = '''
import json, os, sys, threading, time

def _report():
    out = os.path.join(os.environ["MODULES_PROBE_DIR"], f"{os.getpid()}.json")
    while True:
        names = list(sys.modules)
        doc = {"pid": os.getpid(), "kfp": sorted(m for m in names if m == "kfp" or m.startswith("kfp.")),
               "serving": sorted(m for m in names if m.startswith("serving."))}
        with open(out + ".tmp", "w") as fh:
            json.dump(doc, fh)
        os.replace(out + ".tmp", out)
        time.sleep(0.1)

threading.Thread(target=_report, daemon=True).start()
'''


@pytest.fixture
def probe(tmp_path):
    """(environment that loads the probe, function returning each probed process's last report)."""
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "sitecustomize.py").write_text(PROBE)
    reports = tmp_path / "reports"
    reports.mkdir()
    env = {**os.environ, "MODULES_PROBE_DIR": str(reports),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "probe"), os.environ.get("PYTHONPATH")]))}
    return env, lambda: [json.loads(p.read_text()) for p in sorted(reports.glob("*.json"))]


def test_the_probe_sees_kfp_when_it_is_imported(probe):
    env, reports = probe
    subprocess.run([sys.executable, "-c", "import pipelines.training, time; time.sleep(0.5)"],
                   env=env, cwd=ROOT, check=True, timeout=120)
    (report,) = reports()
    assert "kfp" in report["kfp"]


def test_mlops_serve_never_imports_kfp(probe, pulled, trained_model, tmp_path):
    env, reports = probe
    mlops = shutil.which("mlops", path=str(Path(sys.executable).parent))
    assert mlops, "the `mlops` console script is not installed beside this interpreter"
    port = free_port()
    log = tmp_path / "server.log"
    proc = subprocess.Popen([mlops, "serve", "--port", str(port), "--metrics-port", str(free_port())],
                            env={**env, "MODEL_PATH": str(pulled), "WORKERS": "2"}, cwd=tmp_path,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            assert proc.poll() is None, f"server exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.time() < deadline, f"server never ready:\n{log.read_text()[-3000:]}"
            try:
                if http("GET", f"{url}/v1/health/ready", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        _, rows = trained_model
        for row in records(rows.head(20)):  # requests reach the workers: whatever they import on use is loaded
            assert http("POST", f"{url}/v1/models/{MODEL}:predict", {"instances": [row]})[0] == 200
        time.sleep(0.5)  # one more report from every process
        seen = reports()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
    (main,) = [r for r in seen if r["pid"] == proc.pid]
    workers = [r for r in seen if "serving.app" in r["serving"] and r is not main]
    assert "serving.server" in main["serving"], seen
    assert len(workers) >= 2, seen
    assert [r["kfp"] for r in seen] == [[]] * len(seen), seen
