"""register_model: an MLflow model version with lineage tags, alias `staged`; idempotent."""
from kfp.dsl import Artifact, Input, Model, Output

from components.image import component


@component
def register_model(
    model: Input[Model],
    evaluation: Input[Artifact],
    gate_report: Input[Artifact],
    importances: Input[Artifact],
    reference_profile: Input[Artifact],
    schema_uri: str,
    tracking_uri: str,
    registry_uri: str,
    model_name: str,
    training_config: dict,
    data_sha256: str,
    config_sha256: str,
    git_commit: str,
    pipeline_run_id: str,
    registration: Output[Artifact],
    trigger_reason: str = "manual",
    trigger_details: str = "",
) -> str:
    """Returns the model version; a model hash already registered is not registered again.
    `trigger_reason` and `trigger_details` (why the run was started) become tags of the version."""
    import json

    from components import contract, memory
    from components.lockfile import lock_sha256
    from components.register import logic

    spec = contract.load(schema_uri)
    loaded = {}
    for name, artifact in (("evaluation", evaluation), ("gate_report", gate_report), ("importances", importances)):
        with open(artifact.path) as fh:
            loaded[name] = json.load(fh)
    lineage = {"git_commit": git_commit, "data_sha256": data_sha256, "config_sha256": config_sha256,
               "pipeline_run_id": pipeline_run_id, "feature_schema": f"{spec.name}",
               "feature_schema_version": spec.version, "lock_sha256": lock_sha256(), "trigger_reason": trigger_reason}
    if trigger_details:
        lineage["trigger_details"] = trigger_details
    result = logic.register(tracking_uri, model_name, model.path, lineage,
                            metrics=loaded["evaluation"]["metrics"], config=training_config,
                            importances=loaded["importances"], gate_report=loaded["gate_report"],
                            evaluation=loaded["evaluation"], reference_profile=reference_profile.path,
                            registry_uri=registry_uri)
    registration.metadata.update(result.to_dict())
    with open(registration.path, "w") as fh:
        json.dump(result.to_dict(), fh, indent=2)
    memory.report()
    return result.version
