"""The retraining trigger against a real MLflow server: once per drift episode, never on the same data."""
from __future__ import annotations

import json
import uuid

import pytest
from mlflow import MlflowClient

from components.trigger import logic

RETRAIN = {"decision": "retrain", "samples": 12000, "drifted_share": 0.4,
           "drifted_features": ["amount", "channel"], "scores": {"amount": 0.31, "channel": 0.22, "hour_of_day": 0.01},
           "model_version": "1"}
HOUR = 3600.0


class Submitter:
    """Records what was submitted; its runs stay in `state` until a test changes it."""

    def __init__(self, state="running", fail=None):
        self.submitted, self.state, self.fail = [], state, fail

    def submit(self, parameters: dict) -> str:
        if self.fail:
            raise self.fail
        self.submitted.append(parameters)
        return f"run-{len(self.submitted)}"

    def status(self, run_id: str) -> str:
        return self.state


def check(client, name, tmp_path, sub, result=RETRAIN, data="new.parquet", at=1_000_000.0, **kw):
    return logic.trigger(result, tracking_uri=client.tracking_uri, model_name=name,
                         training_data_uri=str(tmp_path / data), submit=sub.submit, status=sub.status,
                         drift_run_id="drift-run-7", now=lambda: at, **kw)


def test_retraining_submitted_once_across_consecutive_checks(model):
    client, name, tmp_path = model
    sub = Submitter()
    assert check(client, name, tmp_path, sub) == {"submitted": True, "run": "run-1"}
    (params,) = sub.submitted
    assert params["data_uri"] == str(tmp_path / "new.parquet")
    assert params["trigger_reason"] == "automated_drift_detection"
    assert json.loads(params["trigger_details"]) == {
        "drifted_features": {"amount": 0.31, "channel": 0.22}, "samples": 12000, "drifted_share": 0.4,
        "model_version": "1", "drift_check_run_id": "drift-run-7"}
    tags = client.get_registered_model(name).tags
    assert tags[logic.RUN] == "run-1" and tags[logic.DETAILS] == params["trigger_details"]
    # an hour later the drift persists and the run is still going: nothing new
    second = check(client, name, tmp_path, sub, at=1_000_000 + HOUR)
    assert second["submitted"] is False and "run-1" in second["reason"] and "still running" in second["reason"]
    # it has finished, but within the cooldown
    sub.state = "succeeded"
    third = check(client, name, tmp_path, sub, at=1_000_000 + 2 * HOUR)
    assert third["submitted"] is False and third["reason"].startswith("cooldown:")
    assert len(sub.submitted) == 1
    # after the cooldown the persisting drift is a new episode
    assert check(client, name, tmp_path, sub, at=1_000_000 + 6.5 * HOUR) == {"submitted": True, "run": "run-2"}


@pytest.mark.parametrize("decision", ["no_drift", "insufficient_data"])
def test_no_retraining_due_submits_nothing(model, decision):
    client, name, tmp_path = model
    sub = Submitter()
    out = check(client, name, tmp_path, sub, result={**RETRAIN, "decision": decision})
    assert out == {"submitted": False, "reason": f"decision is {decision!r}: no retraining due"}
    assert sub.submitted == [] and logic.RUN not in client.get_registered_model(name).tags


def test_same_data_as_production_is_no_new_labelled_data(model):
    client, name, tmp_path = model
    sub = Submitter()
    out = check(client, name, tmp_path, sub, data="old.parquet")
    assert out["submitted"] is False and out["reason"].startswith("no new labelled data")
    assert sub.submitted == []


def test_failed_submission_is_reported_and_not_recorded(model):
    client, name, tmp_path = model
    out = check(client, name, tmp_path, Submitter(fail=ConnectionError("KFP host unreachable")))
    assert out == {"submitted": False, "reason": "submission failed: ConnectionError: KFP host unreachable",
                   "error": "ConnectionError: KFP host unreachable"}
    assert logic.RUN not in client.get_registered_model(name).tags
    # the next check tries again at once: no cooldown was started by the failure
    sub = Submitter()
    assert check(client, name, tmp_path, sub, at=1_000_000 + 60) == {"submitted": True, "run": "run-1"}


def test_no_production_version_is_an_error(mlflow_server, tmp_path):
    client = MlflowClient(mlflow_server)
    name = f"none-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    with pytest.raises(logic.TriggerError, match="no production version"):
        check(client, name, tmp_path, Submitter())
