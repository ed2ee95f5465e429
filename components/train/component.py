"""train_model: a scikit-learn Pipeline built from the contract and the training config."""
from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.image import component


@component
def train_model(
    validated: Input[Dataset],
    schema_uri: str,
    training_config: dict,
    decision: dict,
    model: Output[Model],
    holdout: Output[Dataset],
    train_metrics: Output[Metrics],
    importances: Output[Artifact],
    reference_profile: Output[Artifact],
    profile_bins: int = 10,
) -> NamedTuple("TrainOutputs", model_sha256=str, config_sha256=str):
    """Fit on a stratified split and choose the decision threshold of `decision` (components.decision); write
    the MLflow model with its decision.json, the holdout, permutation importances and the reference profile of
    the training split's raw features (what drift is measured against)."""
    import json

    from components import contract, dataio, memory
    from components.profile import write_profile
    from components.train import logic

    spec = contract.load(schema_uri)
    # only the contract's columns, held by training alone, which lets the table go before the trees' fit
    result = logic.train(logic.Table(dataio.read_table(validated.path, columns=[*spec.feature_columns, spec.label])),
                         spec, training_config, decision, profile_bins)
    digest = logic.save_model(result, spec, model.path)
    model.metadata.update({"framework": "mlflow.sklearn", "model_sha256": digest,
                           "estimator": training_config["estimator"], "best_params": result.best_params})
    dataio.write_table(result.holdout, holdout.path)
    train_metrics.log_metric("train_rows", len(result.train_rows))
    train_metrics.log_metric("holdout_rows", len(result.holdout))
    train_metrics.log_metric("decision_threshold", result.decision["threshold"])
    print(f"decision: {result.decision['objective']} threshold {result.decision['threshold']:.6g} "
          f"(validation: {json.dumps(result.decision['validation'])})")
    if result.cv_score is not None:
        train_metrics.log_metric("cv_score", result.cv_score)
    with open(importances.path, "w") as fh:
        json.dump(result.importances, fh, indent=2)
    reference_profile.metadata["sha256"] = write_profile(result.profile, reference_profile.path)
    train_metrics.log_metric("peak_rss_mb", memory.report())
    return (digest, logic.config_sha256(training_config))
