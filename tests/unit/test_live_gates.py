"""The gates file's `live:` section (components.gates.check_live): the accepted format and its defaults, errors that
name the key, the gates of record's live section, and the same fail-closed judging (judge) as the offline gates."""
import math

import pytest
import yaml

from components.gates import LIVE_DEFAULTS, LIVE_METRICS, GateConfigError, check_gates, check_live, judge
from components.performance import logic
from pipelines import defaults
from tests.conftest import ROOT

ISSUE = """\
live:
  min_labelled: 500
  min_labelled_positives: 200
  window_days: 30
  label_maturity_days: 0
  metrics:
    recall: {minimum: 0.3, comparison: "gte", tolerance: 0.1}
    roc_auc: {comparison: "gte", tolerance: 0.03}
"""
OFFLINE = {"recall": {"minimum": 0.5}}
PRODUCTION = {"metrics": {"recall": 0.84, "roc_auc": 0.95}, "production_model": True}


def test_the_issues_example_is_accepted_with_ints_and_floats():
    live = check_live(yaml.safe_load(ISSUE)["live"], "gates.yaml")
    assert live == {"min_labelled": 500, "min_labelled_positives": 200, "window_days": 30.0,
                    "label_maturity_days": 0.0,
                    "metrics": {"recall": {"minimum": 0.3, "comparison": "gte", "tolerance": 0.1},
                                "roc_auc": {"comparison": "gte", "tolerance": 0.03}}}
    assert all(type(live[k]) is int for k in ("min_labelled", "min_labelled_positives"))
    assert all(type(live[k]) is float for k in ("window_days", "label_maturity_days"))
    check_gates({"metrics": OFFLINE, **yaml.safe_load(ISSUE)}, "gates.yaml")  # the whole file too


def test_optional_keys_and_numbers_as_kfp_passes_them():
    live = check_live({"min_labelled": 500.0, "min_labelled_positives": 0.0, "window_days": 7,
                       "label_maturity_days": 14.5, "implicit_negative_after_days": 90, "metrics": None})
    assert (live["min_labelled"], live["min_labelled_positives"]) == (500, 0) and type(live["min_labelled"]) is int
    assert (live["window_days"], live["label_maturity_days"], live["implicit_negative_after_days"]) == (7.0, 14.5, 90.0)
    assert live["metrics"] == {}
    gated = check_live({"metrics": {m: {"minimum": 0} for m in LIVE_METRICS}})["metrics"]
    assert set(gated) == set(LIVE_METRICS)


def test_defaults_when_live_is_absent():
    assert check_live(None) == {**LIVE_DEFAULTS, "metrics": {}}
    assert LIVE_DEFAULTS == {"min_labelled": 500, "min_labelled_positives": 200, "window_days": 30.0,
                             "label_maturity_days": 0.0}
    assert check_live({}) == check_live(None)  # an empty section: the defaults
    assert check_live({"window_days": 7}) == {**LIVE_DEFAULTS, "window_days": 7.0, "metrics": {}}
    assert "implicit_negative_after_days" not in check_live(None)
    check_gates({"metrics": OFFLINE})  # no live section: still a valid gates file


