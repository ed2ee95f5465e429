import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from components.evaluate import logic as ev
from components.gate import logic as gate
from components.gates import GateConfigError, check_gates
from components.metrics import METRICS, Slices
from components.registry import Champion
from tests.unit.test_train import FAST

# configs/quality_gates.yaml as the guide prints it, comments and all
SEED_GATES = """\
# configs/quality_gates.yaml
metrics:
  accuracy:
    minimum: 0.92
    comparison: "gte"  # greater than or equal to baseline
  latency_p95_ms:
    maximum: 50
    comparison: "lte"
  model_size_mb:
    maximum: 500
  feature_importance_stability:
    minimum: 0.85  # correlation with baseline feature importance
"""


@pytest.fixture(scope="module")
def trained(transactions, contract):
    from components.train.logic import train
    return train(transactions, contract, FAST)


@pytest.fixture(scope="module")
def first(trained, contract, tmp_path_factory):
    """The evaluation of a first model: no production model, the baseline metrics file."""
    folder = tmp_path_factory.mktemp("model")
    (folder / "model.bin").write_bytes(b"x" * 2_000_000)
    baseline = ev.choose_baseline(lambda: None, trained.holdout, contract, {"roc_auc": 0.5})
    return ev.evaluate(trained.pipeline, str(folder), trained.holdout, contract, trained.importances, baseline)


def test_evaluation_metrics_latency_memory_edge_cases(first, trained):
    m = first.metrics
    assert set(m) == set(METRICS)
    assert 0.5 < m["roc_auc"] <= 1 and 0 <= m["precision"] <= 1
    assert m["latency_p95_ms"] > 0 and m["latency_p95_ms_batch32"] > 0  # figures: benchmarks/
    assert 0 < m["memory_mb"] < 500
    assert m["model_size_mb"] == pytest.approx(2.0)
    assert m["feature_importance_stability"] is None
    assert first.missing["feature_importance_stability"] == "not applicable: no baseline"
    assert m["edge_cases_passed"] == 1.0 and len(first.edge_cases) == 4
    assert sum(map(sum, first.confusion_matrix)) == len(trained.holdout)
    assert first.class_names == ["0", "1"]
    md = first.to_markdown()
    assert "| roc_auc |" in md and "+" in md and "| memory_mb |" in md and "| channel=online |" in md
    json.dumps(first.to_dict(), allow_nan=False)  # no NaN or infinity anywhere


def test_memory_counts_what_prediction_allocates(trained, contract):
    class Greedy:
        """The same model, holding 80 MB more while it predicts."""
        classes_ = trained.pipeline.classes_

        def predict_proba(self, frame):
            scratch = np.ones(10_000_000)  # 80 MB
            return trained.pipeline.predict_proba(frame) * scratch[:1]

    plain = ev.memory_mb(trained.pipeline, trained.holdout, contract)
    assert ev.memory_mb(Greedy(), trained.holdout, contract) == pytest.approx(plain + 80, abs=5)
    # 10,000 rows: the one-hot matrix alone is 10,000 x (features) float64
    assert plain > 10_000 * len(contract.feature_columns) * 8 / 1e6


def test_slice_metrics_and_recall_gap(contract):
    frame = pd.DataFrame({"channel": ["a"] * 200 + ["b"] * 200 + ["c"] * 50, "card_present": [True, False] * 225})
    y = np.array(([1] * 20 + [0] * 180) + ([1] * 20 + [0] * 180) + ([1] * 10 + [0] * 40))
    proba = np.zeros(len(y))
    proba[:20] = 0.9                 # a: every positive found (recall 1)
    proba[200:210] = 0.9             # b: half of them (recall 0.5)
    slices = Slices(columns=["channel"], min_rows=100)
    table = ev.slice_table(frame, y, proba, ["channel"], slices)
    rows = {s["value"]: s for s in table}
    assert (rows["a"]["recall"], rows["b"]["recall"], rows["c"]["recall"]) == (1.0, 0.5, 0.0)
    assert rows["c"]["gated"] is False and rows["a"]["gated"] and rows["b"]["precision"] == 1.0
    assert (rows["c"]["precision"] is None
            and rows["c"]["missing"]["precision"] == "not computed: no row predicted positive")
    overall = 30 / 50
    gap, reason = ev.max_slice_recall_gap(overall, table, slices)
    assert gap == pytest.approx(overall - 0.5) and reason is None  # c (50 rows) is reported, not gated
    stricter = Slices(columns=["channel"], min_rows=100, min_positives=21)
    assert ev.max_slice_recall_gap(overall, ev.slice_table(frame, y, proba, ["channel"], stricter), stricter)[0] is None
    with pytest.raises(ValueError, match=r"slice column\(s\) \['nope'\] are not features"):
        Slices(columns=["nope"]).resolve(contract)
    assert Slices().resolve(contract) == contract.categorical + contract.boolean


