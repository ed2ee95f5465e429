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


def test_the_triggers_gauges_and_the_checks_keep_each_other(pushgateway, mlflow_server, tmp_path):
    """The trigger pushes into a group of its own beside the check's: neither push removes the other's series."""
    from components.trigger import logic as trigger

    model = "alerting-loop"  # no such registered model: the trigger fails, as a due retraining may
    check = {**RESULT, "model_name": model}
    key = {"job": model, "instance": "", "model": model}
    check_due = ("model_drift_retrain_due", tuple(sorted({**key, "model_version": "7"}.items())))
    trigger_key = tuple(sorted({**key, **trigger.GROUPING_KEY}.items()))
    failed, submitted = (trigger.FAILED, trigger_key), (trigger.SUBMITTED_TIME, trigger_key)
    assert logic.push(pushgateway, check)["pushed"]
    with pytest.raises(trigger.TriggerError):
        trigger.trigger(check, tracking_uri=mlflow_server, model_name=model, training_data_uri=str(tmp_path / "x"),
                        submit=None, status=None, pushgateway_url=pushgateway)
    got = samples(pushgateway)
    assert got[failed] == 1 and got[check_due] == 1  # the failure arrived; the check's gauges survived it
    assert logic.push(pushgateway, {**check, "decision": "no_drift"})["pushed"]  # the next hour's check
    got = samples(pushgateway)
    assert got[failed] == 1 and got[check_due] == 0
    assert trigger.push(pushgateway, model, {"submitted": True, "run": "r1"}, now=lambda: 1234.5)["pushed"]
    got = samples(pushgateway)
    assert (got[failed], got[submitted]) == (0, 1234.5) and got[check_due] == 0
    trigger.push(pushgateway, model, {"submitted": False, "reason": "cooldown: ..."})
    assert samples(pushgateway)[submitted] == 1234.5  # pushadd: the last submission's time stays
    dead = trigger.push(f"http://127.0.0.1:{free_port()}", model, {"submitted": True, "run": "r2"}, timeout=2)
    assert dead["pushed"] is False and "URLError" in dead["error"]
