"""The KFP submitter against an emulator of the KFP v2beta1 REST API over real HTTP: the exact requests."""
from __future__ import annotations

import json

import pytest

from components.kfp_api import KfpSubmitter, SubmitError
from components.trigger import logic
from tests.kfp_emulator import API, KfpEmulator
from tests.trigger.test_logic import RETRAIN

pytestmark = pytest.mark.filterwarnings("ignore:This client only works:FutureWarning")
PARAMS = {"data_uri": "s3://data/labelled.parquet", "trigger_reason": "automated_drift_detection",
          "trigger_details": '{"samples": 12000}'}


@pytest.fixture
def kfp(tmp_path, monkeypatch):
    emulator = KfpEmulator()
    token = tmp_path / "token"
    token.write_text("projected-sa-token\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    monkeypatch.setenv("HOME", str(tmp_path))  # no kfp context file of the machine's user
    yield emulator
    emulator.close()


def submitter(kfp) -> KfpSubmitter:
    return KfpSubmitter(kfp.url, "team-fraud", "drift-retraining", "pipeline-runner")


def test_runs_the_latest_training_version_in_the_named_experiment(kfp):
    kfp.add_pipeline("drift-check")
    pipeline_id = kfp.add_pipeline("training", versions=1)
    latest = kfp.add_version(pipeline_id)
    run_id = submitter(kfp).submit(PARAMS)

    assert kfp.calls() == [("GET", f"{API}/pipelines"), ("GET", f"{API}/pipelines/{pipeline_id}/versions"),
                           ("GET", f"{API}/experiments"), ("POST", f"{API}/experiments"),
                           ("GET", f"{API}/runs"), ("POST", f"{API}/runs")]
    lookup, versions, find_exp, create_exp, find_run, create_run = kfp.requests
    assert json.loads(lookup["query"]["filter"][0])["predicates"] == [
        {"operation": "EQUALS", "key": "display_name", "stringValue": "training"}]
    assert lookup["query"]["namespace"] == ["team-fraud"]  # the profile's own pipelines first
    assert versions["query"]["sort_by"] == ["created_at desc"] and versions["query"]["page_size"] == ["1"]
    assert find_exp["query"]["namespace"] == ["team-fraud"]
    assert json.loads(find_exp["query"]["filter"][0])["predicates"][0]["stringValue"] == "drift-retraining"
    assert create_exp["body"] == {"display_name": "drift-retraining", "namespace": "team-fraud"}
    body = create_run["body"]
    assert body["experiment_id"] == next(iter(kfp.experiments))
    assert body["pipeline_version_reference"] == {"pipeline_id": pipeline_id, "pipeline_version_id": latest}
    assert body["runtime_config"]["parameters"] == PARAMS
    assert body["service_account"] == "pipeline-runner"
    assert body["display_name"].startswith("training-automated_drift_detection-")
    assert find_run["query"]["experiment_id"] == [body["experiment_id"]]
    assert json.loads(find_run["query"]["filter"][0])["predicates"][0]["stringValue"] == body["display_name"]
    assert run_id == next(iter(kfp.runs))
    # the projected service-account token authenticates every request
    assert {r["authorization"] for r in kfp.requests} == {"Bearer projected-sa-token"}

    sub = submitter(kfp)
    assert sub.status(run_id) == "pending"
    kfp.set_run_state(run_id, "SUCCEEDED")
    assert sub.status(run_id) == "succeeded"
    kfp.requests.clear()
    # a retry of the same submission (the step re-run after a failure) finds its run: no second one
    assert sub.submit(PARAMS) == run_id and len(kfp.runs) == 1
    assert ("POST", f"{API}/experiments") not in kfp.calls() and ("POST", f"{API}/runs") not in kfp.calls()
    other = sub.submit({**PARAMS, "trigger_details": '{"samples": 15000}'})  # another drift check
    assert other != run_id and len(kfp.runs) == 2 and len(kfp.experiments) == 1


def test_a_pipeline_not_uploaded_is_a_clear_error(kfp):
    with pytest.raises(SubmitError, match=f"no pipeline named 'training' is uploaded to {kfp.url}"):
        submitter(kfp).submit(PARAMS)
    assert kfp.runs == {}


def test_drift_persisting_over_two_checks_submits_one_run(kfp, model):
    """The trigger's logic through the KFP submitter: the second check finds the first run still running."""
    client, name, tmp_path = model
    kfp.add_pipeline("training")
    sub = submitter(kfp)

    def check():
        return logic.trigger(RETRAIN, tracking_uri=client.tracking_uri, model_name=name,
                             training_data_uri=str(tmp_path / "new.parquet"), submit=sub.submit,
                             status=sub.status, drift_run_id="drift-1")

    first = check()
    (run_id,) = kfp.runs
    assert first == {"submitted": True, "run": run_id}
    kfp.set_run_state(run_id, "RUNNING")
    second = check()
    assert second == {"submitted": False, "reason": second["reason"]} and "still running" in second["reason"]
    assert len(kfp.runs) == 1
    params = kfp.runs[run_id]["runtime_config"]["parameters"]
    assert params["trigger_reason"] == "automated_drift_detection"
    assert json.loads(params["trigger_details"])["drift_check_run_id"] == "drift-1"


def test_an_unreachable_host_is_a_failed_submission(model, tmp_path, monkeypatch):
    from tests.conftest import free_port

    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "absent"))
    client, name, tmp_path = model
    sub = KfpSubmitter(f"http://127.0.0.1:{free_port()}", "team-fraud", "drift-retraining", "")
    out = logic.trigger(RETRAIN, tracking_uri=client.tracking_uri, model_name=name,
                        training_data_uri=str(tmp_path / "new.parquet"), submit=sub.submit, status=sub.status)
    assert out["submitted"] is False and out["reason"].startswith("submission failed: ")
    assert "Connection refused" in out["error"] and logic.RUN not in client.get_registered_model(name).tags


def test_the_trigger_step_submits_from_a_kfp_runtime(kfp, model, monkeypatch):
    """A step's executor runs with _KFP_RUNTIME=true, under which kfp.client cannot be imported at all: the
    step submits from a child Python (run_in_child), with training_parameters added to the run's."""
    import subprocess
    import sys

    from components.trigger import submit

    client, name, tmp_path = model
    monkeypatch.setenv("_KFP_RUNTIME", "true")
    broken = subprocess.run([sys.executable, "-c", "import kfp.client"], capture_output=True, text=True)
    assert broken.returncode != 0  # why the child exists
    kfp.add_pipeline("training")
    out = submit.run_in_child(result=RETRAIN, tracking_uri=client.tracking_uri, model_name=name,
                              training_data_uri=str(tmp_path / "new.parquet"), kfp_host=kfp.url,
                              kfp_namespace="team-fraud", experiment_name="drift-retraining",
                              service_account="pipeline-runner", drift_run_id="drift-2",
                              training_parameters={"deployment_target": "rolling"})
    (run_id,) = kfp.runs
    assert out == {"submitted": True, "run": run_id}
    params = kfp.runs[run_id]["runtime_config"]["parameters"]
    assert params["deployment_target"] == "rolling" and params["trigger_reason"] == "automated_drift_detection"
    with pytest.raises(logic.TriggerError, match="no production version"):
        submit.run_in_child(result=RETRAIN, tracking_uri=client.tracking_uri, model_name="absent",
                            training_data_uri=str(tmp_path / "new.parquet"), kfp_host=kfp.url)
