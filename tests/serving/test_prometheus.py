"""A real Prometheus scrapes the real server and evaluates the canary AnalysisTemplate's own queries."""
import subprocess
import time

import pytest

from tests.conftest import free_port, require_tool
from tests.manifests.crd import analysis_queries
from tests.serving.conftest import MODEL, http, records


@pytest.fixture
def prometheus(tmp_path):
    binary = require_tool("prometheus", "Debian package 'prometheus'")

    def start(target_port: int) -> str:
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: model-server\n    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n")
        proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                                 "--log.level=warn"], stdout=open(tmp_path / "prometheus.log", "w"),
                                stderr=subprocess.STDOUT)
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                if http("GET", f"{url}/-/ready", timeout=1)[0] == 200:
                    return url
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError((tmp_path / "prometheus.log").read_text())

    started = []
    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=20)


def query(url: str, promql: str) -> list[float]:
    status, body = http("GET", f"{url}/api/v1/query?query={__import__('urllib.parse').parse.quote(promql)}")
    assert status == 200 and body["status"] == "success", body
    return [float(r["value"][1]) for r in body["data"]["result"]]


def traffic(url: str, rows: list[dict], seconds: float, bad_every: int = 0) -> None:
    deadline, i = time.time() + seconds, 0
    while time.time() < deadline:
        row = rows[i % len(rows)]
        if bad_every and i % bad_every == 0:
            row = {**row, "hour_of_day": 99}
        http("POST", f"{url}/v1/models/{MODEL}:predict", {"instances": [row]})
        i += 1


def test_analysis_template_queries_on_real_prometheus(start_server, prometheus, pulled, trained_model):
    queries = analysis_queries()
    latency = next(q for name, q in queries.items() if "latency" in name)
    errors = next(q for name, q in queries.items() if "error" in name)
    _, rows = trained_model
    server = start_server({"MODEL_PATH": str(pulled), "MODEL_ROLE": "canary"})
    server.wait()
    url = prometheus(server.metrics_port)
    traffic(server.url, records(rows.head(50)), seconds=6)
    time.sleep(2)
    (p95,) = query(url, latency)
    assert 0 < p95 < 0.1
    clean = query(url, errors)
    assert clean == [] or clean == [0.0]

    traffic(server.url, records(rows.head(50)), seconds=4, bad_every=3)
    time.sleep(2)
    (rate,) = query(url, errors)
    assert rate > 0