def test_slices_are_in_the_evaluation_and_its_metrics(first, contract):
    columns = {s["column"] for s in first.slices}
    assert columns == set(contract.categorical + contract.boolean)
    assert first.metrics["max_slice_recall_gap"] == pytest.approx(
        first.metrics["recall"] - min(s["recall"] for s in first.slices if s["gated"] and s["recall"] is not None))
    kfp = first.kfp_metrics()
    assert kfp["slice.channel=online.recall"] == next(s["recall"] for s in first.slices if s["value"] == "online")
    assert "max_slice_recall_gap" in kfp and "feature_importance_stability" not in kfp
    assert all(np.isfinite(v) for v in kfp.values())


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


def production(**known) -> ev.Baseline:
    return ev.Baseline(source="production v3", metrics={}, version="3", production_model=True, **known)


def test_importance_stability():
    a = {"x": 0.5, "y": 0.3, "z": 0.1, "w": 0.0}
    assert ev.importance_stability(a, production(importances=a)) == (pytest.approx(1.0), None)
    flipped = {"x": 0.0, "y": 0.1, "z": 0.3, "w": 0.5}
    assert ev.importance_stability(a, production(importances=flipped))[0] == pytest.approx(-1.0)
    assert ev.importance_stability(a, ev.Baseline("file", {})) == (None, "not applicable: no baseline")
    assert ev.importance_stability(a, production()) == (None, "production v3 has no recorded feature importances")
    assert ev.importance_stability(a, production(importances_error="boom")) == (None, "boom")
    assert "only 1 feature(s) in common" in ev.importance_stability(a, production(importances={"x": 1}))[1]
    constant = {k: 0.0 for k in a}
    assert ev.importance_stability(a, production(importances=constant))[1].startswith("not computed: the result is nan")


def test_production_model_is_the_baseline_scored_with_its_own_contract(trained, contract):
    champ = Champion(version="3", run_id=None, model=trained.pipeline, contract=contract,
                     importances={"amount": 1.0})
    base = ev.choose_baseline(lambda: champ, trained.holdout, contract, {"roc_auc": 0.5})
    assert base.source == "production v3" and base.importances == {"amount": 1.0} and base.error is None
    own = ev.classification_metrics(
        ev.is_positive(trained.holdout["is_fraud"], contract),
        trained.pipeline.predict_proba(trained.holdout[contract.feature_columns])[:, 1])[0]
    assert base.metrics["roc_auc"] == pytest.approx(own["roc_auc"])
    assert {"latency_p95_ms", "memory_mb", "max_slice_recall_gap"} <= set(base.metrics)
    without = trained.holdout.drop(columns=["channel"])  # the schema moved on: not comparable
    fallback = ev.choose_baseline(lambda: champ, without, contract, {"roc_auc": 0.5}, Slices(columns=[]))
    assert fallback.metrics == {"roc_auc": 0.5} and "['channel']" in fallback.source
    assert fallback.production_model and fallback.importances == {"amount": 1.0}
    assert ev.choose_baseline(lambda: None, trained.holdout, contract, {}).source.startswith("baseline")


