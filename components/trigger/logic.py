"""Submit a training run when the monitoring run says so (drift, or live performance): once, not every hour, and
never to reproduce the same model.

The loop's state lives in the registry as tags of the registered model (`retraining_submitted_at`,
`retraining_run`, `retraining_reason`), so a local loop and a cluster loop behave the same. A submission
that fails is reported and leaves that state as it was; with a Pushgateway, a gauge says so to the alerts.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Callable

from components import dataio, registry
from components.registry import version_by_alias

REASON = "automated_drift_detection"
PERFORMANCE_REASON = "automated_performance_degradation"  # when the live gates alone found retraining due
SUBMITTED_AT, RUN, DETAILS = "retraining_submitted_at", "retraining_run", "retraining_reason"
ACTIVE = frozenset({"pending", "running", "paused", "canceling"})  # a run in these states has not ended
# the trigger's gauges: in a Pushgateway group of their own beside the drift check's job=<model> group
FAILED = "model_drift_retraining_submission_failed"
SUBMITTED_TIME = "model_drift_retraining_last_submission_timestamp_seconds"
GROUPING_KEY = {"step": "trigger-retraining"}


class TriggerError(RuntimeError):
    """The trigger cannot decide: no production version, or its data cannot be compared."""


def reason(result: dict) -> str:
    """The submitted run's trigger_reason: performance alone, or drift (with or without performance)."""
    return PERFORMANCE_REASON if result.get("reasons") == ["performance"] else REASON


def details(result: dict, drift_run_id: str) -> str:
    """Why the run was submitted: the drifted features with their scores, the sample count, the check's run;
    with live performance, the reasons and the failed live gates with their values."""
    scores = result.get("scores") or {}
    doc = {"drifted_features": {f: scores.get(f) for f in result.get("drifted_features") or []},
           "samples": result.get("samples"), "drifted_share": result.get("drifted_share"),
           "model_version": result.get("model_version"), "drift_check_run_id": drift_run_id}
    performance = result.get("performance")
    if performance:
        doc["reasons"] = result.get("reasons", [])
        doc["failed_live_gates"] = [{k: row[k] for k in ("metric", "value", "threshold", "baseline", "reason")}
                                    for row in performance.get("gates", []) if row["verdict"] == "fail"]
        doc["live"] = {k: performance.get(k) for k in ("decision", "labelled", "positives", "coverage")}
    return json.dumps(doc, sort_keys=True)


def _pending(tags: dict, status: Callable[[str], str], cooldown_hours: float, now: float) -> str | None:
    """Why the last submission still stands in the way of a new one, or None."""
    run, at = tags.get(RUN), tags.get(SUBMITTED_AT)
    if not run or not at:
        return None
    state = status(run).lower()
    if state in ACTIVE:
        return f"retraining run {run} submitted at {at} is still {state}"
    age_hours = (now - datetime.fromisoformat(at).timestamp()) / 3600
    if age_hours < cooldown_hours:
        return (f"cooldown: retraining run {run} ({state}) was submitted at {at}, {age_hours:.1f} h ago, "
                f"within cooldown_hours={cooldown_hours:g}")
    return None


def trigger(result: dict, *, tracking_uri: str, model_name: str, training_data_uri: str,
            submit: Callable[[dict], str], status: Callable[[str], str], cooldown_hours: float = 6,
            drift_run_id: str = "", training_parameters: dict | None = None, pushgateway_url: str | None = None,
            now: Callable[[], float] = time.time, registry_uri: str = "") -> dict:
    """`{"submitted": true, "run": id}`, or `{"submitted": false, "reason": ...}` (plus `"error"` when the
    submission itself failed). `submit(parameters)` starts a training run and returns its id;
    `status(run_id)` says how a run submitted earlier is doing ("running", "succeeded", "failed", ...).
    `training_parameters`: more parameters of the submitted run (the reason and the data are the trigger's).
    With `pushgateway_url`, a due retraining's outcome is pushed (`push`), an error included, and the push's
    outcome is in the result's "pushgateway"."""
    decision = result.get("decision")
    if decision != "retrain":
        return {"submitted": False, "reason": f"decision is {decision!r}: no retraining due"}
    try:
        outcome = _trigger(result, registry.client(tracking_uri, registry_uri), model_name, training_data_uri, submit,
                           status, cooldown_hours, drift_run_id, training_parameters or {}, now)
    except Exception as exc:  # the step fails, and the alert learns that the due retraining was not submitted
        if pushgateway_url:
            push(pushgateway_url, model_name, {"submitted": False, "error": f"{type(exc).__name__}: {exc}"}, now)
        raise
    if pushgateway_url:
        outcome["pushgateway"] = push(pushgateway_url, model_name, outcome, now)
    return outcome


def _trigger(result: dict, client, model_name: str, training_data_uri: str, submit, status,
             cooldown_hours: float, drift_run_id: str, training_parameters: dict, now) -> dict:
    production = version_by_alias(client, model_name, "production")
    if production is None:
        raise TriggerError(f"model {model_name!r} has no production version: nothing to compare drift with")
    tags = client.get_registered_model(model_name).tags
    waiting = _pending(tags, status, cooldown_hours, now())
    if waiting:
        return {"submitted": False, "reason": waiting}
    digest = dataio.sha256(training_data_uri)
    if digest == production.tags.get("data_sha256"):
        return {"submitted": False, "reason": f"no new labelled data: {training_data_uri} (sha256 {digest}) is the "
                                              f"data production version {production.version} was trained on"}
    why = details(result, drift_run_id)
    try:
        run = submit({**training_parameters, "data_uri": training_data_uri, "trigger_reason": reason(result),
                      "trigger_details": why})
    except Exception as exc:  # any failure of the submitter is the answer, not a crash of the check
        error = f"{type(exc).__name__}: {exc}"
        return {"submitted": False, "reason": f"submission failed: {error}", "error": error}
    submitted_at = datetime.fromtimestamp(now(), timezone.utc).isoformat(timespec="seconds")
    for key, value in ((RUN, run), (SUBMITTED_AT, submitted_at), (DETAILS, why)):
        client.set_registered_model_tag(model_name, key, value)
    return {"submitted": True, "run": run}


def gauges(model_name: str, outcome: dict, now: Callable[[], float] = time.time):
    """`model_drift_retraining_submission_failed{model}` (1: the due retraining was not submitted because of an
    error; 0: submitted, or rightly not) and, on a submission, its time; in a registry of their own."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    Gauge(FAILED, "1 when the retraining the drift check found due could not be submitted", ["model"],
          registry=registry).labels(model_name).set(1 if "error" in outcome else 0)
    if outcome.get("submitted"):
        Gauge(SUBMITTED_TIME, "Unix time of the last retraining run submitted on drift", ["model"],
              registry=registry).labels(model_name).set(now())
    return registry


def push(url: str, model_name: str, outcome: dict, now: Callable[[], float] = time.time,
         timeout: float = 10.0) -> dict:
    """Push `gauges` to the Pushgateway under job=<model name> with GROUPING_KEY: the drift check replaces its
    own group (job=<model name>) at every push, so each keeps the other's series. pushadd: a push without a
    submission keeps the last submission's time. A failure is logged and returned, never raised."""
    from components import pushgateway

    return pushgateway.push(url, model_name, gauges(model_name, outcome, now), GROUPING_KEY, add=True,
                            timeout=timeout)
