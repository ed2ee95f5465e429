"""deploy_model: roll the registered version out and move its lifecycle in the registry."""
from kfp.dsl import Artifact, Output

from components.image import component


@component
def deploy_model(
    tracking_uri: str,
    registry_uri: str,
    model_name: str,
    model_version: str,
    deployment_target: str,
    namespace: str,
    rollout_name: str,
    timeout_minutes: float,
    quality_gates: dict,
    pipeline_run_id: str,
    deployment: Output[Artifact],
) -> str:
    """Returns the outcome (promoted, unchanged, skipped); a failed or timed-out rollout fails the step.
    The canary's online thresholds come from the gates file's `online` section, its expected flag rate
    ratio from the version's tag `metric.flag_rate_ratio`. `timeout_minutes` 0 means the Rollout's own
    pauses and analyses plus a margin. For `local`, the pinned manifests are written into `deployment`
    (what a cluster deployment would apply)."""
    import json
    import os

    from components import memory
    from components.deploy import logic, online

    os.makedirs(deployment.path, exist_ok=True)
    result = logic.deploy(tracking_uri, model_name, model_version, deployment_target, namespace=namespace,
                          rollout=rollout_name, timeout_seconds=timeout_minutes * 60 or None,
                          online=online.online_of(quality_gates, "quality_gates parameter"),
                          pipeline_run=pipeline_run_id, output_dir=deployment.path,
                          registry_uri=registry_uri)
    deployment.metadata.update(result.to_dict())
    with open(os.path.join(deployment.path, "deployment.json"), "w") as fh:
        json.dump(result.to_dict(), fh, indent=2)
    print(result.message)
    memory.report()
    return result.outcome
