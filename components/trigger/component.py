"""trigger_retraining: submit one training run when the drift check says retraining is due."""
from kfp.dsl import Artifact, Input, Output

from components.image import component


@component
def trigger_retraining(
    drift_result: Input[Artifact],
    tracking_uri: str,
    model_name: str,
    training_data_uri: str,
    kfp_host: str,
    kfp_namespace: str,
    experiment_name: str,
    service_account: str,
    cooldown_hours: float,
    drift_run_id: str,
    retraining: Output[Artifact],
) -> str:
    """Returns the submitted run's id, "" when nothing was submitted (the reason is in `retraining`).
    kfp_host "" submits a local training run (the embedded default). A failed submission fails the step."""
    import json

    from components.trigger import logic, submit

    with open(drift_result.path) as fh:
        result = json.load(fh)
    submitter = (submit.KfpSubmitter(kfp_host, kfp_namespace, experiment_name, service_account) if kfp_host
                 else submit.local_submitter(tracking_uri, model_name))
    outcome = logic.trigger(result, tracking_uri=tracking_uri, model_name=model_name,
                            training_data_uri=training_data_uri, submit=submitter.submit, status=submitter.status,
                            cooldown_hours=cooldown_hours, drift_run_id=drift_run_id)
    retraining.metadata.update(outcome)
    with open(retraining.path, "w") as fh:
        json.dump(outcome, fh, indent=2)
    print(json.dumps(outcome))
    if "error" in outcome:
        raise RuntimeError(f"retraining was due but {outcome['reason']}")
    return outcome.get("run", "")
