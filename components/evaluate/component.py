"""evaluate_model: holdout metrics, latency, size, stability and edge cases against the baseline."""
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import component


@component
def evaluate_model(
    model: Input[Model],
    holdout: Input[Dataset],
    importances: Input[Artifact],
    model_sha256: str,
    schema_uri: str,
    tracking_uri: str,
    registry_uri: str,
    model_name: str,
    baseline_metrics: dict,
    quality_gates: dict,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    comparison: Output[Markdown],
    evaluation: Output[Artifact],
    precision_recall: Output[HTML],
):
    """Compare with the registry's production model on the same holdout, else with `baseline_metrics`; each
    model decides at its own threshold (decision.json in its folder), both are costed with the candidate's costs.

    Slices come from `quality_gates`; a production model that fails to load is recorded as the baseline's error.
    `precision_recall` plots the candidate's curve with its chosen point."""
    import json

    from components import contract, dataio, decision, memory, modelfile, registry
    from components.evaluate import logic, report
    from components.gates import check_gates

    registry_uri = registry.resolve_registry_uri(tracking_uri, registry_uri)  # a wrong one fails here, loudly
    spec = contract.load(schema_uri)
    slices = check_gates(quality_gates, "quality_gates parameter").slices
    frame = dataio.read_table(holdout.path)
    with open(importances.path) as fh:
        candidate_importances = json.load(fh)
    baseline = logic.choose_baseline(lambda: registry.champion(tracking_uri, model_name, registry_uri=registry_uri),
                                     frame, spec, baseline_metrics, slices, decision.read(model.path))
    # the candidate too is loaded only as saved: skops, bytes checked against what train_model recorded
    result = logic.evaluate(modelfile.load_model(model.path, model_sha256), model.path, frame, spec,
                            candidate_importances, baseline, slices)
    for name, value in result.kfp_metrics().items():  # finite numbers only; the missing are in `evaluation`
        metrics.log_metric(name, value)
    classification.log_confusion_matrix(result.class_names, result.confusion_matrix)
    if result.roc_curve is not None:
        classification.log_roc_curve(result.roc_curve["fpr"], result.roc_curve["tpr"], result.roc_curve["threshold"])
    classification.metadata["positive_class"] = result.class_names[1]
    with open(comparison.path, "w") as fh:
        fh.write(result.to_markdown())
    with open(evaluation.path, "w") as fh:
        json.dump(result.to_dict(), fh, indent=2)
    with open(precision_recall.path, "w") as fh:
        fh.write(report.render_precision_recall(result.pr_curve, result.metrics, f"Precision-recall of {model_name}"))
    memory.report()
