from dataclasses import replace

import numpy as np
import pytest

from components.evaluate import logic as ev
from components.gate import logic as gate
from tests.unit.test_train import FAST


@pytest.fixture(scope="module")
def trained(transactions, contract):
    from components.train.logic import train
    return train(transactions, contract, FAST)


def test_evaluation_metrics_latency_edge_cases(trained, contract, tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x" * 2_000_000)
    baseline = ev.Baseline(source="file", metrics={"roc_auc": 0.5})
    result = ev.evaluate(trained.pipeline, str(tmp_path), trained.holdout, contract, trained.importances, baseline)
    m = result.metrics
    assert set(m) == set(ev.METRICS)
    assert 0.5 < m["roc_auc"] <= 1 and 0 <= m["precision"] <= 1
    assert 0 < m["latency_p95_ms_single"] < 1000 and 0 < m["latency_p95_ms_batch32"] < 1000
    assert m["model_size_mb"] == pytest.approx(2.0)
    assert m["importance_stability"] is None  # the baseline has no importances
    assert m["edge_cases_passed"] == 1.0 and len(result.edge_cases) == 4
    assert sum(map(sum, result.confusion_matrix)) == len(trained.holdout)
    assert "| roc_auc |" in result.to_markdown() and "+" in result.to_markdown()


def test_edge_cases_report_a_model_that_crashes(trained, contract):
    class Fragile:
        classes_ = trained.pipeline.classes_

        def predict_proba(self, frame):
            if frame.isna().any().any():
                raise ValueError("NaN")
            return trained.pipeline.predict_proba(frame)

    cases = {c["case"]: c for c in ev.edge_cases(Fragile(), trained.holdout, contract)}
    assert cases["empty frame"]["passed"] and cases["extreme values"]["passed"]
    (missing,) = [c for name, c in cases.items() if name.startswith("missing optional")]
    assert not missing["passed"] and "NaN" in missing["detail"]


def test_importance_stability():
    a = {"x": 0.5, "y": 0.3, "z": 0.1, "w": 0.0}
    assert ev.importance_stability(a, a) == pytest.approx(1.0)
    assert ev.importance_stability(a, {"x": 0.0, "y": 0.1, "z": 0.3, "w": 0.5}) == pytest.approx(-1.0)
    assert ev.importance_stability(a, None) is None


def test_production_model_is_the_baseline_scored_with_its_own_contract(trained, contract):
    from components.registry import Champion

    champ = Champion(version="3", run_id=None, model=trained.pipeline, contract=contract,
                     importances={"amount": 1.0})
    base = ev.choose_baseline(champ, trained.holdout, contract.label, {"roc_auc": 0.5})
    assert base.source == "production v3" and base.importances == {"amount": 1.0}
    own = ev.classification_metrics(trained.holdout["is_fraud"], trained.pipeline.predict_proba(
        trained.holdout[contract.feature_columns])[:, 1])
    assert base.metrics["roc_auc"] == pytest.approx(own["roc_auc"])
    without = trained.holdout.drop(columns=["channel"])  # the schema moved on: not comparable
    fallback = ev.choose_baseline(champ, without, contract.label, {"roc_auc": 0.5})
    assert fallback.metrics == {"roc_auc": 0.5} and "['channel']" in fallback.source
    assert ev.choose_baseline(None, trained.holdout, contract.label, {"roc_auc": 0.5}).source.startswith("baseline")


def test_string_labels_are_evaluated(trained, contract, tmp_path):
    from components.train.logic import train
    from tests.unit.test_train import FAST

    data = trained.train.assign(is_fraud=np.where(trained.train["is_fraud"] == 1, "fraud", "legit"))
    contract = replace(contract, positive_class="fraud")  # alphabetically first: not classes_[1]
    model = train(data, contract, FAST)
    result = ev.evaluate(model.pipeline, str(tmp_path), model.holdout, contract, model.importances,
                         ev.Baseline(source="file", metrics={}))
    assert 0.5 < result.metrics["roc_auc"] <= 1 and result.metrics["recall"] >= 0


GATES = {"gates": {"roc_auc": {"minimum": 0.8, "baseline": "gte", "tolerance": 0.01},
                   "latency_p95_ms_single": {"maximum": 20},
                   "importance_stability": {"minimum": 0.5}}}


def test_gates_pass_and_fail_with_reasons():
    gates = gate.check_gates(GATES)
    ok = gate.evaluate_gates(gates, {"roc_auc": 0.9, "latency_p95_ms_single": 5, "importance_stability": None},
                             {"roc_auc": 0.895})
    assert ok.passed and [r["verdict"] for r in ok.rows] == ["pass"] * 3
    bad = gate.evaluate_gates(gates, {"roc_auc": 0.88, "latency_p95_ms_single": 25, "importance_stability": 0.2},
                              {"roc_auc": 0.9})
    assert not bad.passed
    rows = {r["metric"]: r for r in bad.rows}
    assert "worse than baseline 0.9000" in rows["roc_auc"]["reason"] and rows["roc_auc"]["baseline"] == 0.9
    assert rows["latency_p95_ms_single"]["reason"] == "above maximum 20"
    assert rows["importance_stability"]["verdict"] == "fail"
    assert "FAILED" in bad.to_markdown() and '"passed": false' in bad.to_json()


@pytest.mark.parametrize("doc, message", [
    ({"gates": {"rocauc": {"minimum": 1}}}, "unknown metric 'rocauc'"),
    ({"gates": {"roc_auc": {"min": 1}}}, "unknown key(s) ['min']"),
    ({"gates": {"roc_auc": {"baseline": "gt"}}}, "baseline must be 'gte' or 'lte'"),
    ({"gates": {"roc_auc": {"minimum": "high"}}}, "gates.roc_auc.minimum must be a finite number, got 'high'"),
    ({"gates": {"roc_auc": {"minimum": True}}}, "gates.roc_auc.minimum must be a finite number, got True"),
    ({"gates": {"recall": {"maximum": float("nan")}}}, "gates.recall.maximum must be a finite number, got nan"),
    ({"gates": {"roc_auc": {"minimum": 0.8, "tolerance": 0.01}}},
     "gates.roc_auc.tolerance is slack against the baseline, so gates.roc_auc needs 'baseline' too; got tolerance 0.01"),
    ({"gates": {"roc_auc": {"baseline": "gte", "tolerance": -0.01}}}, "gates.roc_auc.tolerance must be >= 0, got -0.01"),
    ({"gate": {}}, "single top-level key 'gates'"),
])
def test_bad_gates_are_rejected(doc, message):
    with pytest.raises(gate.GateConfigError, match="^gates.yaml: ") as err:
        gate.check_gates(doc, "gates.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_lte_baseline_gate():
    gates = gate.check_gates({"gates": {"latency_p95_ms_batch32": {"baseline": "lte", "tolerance": 1}}})
    assert gate.evaluate_gates(gates, {"latency_p95_ms_batch32": 3.5}, {"latency_p95_ms_batch32": 3}).passed
    assert not gate.evaluate_gates(gates, {"latency_p95_ms_batch32": 4.5}, {"latency_p95_ms_batch32": 3}).passed