def test_a_production_model_that_fails_is_an_error_not_no_baseline(trained, contract):
    def broken():
        raise OSError("artifact store unreachable")

    base = ev.choose_baseline(broken, trained.holdout, contract, {"accuracy": 0.5})
    assert base.production_model and base.metrics == {}
    assert base.error == "the production model could not be loaded: OSError: artifact store unreachable"

    class Unscorable:
        classes_ = np.array([0, 1])

        def predict_proba(self, frame):
            raise RuntimeError("corrupt tree")

    champ = Champion(version="4", run_id="r", model=Unscorable(), contract=contract, importances={"amount": 1.0})
    base = ev.choose_baseline(lambda: champ, trained.holdout, contract, {})
    assert base.error == "production v4 could not be scored on the holdout: RuntimeError: corrupt tree"
    assert ev.importance_stability(trained.importances, base) == (None, base.error)


def test_string_labels_are_evaluated(trained, transactions, contract, tmp_path):
    from components.train.logic import train

    split = transactions.iloc[trained.train_rows]
    data = split.assign(is_fraud=np.where(split["is_fraud"] == 1, "fraud", "legit"))
    spec = replace(contract, positive_class="fraud")  # alphabetically first: not classes_[1]
    model = train(data, spec, FAST)
    result = ev.evaluate(model.pipeline, str(tmp_path), model.holdout, spec, model.importances,
                         ev.Baseline(source="file", metrics={}))
    assert 0.5 < result.metrics["roc_auc"] <= 1 and result.metrics["recall"] >= 0
    assert result.class_names == ["legit", "fraud"]
    # confusion matrix rows are [negative, positive]: the second row holds every fraud of the holdout
    assert sum(result.confusion_matrix[1]) == (model.holdout["is_fraud"] == "fraud").sum()


def test_a_metric_that_cannot_be_computed_is_missing_with_a_reason(trained, contract, tmp_path):
    legit_only = trained.holdout[trained.holdout["is_fraud"] == 0]
    result = ev.evaluate(trained.pipeline, str(tmp_path), legit_only, contract, trained.importances,
                         ev.Baseline(source="file", metrics={}))
    assert result.metrics["roc_auc"] is None and result.missing["roc_auc"] == "not computed: needs rows of both classes"
    assert result.metrics["recall"] is None and "no rows of the positive class" in result.missing["recall"]
    assert result.metrics["max_slice_recall_gap"] is None and result.roc_curve is None
    json.dumps(result.to_dict(), allow_nan=False)
    assert all(np.isfinite(v) for v in result.kfp_metrics().values())
    rows = {r["metric"]: r for r in gate.evaluate_gates(check_gates(
        {"metrics": {"roc_auc": {"minimum": 0.5}}}), result.to_dict()).rows}
    assert rows["roc_auc"]["verdict"] == "fail" and rows["roc_auc"]["reason"].startswith("missing: not computed")


def evaluation(metrics, baseline=None, missing=None, production_model=False, error=None):
    return {"metrics": metrics, "missing": missing or {},
            "baseline": {"metrics": baseline or {}, "production_model": production_model, "error": error,
                         "missing": {}}}


GATES = {"metrics": {"roc_auc": {"minimum": 0.8, "comparison": "gte", "tolerance": 0.01},
                     "latency_p95_ms": {"maximum": 20},
                     "feature_importance_stability": {"minimum": 0.5}}}


def test_gates_pass_and_fail_with_reasons():
    gates = check_gates(GATES)
    ok = gate.evaluate_gates(gates, evaluation({"roc_auc": 0.9, "latency_p95_ms": 5,
                                                "feature_importance_stability": None}, {"roc_auc": 0.895}))
    assert ok.passed and [r["verdict"] for r in ok.rows] == ["pass", "pass", "not applicable"]
    assert ok.rows[2]["reason"] == "not applicable: no baseline"
    bad = gate.evaluate_gates(gates, evaluation({"roc_auc": 0.88, "latency_p95_ms": 25,
                                                 "feature_importance_stability": 0.2}, {"roc_auc": 0.9},
                                                production_model=True))
    assert not bad.passed
    rows = {r["metric"]: r for r in bad.rows}
    assert "worse than baseline 0.9000" in rows["roc_auc"]["reason"] and rows["roc_auc"]["baseline"] == 0.9
    assert rows["latency_p95_ms"]["reason"] == "above maximum 20"
    assert rows["feature_importance_stability"]["verdict"] == "fail"
    assert "FAILED" in bad.to_markdown() and '"passed": false' in bad.to_json()


