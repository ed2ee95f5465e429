"""Where the trigger step sends a due retraining: the KFP API on a cluster, the retraining outbox otherwise.

`run` is the trigger with the submitter its arguments name; `run_in_child` runs it in a child Python, as the
trigger step must (see there); `python -m components.trigger.submit REQUEST OUTCOME` is that child. Nothing here
trains: a request in the outbox is carried out by the runner that ran the step (mlops.local).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def submitter(kfp_host: str = "", kfp_namespace: str = "", experiment_name: str = "", service_account: str = "",
              outbox_uri: str = "", cooldown_hours: float = 6.0):
    """The KFP API on `kfp_host`, else the outbox at `outbox_uri`; neither is an error (TriggerError)."""
    from components.trigger.logic import TriggerError

    if kfp_host:
        from components.kfp_api import KfpSubmitter

        return KfpSubmitter(kfp_host, kfp_namespace, experiment_name, service_account)
    if outbox_uri:
        from components.trigger.outbox import Outbox

        return Outbox(outbox_uri, stale_after_hours=cooldown_hours)
    raise TriggerError("retraining is due but there is nowhere to send it: give kfp_host (the KFP API that runs the "
                       "uploaded training pipeline) or outbox_uri (a folder the local runner carries requests out "
                       "from)")


def run(result: dict, *, tracking_uri: str, model_name: str, training_data_uri: str, registry_uri: str = "",
        kfp_host: str = "", kfp_namespace: str = "", experiment_name: str = "", service_account: str = "",
        outbox_uri: str = "", cooldown_hours: float = 6.0, training_parameters: dict | None = None,
        **trigger_arguments) -> dict:
    """components.trigger.logic.trigger with the KFP API on `kfp_host` as submitter, or the outbox at
    `outbox_uri`, whose requests also carry the registry and model the run is for. Warnings of the submitter
    (a claim abandoned by a dead runner) are in the outcome's "warnings"."""
    from components.trigger import logic

    via = submitter(kfp_host, kfp_namespace, experiment_name, service_account, outbox_uri, cooldown_hours)
    parameters = dict(training_parameters or {})
    if not kfp_host:  # a local training run is told its registry and model; a cluster run has its defaults
        parameters = {"tracking_uri": tracking_uri, "registry_uri": registry_uri, "model_name": model_name,
                      **parameters}
    outcome = logic.trigger(result, tracking_uri=tracking_uri, model_name=model_name,
                            training_data_uri=training_data_uri, registry_uri=registry_uri, submit=via.submit,
                            status=via.status, cooldown_hours=cooldown_hours, training_parameters=parameters,
                            **trigger_arguments)
    if getattr(via, "warnings", None):
        outcome["warnings"] = via.warnings
    return outcome


def run_in_child(**arguments) -> dict:
    """`run(**arguments)` (JSON values) in a child Python without `_KFP_RUNTIME`: a KFP step's executor
    imports kfp.dsl in its runtime-only form, with which kfp.client cannot be imported. The child's log is
    passed on to stderr; its error is raised as TriggerError."""
    from components.trigger.logic import TriggerError

    env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
    with tempfile.TemporaryDirectory() as tmp:
        request, outcome = Path(tmp, "request.json"), Path(tmp, "outcome.json")
        request.write_text(json.dumps(arguments))
        child = subprocess.run([sys.executable, "-m", __name__, str(request), str(outcome)], env=env,
                               stderr=subprocess.PIPE, text=True)
        sys.stderr.write(child.stderr)
        if child.returncode != 0:
            lines = [line for line in child.stderr.splitlines() if line.strip()]
            raise TriggerError(lines[-1] if lines else f"the trigger exited with {child.returncode}")
        return json.loads(outcome.read_text())


if __name__ == "__main__":
    request_path, outcome_path = sys.argv[1:]
    Path(outcome_path).write_text(json.dumps(run(**json.loads(Path(request_path).read_text()))))
