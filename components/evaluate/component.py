"""evaluate_model: holdout metrics, latency, size, stability and edge cases against the baseline."""
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import component


@component
def evaluate_model(
    model: Input[Model],
    holdout: Input[Dataset],
    importances: Input[Artifact],
    schema_uri: str,
    tracking_uri: str,
    model_name: str,
    baseline_metrics: dict,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    comparison: Output[Markdown],
    evaluation: Output[Artifact],
):
    """Compare with the registry's production model on the same holdout, else with `baseline_metrics`."""
    import json

    import mlflow.sklearn

    from components import contract, dataio, registry
    from components.evaluate import logic

    spec = contract.load(schema_uri)
    frame = dataio.read_table(holdout.path)
    with open(importances.path) as fh:
        candidate_importances = json.load(fh)
    baseline = logic.choose_baseline(registry.champion(tracking_uri, model_name), frame, spec.label,
                                     baseline_metrics)
    result = logic.evaluate(mlflow.sklearn.load_model(model.path), model.path, frame, spec,
                            candidate_importances, baseline)
    for name, value in result.metrics.items():
        if value is not None:
            metrics.log_metric(name, value)
    classification.log_confusion_matrix(["legit", "positive"], result.confusion_matrix)
    classification.log_roc_curve(result.roc_curve["fpr"], result.roc_curve["tpr"], result.roc_curve["threshold"])
    with open(comparison.path, "w") as fh:
        fh.write(result.to_markdown())
    with open(evaluation.path, "w") as fh:
        json.dump(result.to_dict(), fh, indent=2)