def test_gates_fail_closed():
    gates = check_gates(GATES)
    # a missing metric fails, with the evaluation's reason
    result = gate.evaluate_gates(gates, evaluation({"roc_auc": None, "latency_p95_ms": 5,
                                                    "feature_importance_stability": None},
                                                   missing={"roc_auc": "not computed: one class"}))
    rows = {r["metric"]: r for r in result.rows}
    assert not result.passed and rows["roc_auc"]["reason"] == "missing: not computed: one class"
    # stability is not applicable only while no production model exists
    err = "the feature importances of production v3 could not be loaded: OSError: gone"
    result = gate.evaluate_gates(gates, evaluation({"roc_auc": 0.9, "latency_p95_ms": 5,
                                                    "feature_importance_stability": None}, {"roc_auc": 0.9},
                                                   missing={"feature_importance_stability": err},
                                                   production_model=True))
    rows = {r["metric"]: r for r in result.rows}
    assert not result.passed and rows["feature_importance_stability"]["reason"] == f"missing: {err}"
    # a production model that failed to load fails the comparison too: it is not "no baseline"
    result = gate.evaluate_gates(gates, evaluation({"roc_auc": 0.9, "latency_p95_ms": 5,
                                                    "feature_importance_stability": None},
                                                   production_model=True, error="could not be loaded: X"))
    rows = {r["metric"]: r for r in result.rows}
    assert (rows["roc_auc"]["verdict"] == "fail"
            and "no baseline value: could not be loaded: X" in rows["roc_auc"]["reason"])
    assert rows["latency_p95_ms"]["verdict"] == "pass"  # needs no baseline
    assert "n/a" in result.failures()


def test_a_comparison_without_baseline_value_is_not_applicable_but_bounds_still_apply():
    gates = check_gates({"metrics": {"accuracy": {"minimum": 0.92, "comparison": "gte"},
                                          "recall": {"comparison": "gte"}}})
    result = gate.evaluate_gates(gates, evaluation({"accuracy": 0.95, "recall": 0.3}))
    rows = {r["metric"]: r for r in result.rows}
    assert result.passed and rows["accuracy"]["verdict"] == "pass"
    assert rows["accuracy"]["reason"] == "within bounds; not applicable: no baseline"
    assert (rows["recall"]["verdict"], rows["recall"]["reason"]) == ("not applicable", "not applicable: no baseline")
    low = gate.evaluate_gates(gates, evaluation({"accuracy": 0.91, "recall": 0.3}))
    assert not low.passed and low.rows[0]["reason"] == "below minimum 0.92"


def test_latency_comparison_allows_twenty_percent_unless_told_otherwise():
    gates = check_gates({"metrics": {"latency_p95_ms": {"comparison": "lte"},
                                          "latency_p95_ms_batch32": {"comparison": "lte", "tolerance": 1}}})
    base = {"latency_p95_ms": 10, "latency_p95_ms_batch32": 3}
    ok = gate.evaluate_gates(gates, evaluation({"latency_p95_ms": 11.9, "latency_p95_ms_batch32": 3.9}, base))
    assert ok.passed and ok.rows[0]["threshold"] == "<= baseline x 1.2"
    bad = gate.evaluate_gates(gates, evaluation({"latency_p95_ms": 12.1, "latency_p95_ms_batch32": 4.1}, base))
    assert [r["verdict"] for r in bad.rows] == ["fail", "fail"]
    assert bad.rows[0]["reason"] == "worse than baseline 10.0000 by more than 20%"


