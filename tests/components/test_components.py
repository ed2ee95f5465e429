"""Each component's python_func with real artifact objects in tmp_path: the wiring, not the logic."""
import json
import math

import pytest
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model

from components import contract as contract_mod
from components import dataio, decision
from components.evaluate.component import evaluate_model
from components.gate.component import quality_gate
from components.train.component import train_model
from components.validate.component import validate_data
from components.validate.logic import ValidationFailed
from pipelines import defaults
from tests.conftest import SCHEMA
from tests.unit.test_train import FAST


def art(cls, tmp_path, name):
    return cls(name=name, uri=str(tmp_path / name), metadata={})


@pytest.fixture(scope="module")
def steps(tmp_path_factory, transactions, mlflow_server):
    tmp = tmp_path_factory.mktemp("steps")
    data = tmp / "data.parquet"
    dataio.write_table(transactions, str(data))
    out = {name: art(cls, tmp, name) for name, cls in [
        ("validated", Dataset), ("report", Markdown), ("failure_cases", Artifact), ("model", Model),
        ("holdout", Dataset), ("train_metrics", Metrics), ("importances", Artifact), ("reference_profile", Artifact),
        ("metrics", Metrics),
        ("classification", ClassificationMetrics), ("comparison", Markdown), ("evaluation", Artifact),
        ("precision_recall", HTML), ("gate_md", Markdown), ("gate_report", Artifact)]}
    out["validate"] = validate_data.python_func(data_uri=str(data), schema_uri=str(SCHEMA), validated=out["validated"],
                                                report=out["report"], failure_cases=out["failure_cases"])
    out["train"] = train_model.python_func(validated=out["validated"], schema_uri=str(SCHEMA), training_config=FAST,
                                           decision=defaults.load().decision, model=out["model"],
                                           holdout=out["holdout"], train_metrics=out["train_metrics"],
                                           importances=out["importances"], reference_profile=out["reference_profile"])
    evaluate_model.python_func(model=out["model"], holdout=out["holdout"], importances=out["importances"],
                               model_sha256=out["train"][0], schema_uri=str(SCHEMA), tracking_uri=mlflow_server,
                               registry_uri="",
                               model_name="nothing-here",
                               baseline_metrics={"roc_auc": 0.5}, quality_gates=defaults.load().quality_gates,
                               metrics=out["metrics"],
                               classification=out["classification"], comparison=out["comparison"],
                               evaluation=out["evaluation"], precision_recall=out["precision_recall"])
    out["passed"] = quality_gate.python_func(evaluation=out["evaluation"], quality_gates=defaults.load().quality_gates,
                                             report=out["gate_md"], gate_report=out["gate_report"])
    return out


def test_validate_outputs(steps, transactions):
    rows, sha = steps["validate"]
    assert rows == len(transactions) and len(sha) == 64
    assert len(dataio.read_table(steps["validated"].path)) == rows
    assert json.loads(open(steps["failure_cases"].path).read())["passed"] is True


def test_train_outputs(steps):
    model_sha, config_sha = steps["train"]
    assert steps["model"].metadata["model_sha256"] == model_sha and len(config_sha) == 64
    assert open(f"{steps['model'].path}/MLmodel").read().count(model_sha) == 1
    assert steps["train_metrics"].metadata["holdout_rows"] == 750
    profile = json.loads(open(steps["reference_profile"].path).read())
    assert profile["rows"] == steps["train_metrics"].metadata["train_rows"] and profile["bins"] == 10
    assert set(profile["features"]) == set(contract_mod.load(str(SCHEMA)).features)
    chosen = decision.read(steps["model"].path)  # 56 frauds in the training split: tuned out of fold
    assert chosen["objective"] == "min_cost" and chosen["validation"]["method"] == "out_of_fold_5"
    assert steps["train_metrics"].metadata["decision_threshold"] == chosen["threshold"] < 0.5


def test_evaluate_and_gate_outputs(steps):
    evaluation = json.loads(open(steps["evaluation"].path).read())
    assert evaluation["baseline"]["source"].startswith("baseline metrics")
    assert steps["metrics"].metadata["roc_auc"] == evaluation["metrics"]["roc_auc"]
    matrix = steps["classification"].metadata["confusionMatrix"]
    assert [a["displayName"] for a in matrix["annotationSpecs"]] == ["0", "1"] and matrix["rows"]
    assert steps["classification"].metadata["positive_class"] == "1"
    assert steps["metrics"].metadata["memory_mb"] > 0 and "slice.channel=online.roc_auc" in steps["metrics"].metadata
    # 750 holdout rows hold no slice with 20 frauds: missing, with its reason, and not in Metrics
    assert evaluation["missing"]["max_slice_recall_gap"].startswith("not computed: no slice has at least 100 rows")
    assert "max_slice_recall_gap" not in steps["metrics"].metadata
    assert all(math.isfinite(v) for v in steps["metrics"].metadata.values())
    assert "| roc_auc |" in open(steps["comparison"].path).read()
    # measured at the candidate's own threshold, its decisions costed
    assert evaluation["metrics"]["threshold"] == decision.read(steps["model"].path)["threshold"]
    assert {"flag_rate", "expected_cost", "brier_score"} <= set(evaluation["metrics"])
    assert "- candidate: min_cost threshold" in open(steps["comparison"].path).read()
    plot = open(steps["precision_recall"].path).read()
    assert "<circle" in plot and "<script" not in plot
    report = json.loads(open(steps["gate_report"].path).read())
    assert steps["passed"] is report["passed"]
    assert "Quality gate" in open(steps["gate_md"].path).read()


def test_validate_failure_writes_the_report_and_raises(tmp_path, transactions):
    data = tmp_path / "bad.parquet"
    dataio.write_table(transactions.assign(amount=-1.0), str(data))
    report, cases = art(Markdown, tmp_path, "report"), art(Artifact, tmp_path, "cases")
    with pytest.raises(ValidationFailed, match="amount"):
        validate_data.python_func(data_uri=str(data), schema_uri=str(SCHEMA),
                                  validated=art(Dataset, tmp_path, "validated"), report=report, failure_cases=cases)
    assert "FAILED" in open(report.path).read()
    assert json.loads(open(cases.path).read())["failures"][0]["column"] == "amount"
    assert not (tmp_path / "validated").exists()


def test_evaluate_refuses_a_candidate_whose_file_changed_after_training(steps, tmp_path, mlflow_server):
    from components.modelfile import ModelIntegrityError

    out = {name: art(cls, tmp_path, name) for name, cls in [
        ("metrics", Metrics), ("classification", ClassificationMetrics), ("comparison", Markdown),
        ("evaluation", Artifact), ("precision_recall", HTML)]}
    with pytest.raises(ModelIntegrityError, match="differs from the registered model_sha256"):
        evaluate_model.python_func(model=steps["model"], holdout=steps["holdout"], importances=steps["importances"],
                                   model_sha256="0" * 64, schema_uri=str(SCHEMA), tracking_uri=mlflow_server,
                                   registry_uri="",
                                   model_name="nothing-here", baseline_metrics={"roc_auc": 0.5},
                                   quality_gates=defaults.load().quality_gates, **out)
    assert not (tmp_path / "evaluation").exists()
