"""trigger_retraining: the KFP step that sends one training run when the drift check says retraining is due."""
from kfp.dsl import Artifact, Input, Output

from components.image import component


@component
def trigger_retraining(
    drift_result: Input[Artifact],
    tracking_uri: str,
    registry_uri: str,
    model_name: str,
    training_data_uri: str,
    kfp_host: str,
    kfp_namespace: str,
    experiment_name: str,
    service_account: str,
    outbox_uri: str,
    cooldown_hours: float,
    drift_run_id: str,
    training_parameters: dict,
    pushgateway_url: str,
    retraining: Output[Artifact],
) -> str:
    """Returns the submitted run's (or request's) id, "" when nothing was submitted (the reason is in
    `retraining`). Submits to the KFP API on `kfp_host`; kfp_host "" records a request in the retraining outbox
    at `outbox_uri` for the runner that runs this pipeline (the local runner); both empty is an error. A failed
    submission fails the step, and sets the failure gauge on `pushgateway_url` (empty: PUSHGATEWAY_URL, if set)."""
    import json
    import os

    from components import memory
    from components.trigger import submit

    with open(drift_result.path) as fh:
        result = json.load(fh)
    outcome = submit.run_in_child(result=result, tracking_uri=tracking_uri, registry_uri=registry_uri,
                                  model_name=model_name,
                                  training_data_uri=training_data_uri, kfp_host=kfp_host, kfp_namespace=kfp_namespace,
                                  experiment_name=experiment_name, service_account=service_account,
                                  outbox_uri=outbox_uri, cooldown_hours=cooldown_hours, drift_run_id=drift_run_id,
                                  training_parameters=training_parameters,
                                  pushgateway_url=pushgateway_url or os.environ.get("PUSHGATEWAY_URL"))
    retraining.metadata.update({k: v for k, v in outcome.items() if k != "warnings"})
    with open(retraining.path, "w") as fh:
        json.dump(outcome, fh, indent=2)
    print(json.dumps(outcome))  # a claim abandoned by a dead runner is in its "warnings", and the child logged it
    if "error" in outcome:
        raise RuntimeError(f"retraining was due but {outcome['reason']}")
    memory.report()
    return outcome.get("run", "")