def test_the_seeds_gates_file_verbatim(first, trained, contract, tmp_path):
    """Loads, passes a good first model (stability not applicable: no production model) and fails a model
    whose stability cannot be computed because the production model's importances did not load."""
    gates = check_gates(yaml.safe_load(SEED_GATES), "seed")
    assert list(gates.metrics) == ["accuracy", "latency_p95_ms", "model_size_mb", "feature_importance_stability"]
    fast = {**first.to_dict(), "metrics": {**first.metrics, "latency_p95_ms": 1.0}}  # latency is the machine's
    result = gate.evaluate_gates(gates, fast)
    assert result.passed, result.to_markdown()
    verdicts = {r["metric"]: r["verdict"] for r in result.rows}
    assert verdicts == {"accuracy": "pass", "latency_p95_ms": "pass", "model_size_mb": "pass",
                        "feature_importance_stability": "not applicable"}

    champ = Champion(version="2", run_id="r", model=trained.pipeline, contract=contract, importances=None,
                     importances_error="the feature importances of production v2 could not be loaded: OSError: x")
    base = ev.choose_baseline(lambda: champ, trained.holdout, contract, {})
    later = ev.evaluate(trained.pipeline, str(tmp_path), trained.holdout, contract, trained.importances, base)
    doc = later.to_dict()
    doc["metrics"]["latency_p95_ms"] = doc["baseline"]["metrics"]["latency_p95_ms"] = 1.0
    result = gate.evaluate_gates(gates, doc)
    rows = {r["metric"]: r for r in result.rows}
    assert not result.passed and rows["feature_importance_stability"]["verdict"] == "fail"
    assert "could not be loaded: OSError: x" in rows["feature_importance_stability"]["reason"]
    assert "could not be loaded: OSError: x" in gate.GateResult.from_json(result.to_json()).to_markdown()


def test_slice_sizes_from_kfp_come_back_as_ints():
    slices = check_gates({"metrics": {"recall": {"minimum": 0.1}},
                               "slices": {"min_rows": 100.0, "min_positives": 20.0}}).slices
    assert (slices.min_rows, slices.min_positives) == (100, 20) and isinstance(slices.min_rows, int)


@pytest.mark.parametrize("doc, message", [
    ({"metrics": {"rocauc": {"minimum": 1}}}, "unknown metric 'rocauc'"),
    ({"metrics": {"importance_stability": {"minimum": 1}}}, "unknown metric 'importance_stability'"),
    ({"metrics": {"roc_auc": {"min": 1}}}, "unknown key(s) ['min']"),
    ({"metrics": {"roc_auc": {"comparison": "gt"}}}, "comparison must be 'gte' or 'lte'"),
    ({"metrics": {"roc_auc": {"minimum": "high"}}}, "metrics.roc_auc.minimum must be a finite number, got 'high'"),
    ({"metrics": {"roc_auc": {"minimum": True}}}, "metrics.roc_auc.minimum must be a finite number, got True"),
    ({"metrics": {"recall": {"maximum": float("nan")}}}, "metrics.recall.maximum must be a finite number, got nan"),
    ({"metrics": {"roc_auc": {"minimum": 0.8, "tolerance": 0.01}}},
     "metrics.roc_auc.tolerance is slack against the baseline, so metrics.roc_auc needs 'comparison' too"),
    ({"metrics": {"roc_auc": {"comparison": "gte", "tolerance": -0.01}}},
     "metrics.roc_auc.tolerance must be >= 0, got -0.01"),
    ({"gates": {"roc_auc": {"minimum": 1}}}, "'gates:' is now 'metrics:'"),
    ({"metrics": {}}, "expected a top-level key 'metrics'"),
    ({"metrics": {"recall": {"minimum": 0.1}}, "slice": {}}, "unknown top-level key(s) ['slice']"),
    ({"metrics": {"recall": {"minimum": 0.1}}, "slices": {"columns": "channel"}}, "slices.columns must be a list"),
    ({"metrics": {"recall": {"minimum": 0.1}}, "slices": {"min_rows": -1}}, "slices.min_rows must be an int >= 0"),
    ({"metrics": {"recall": {"minimum": 0.1}}, "slices": {"min_rows": 2.5}}, "slices.min_rows must be an int >= 0"),
])
def test_bad_gates_are_rejected(doc, message):
    with pytest.raises(GateConfigError, match="^gates.yaml: ") as err:
        check_gates(doc, "gates.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)
