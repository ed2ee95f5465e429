"""The retraining outbox: the trigger records, the runner claims and settles; nothing trains inside the step."""
from __future__ import annotations

import json
import os
import time

import pytest

from components.kfp_api import run_name
from components.source import SOURCE, commit
from components.trigger import logic, submit
from components.trigger.outbox import Outbox, OutboxError
from tests.trigger.test_logic import RETRAIN

HOUR = 3600.0


def trigger(client, name, tmp_path, **kw):
    """The trigger as the step's child runs it, with the outbox in tmp_path/outbox."""
    arguments = {"outbox_uri": str(tmp_path / "outbox"), "drift_run_id": "drift-run-1", **kw}
    return submit.run(RETRAIN, tracking_uri=client.tracking_uri, model_name=name,
                      training_data_uri=str(tmp_path / "new.parquet"), **arguments)


def test_the_trigger_records_a_request_and_trains_nothing(model):
    client, name, tmp_path = model
    before = set(tmp_path.rglob("*"))
    out = trigger(client, name, tmp_path)
    assert out["submitted"] is True
    (pending,) = (tmp_path / "outbox").glob("*.pending.json")
    assert pending.name == f"{out['run']}.pending.json"
    request = json.loads(pending.read_text())
    parameters = request["parameters"]
    # keyed as a KFP run of the same request would be named: the source commit and the run's parameters
    assert request["commit"] == commit(SOURCE) and out["run"] == run_name("training", request["commit"], parameters)
    assert parameters["data_uri"] == str(tmp_path / "new.parquet") and parameters["model_name"] == name
    assert parameters["tracking_uri"] == client.tracking_uri and parameters["trigger_reason"] == logic.REASON
    # the step wrote its request and nothing else: no run folder, no model version, no registry state but the tags
    assert set(tmp_path.rglob("*")) - before == {tmp_path / "outbox", pending}
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == ["1"]
    assert client.get_registered_model(name).tags[logic.RUN] == out["run"]


def test_a_rerun_of_the_step_finds_its_own_request(model):
    client, name, tmp_path = model
    box = Outbox(str(tmp_path / "outbox"))
    first = box.submit({"data_uri": "a.parquet", "trigger_reason": "r"})
    again = box.submit({"data_uri": "a.parquet", "trigger_reason": "r"})
    other = box.submit({"data_uri": "b.parquet", "trigger_reason": "r"})
    assert first == again != other and len(list((tmp_path / "outbox").iterdir())) == 2
    (claimed, _) = box.claim()
    box.settle(claimed.id, "succeeded", run="training-1")
    assert box.submit(claimed.parameters) == claimed.id  # settled: still found, not recorded again
    assert not list((tmp_path / "outbox").glob(f"{claimed.id}.pending.json"))


def test_the_cooldown_holds_until_the_runner_settles(model):
    client, name, tmp_path = model
    out = trigger(client, name, tmp_path)
    later = trigger(client, name, tmp_path, drift_run_id="drift-run-2")
    assert later["submitted"] is False and later["reason"] == (
        f"retraining run {out['run']} submitted at {client.get_registered_model(name).tags[logic.SUBMITTED_AT]} "
        "is still pending")
    box = Outbox(str(tmp_path / "outbox"))
    (request,) = box.claim()
    assert box.status(request.id) == "running"
    assert trigger(client, name, tmp_path, drift_run_id="drift-run-3")["reason"].endswith("is still running")
    box.settle(request.id, "succeeded", run="training-1")
    assert box.status(request.id) == "succeeded"
    assert trigger(client, name, tmp_path, drift_run_id="drift-run-4")["reason"].startswith(
        f"cooldown: retraining run {out['run']} (succeeded)")


def test_two_runners_one_claim(tmp_path):
    first, second = Outbox(str(tmp_path)), Outbox(str(tmp_path))
    request_id = first.submit({"data_uri": "a.parquet"})
    assert [r.id for r in first.claim()] == [request_id] and second.claim() == []


def test_a_crashed_claim_is_reported_failed_after_the_cooldown(model, caplog):
    client, name, tmp_path = model
    out = trigger(client, name, tmp_path, cooldown_hours=6)
    box = Outbox(str(tmp_path / "outbox"), stale_after_hours=6)
    (request,) = box.claim()  # and the runner dies here
    claimed = tmp_path / "outbox" / f"{request.id}.claimed.json"
    old = time.time() - 7 * HOUR
    os.utime(claimed, (old, old))
    # the trigger no longer waits for it: it says so in its result and log, and submits anew
    again = trigger(client, name, tmp_path, cooldown_hours=6, drift_run_id="drift-run-2",
                    now=lambda: time.time() + 7 * HOUR)  # the trigger's own cooldown has passed too
    assert again["submitted"] is True and again["run"] != out["run"]
    (warning,) = again["warnings"]
    assert request.id in warning and "never settled it" in warning and "reported as failed" in warning
    assert warning in caplog.text
    # the runner settles it as failed before it carries out the new request
    (abandoned,) = box.abandoned()
    assert abandoned["status"] == "failed" and "never settled it" in abandoned["error"]
    assert box.status(request.id) == "failed" and [r.id for r in box.claim()] == [again["run"]]


def test_no_kfp_host_and_no_outbox_is_an_error(model):
    client, name, tmp_path = model
    with pytest.raises(logic.TriggerError, match="nowhere to send it: give kfp_host .* or outbox_uri"):
        trigger(client, name, tmp_path, outbox_uri="")
    assert logic.RUN not in client.get_registered_model(name).tags


def test_the_outbox_is_a_local_folder():
    with pytest.raises(OutboxError, match="must be a local folder"):
        Outbox("s3://bucket/outbox")
