"""The drift scores reach a real Prometheus Pushgateway; a failed push is reported, never raised."""
import subprocess
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components.drift import logic
from tests.conftest import free_port, require_tool

RESULT = {"model_name": "fraud-detection", "model_version": "7", "decision": "retrain", "samples": 12345,
          "scores": {"amount": 0.42, "channel": 0.01}}


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory):
    binary = require_tool("prometheus-pushgateway", "Debian package prometheus-pushgateway")
    port = free_port()
    log = open(tmp_path_factory.mktemp("pushgateway") / "log", "w")
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("the Pushgateway did not start")
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def samples(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_scores_are_pushed_as_gauges_under_the_models_job(pushgateway):
    assert logic.push(pushgateway, RESULT) == {"url": pushgateway, "pushed": True}
    got = samples(pushgateway)
    base = {"job": "fraud-detection", "model": "fraud-detection", "model_version": "7", "instance": ""}
    for feature, score in RESULT["scores"].items():
        assert got[("model_feature_drift_score", tuple(sorted({**base, "feature": feature}.items())))] == score
    assert got[("model_drift_samples", tuple(sorted(base.items())))] == 12345
    assert got[("model_drift_retrain_due", tuple(sorted(base.items())))] == 1
    logic.push(pushgateway, {**RESULT, "decision": "no_drift"})  # the next check replaces the group
    assert samples(pushgateway)[("model_drift_retrain_due", tuple(sorted(base.items())))] == 0


def test_a_failed_push_is_reported_not_raised():
    outcome = logic.push(f"http://127.0.0.1:{free_port()}", RESULT, timeout=2)
    assert outcome["pushed"] is False and "URLError" in outcome["error"]