@pytest.mark.parametrize("live, message", [
    ("yes", "'live' must be a mapping of"),
    ({"min_rows": 100}, "unknown key(s) ['min_rows'] in 'live'; allowed: "),
    ({"metric": {"recall": {"minimum": 0.3}}}, "unknown key(s) ['metric'] in 'live'"),
    ({"min_labelled": -1}, "live.min_labelled must be an int >= 0, got -1"),
    ({"min_labelled": 2.5}, "live.min_labelled must be an int >= 0, got 2.5"),
    ({"min_labelled": "500"}, "live.min_labelled must be an int >= 0, got '500'"),
    ({"min_labelled_positives": -3}, "live.min_labelled_positives must be an int >= 0, got -3"),
    ({"window_days": 0}, "live.window_days must be > 0, got 0.0"),
    ({"window_days": -1}, "live.window_days must be a number >= 0, got -1"),
    ({"label_maturity_days": -0.5}, "live.label_maturity_days must be a number >= 0, got -0.5"),
    ({"implicit_negative_after_days": -1}, "live.implicit_negative_after_days must be a number >= 0, got -1"),
    ({"implicit_negative_after_days": None}, "live.implicit_negative_after_days must be a number >= 0, got None"),
    ({"window_days": math.inf}, "live.window_days must be a number >= 0, got inf"),
    ({"label_maturity_days": math.nan}, "live.label_maturity_days must be a number >= 0, got nan"),
    ({"min_labelled": math.inf}, "live.min_labelled must be an int >= 0, got inf"),
    ({"min_labelled": True}, "live.min_labelled must be an int >= 0, got True"),
    ({"window_days": True}, "live.window_days must be a number >= 0, got True"),
    ({"metrics": ["recall"]}, "live.metrics must map metrics to minimum / maximum / comparison, got ['recall']"),
    ({"metrics": {"latency_p95_ms": {"maximum": 50}}}, "unknown metric 'latency_p95_ms' in 'live.metrics'"),
    ({"metrics": {"accuracy": {"minimum": 0.9}}}, "unknown metric 'accuracy' in 'live.metrics'"),
    ({"metrics": {"recall": {"tolerance": 0.1}}}, "live.metrics.recall.tolerance is slack against the baseline, "
                                                  "so live.metrics.recall needs 'comparison' too"),
    ({"metrics": {"recall": {"minimum": 0.3, "floor": 0.1}}}, "unknown key(s) ['floor'] in 'live.metrics.recall'"),
    ({"metrics": {"recall": {"comparison": "ge"}}}, "live.metrics.recall.comparison must be 'gte' or 'lte'"),
    ({"metrics": {"recall": {}}}, "live.metrics.recall must map some of"),
    ({"metrics": {"recall": {"minimum": math.nan}}}, "live.metrics.recall.minimum must be a finite number, got nan"),
    ({"metrics": {"roc_auc": {"maximum": -math.inf}}}, "live.metrics.roc_auc.maximum must be a finite number"),
    ({"metrics": {"recall": {"minimum": True}}}, "live.metrics.recall.minimum must be a finite number, got True"),
    ({"metrics": {"recall": {"comparison": "gte", "tolerance": False}}},
     "live.metrics.recall.tolerance must be a finite number, got False"),
    ({"metrics": {"recall": {"comparison": "gte", "tolerance": -0.1}}}, "live.metrics.recall.tolerance must be >= 0"),
])
def test_bad_live_sections_are_rejected_naming_the_file_and_key(live, message):
    with pytest.raises(GateConfigError) as err:
        check_live(live, "gates.yaml")
    assert str(err.value).startswith("gates.yaml: ") and message in str(err.value), str(err.value)
    with pytest.raises(GateConfigError) as whole:  # checking the whole file checks its live section
        check_gates({"metrics": OFFLINE, "live": live}, "gates.yaml")
    assert str(whole.value) == str(err.value)


def test_a_missing_gated_live_metric_fails_closed():
    gates = check_live(yaml.safe_load(ISSUE)["live"])["metrics"]
    rows = {r["metric"]: r for r in judge(gates, {"recall": None, "roc_auc": 0.96},
                                          {"recall": "no labelled row of the positive class"}, PRODUCTION)}
    assert rows["recall"]["verdict"] == "fail"
    assert rows["recall"]["reason"].startswith("missing: no labelled row of the positive class")
    assert rows["roc_auc"]["verdict"] == "pass"
    unexplained = judge({"precision": {"minimum": 0.1}}, {}, {}, PRODUCTION)
    assert [(r["verdict"], r["reason"]) for r in unexplained] == [("fail", "missing: not computed")]


def test_live_gates_compare_with_the_versions_registered_value():
    gates = check_live(yaml.safe_load(ISSUE)["live"])["metrics"]
    rows = {r["metric"]: r for r in judge(gates, {"recall": 0.70, "roc_auc": 0.93}, {}, PRODUCTION)}
    assert (rows["recall"]["verdict"], rows["recall"]["baseline"]) == ("fail", 0.84)
    assert rows["recall"]["reason"] == "worse than baseline 0.8400 by more than 0.1"
    assert rows["roc_auc"]["verdict"] == "pass"
    # no registered value: the comparison is not applicable, but the minimum still applies
    rows = {r["metric"]: r for r in judge(gates, {"recall": 0.2, "roc_auc": 0.5}, {},
                                          {"metrics": {}, "production_model": True})}
    assert (rows["recall"]["verdict"], rows["roc_auc"]["verdict"]) == ("fail", "not applicable")


def test_the_verdict_fails_a_gated_metric_the_version_cannot_measure():
    live = check_live({"min_labelled": 10, "min_labelled_positives": 5,
                       "metrics": {"expected_cost": {"maximum": 0.5}}})
    metrics, missing = logic.measure([1] * 5 + [0] * 5, [0.9] * 5 + [0.1] * 5, 0.5, None)  # a version without costs
    entry = {"labelled": 10, "positives": 5, "metrics": metrics, "missing": missing, "registered": {}, "error": None}
    decided, reason, gates = logic.verdict(entry, live)
    assert decided == "performance_degraded" and reason.startswith("live expected_cost n/a: missing: the version has")
    assert [g["verdict"] for g in gates] == ["fail"]


def test_the_gates_of_record_gate_live_recall_and_roc_auc():
    doc = yaml.safe_load((ROOT / "configs" / "quality_gates.yaml").read_text())
    check_gates(doc, "configs/quality_gates.yaml")
    live = check_live(doc["live"], "configs/quality_gates.yaml")
    assert set(live["metrics"]) == {"recall", "roc_auc"}
    assert all(gate.get("comparison") == "gte" for gate in live["metrics"].values())
    assert live["min_labelled"] >= live["min_labelled_positives"] > 0 and live["window_days"] > 0
    assert defaults.load_drift(root=ROOT).live == live  # what the monitoring run is given
