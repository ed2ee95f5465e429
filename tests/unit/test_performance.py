"""The live-performance check without MLflow: the inference log (written by InferenceLogger or as Parquet in its
layout) joined with ingested outcomes (components.performance.join), each version measured at its own threshold
(logic.per_version with a stub of logic.Versions), the production version judged (logic.verdict), and the
monitoring decision (logic.combine); property tests against scikit-learn and a plain pandas join."""
import tempfile
import time
import uuid
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from components import contract, outcomes
from components.gates import check_live
from components.performance import join, logic
from serving.inference_log import InferenceLogger
from tests.conftest import SCHEMA

MODEL = "m"
NOW = datetime(2026, 3, 15, 12, 30, tzinfo=timezone.utc)
ISSUE_LIVE = {"min_labelled": 500, "min_labelled_positives": 200, "window_days": 30, "label_maturity_days": 0,
              "metrics": {"recall": {"minimum": 0.3, "comparison": "gte", "tolerance": 0.1},
                          "roc_auc": {"comparison": "gte", "tolerance": 0.03}}}
REGISTERED = {"recall": 0.84, "roc_auc": 0.95}


class Stub:
    """logic.Versions without a registry: version -> threshold (absent: unknown, with an error)."""

    def __init__(self, thresholds: dict, costs=(10.0, 1.0)):
        self.thresholds, self.costs = thresholds, costs

    def __call__(self, version: str) -> dict:
        known = version in self.thresholds
        return {"threshold": self.thresholds.get(version), "costs": self.costs if known else None,
                "registered": REGISTERED, "training_prevalence": 0.02,
                "error": None if known else f"version {version}: not registered"}

    def threshold(self, version: str):
        return self(version)["threshold"]


@pytest.fixture(scope="module")
def spec():
    return contract.load(str(SCHEMA))




def write_log(root, rows) -> None:
    """(request_id, row, model_version, timestamp, probability) rows as the server's Parquet, a file per hour."""
    frame = pd.DataFrame(rows, columns=["request_id", "row", "model_version", "timestamp", "probability"])
    frame = frame.astype({"request_id": str, "row": "int64", "model_version": str, "probability": "float64"})
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[ms, UTC]")
    frame = frame.assign(amount=12.5, prediction=0, role="stable")
    for hour, part in frame.groupby(frame["timestamp"].dt.strftime("%Y-%m-%dT%H")):
        folder = Path(root, f"model={MODEL}", f"hour={hour}")
        folder.mkdir(parents=True, exist_ok=True)
        part.to_parquet(folder / f"part-{uuid.uuid4().hex}.parquet", index=False)


def ingest(root, spec, **files) -> list[dict]:
    """Outcome files (name -> columns); observed_at defaults to an hour before NOW."""
    frames = {}
    for name, columns in files.items():
        frame = pd.DataFrame(columns)
        if "observed_at" not in frame:
            frame["observed_at"] = (NOW - timedelta(hours=1)).isoformat()
        frames[f"{name}.csv"] = frame
    return outcomes.ingest(frames, str(root), MODEL, spec)


def run(log_root, out_root, versions, positive=1, now=NOW, **live):
    """The check's path up to the figures, as logic.check takes it."""
    live = check_live({**ISSUE_LIVE, **live})
    start, stop = logic.window(now, live)
    truth, conflicting = outcomes.latest(str(out_root), MODEL, "is_fraud", since=start)
    found = join.join(str(log_root), MODEL, truth, "is_fraud", start, stop, now, versions.threshold,
                      live.get("implicit_negative_after_days"))
    return SimpleNamespace(truth=truth, found=found, figures=logic.per_version(found, versions, positive),
                           conflicting=conflicting, orphans=int(truth.num_rows - found.matched.sum()),
                           start=start, stop=stop)


def joined(found) -> list[tuple]:
    table = found.labelled.sort_by([("request_id", "ascending"), ("row", "ascending")])
    return list(zip(*(table[c].to_pylist() for c in ("request_id", "row", "probability", "_label"))))


def test_orphans_are_counted_and_truth_for_a_row_after_the_window_end_is_not_one(tmp_path, spec):
    write_log(tmp_path / "log", [("in", 0, "1", NOW - timedelta(days=5), 0.9),
                                 ("late", 0, "1", NOW - timedelta(days=1), 0.9),  # after stop, within maturity
                                 ("old", 0, "1", NOW - timedelta(days=40), 0.9)])  # before the window
    ingest(tmp_path / "out", spec, a={"request_id": ["in", "late", "old", "nobody"], "is_fraud": [1, 1, 0, 1]})
    result = run(tmp_path / "log", tmp_path / "out", Stub({"1": 0.5}), window_days=10, label_maturity_days=2)
    assert result.orphans == 2  # "old" and "nobody"
    ids = result.truth["request_id"].to_pylist()
    assert dict(zip(ids, result.found.matched.tolist())) == {"in": True, "late": True, "old": False, "nobody": False}
    assert result.figures["1"]["labelled"] == result.figures["1"]["logged"] == 1


def test_truth_for_a_row_logged_before_the_window_start_is_an_orphan_even_in_the_same_hour(tmp_path, spec):
    start = NOW - timedelta(days=10)  # 12:30 on the 5th: the hour partition 12 holds 12:10 too
    write_log(tmp_path / "log", [("before", 0, "1", start - timedelta(minutes=20), 0.9),
                                 ("in", 0, "1", NOW - timedelta(days=5), 0.9)])
    ingest(tmp_path / "out", spec, a={"request_id": ["before", "in"], "is_fraud": [1, 1]})
    result = run(tmp_path / "log", tmp_path / "out", Stub({"1": 0.5}), window_days=10)
    assert result.figures["1"]["labelled"] == 1
    assert result.orphans == 1


def test_label_maturity_moves_the_newest_predictions_out_of_the_window(tmp_path, spec):
    write_log(tmp_path / "log", [(f"r{d}", 0, "1", NOW - timedelta(days=d, hours=1), 0.9) for d in range(6)])
    ingest(tmp_path / "out", spec, a={"request_id": [f"r{d}" for d in range(6)], "is_fraud": [1] * 6})
    fresh = run(tmp_path / "log", tmp_path / "out", Stub({"1": 0.5}), window_days=30)
    mature = run(tmp_path / "log", tmp_path / "out", Stub({"1": 0.5}), window_days=30, label_maturity_days=3)
    assert mature.stop == NOW - timedelta(days=3) and mature.start == NOW - timedelta(days=33)
    assert (fresh.figures["1"]["labelled"], mature.figures["1"]["labelled"]) == (6, 3)  # r3, r4, r5
    assert sorted(r[0] for r in joined(mature.found)) == ["r3", "r4", "r5"]
    assert mature.orphans == fresh.orphans == 0


def test_a_retried_request_counts_once_with_its_last_logged_probability(tmp_path, spec):
    writer = InferenceLogger(str(tmp_path / "log"), MODEL, flush_seconds=0.05)
    frame = pd.DataFrame({"amount": [10.0]})
    writer.log(frame, np.array([1]), np.array([0.9]), "1", "stable", ["retried"])
    time.sleep(0.01)  # the log keeps milliseconds
    writer.log(frame, np.array([0]), np.array([0.2]), "1", "stable", ["retried"])
    writer.close()
    ingest(tmp_path / "out", spec, a={"request_id": ["retried"], "is_fraud": [1], "observed_at": [None]})  # now
    result = run(tmp_path / "log", tmp_path / "out", Stub({"1": 0.5}), now=datetime.now(timezone.utc))
    entry = result.figures["1"]
    assert joined(result.found) == [("retried", 0, 0.2, 1)]
    assert (entry["labelled"], entry["positives"], entry["metrics"]["recall"]) == (1, 1, 0.0)
    assert (entry["flagged"]["labelled"], entry["let_through"]["labelled"]) == (0, 1)


def test_rows_of_a_multi_row_request_join_their_own_outcomes_and_no_row_means_row_0(tmp_path, spec):
    writer = InferenceLogger(str(tmp_path / "log"), MODEL, flush_seconds=0.05)
    writer.log(pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0]}), np.zeros(4), np.array([0.9, 0.1, 0.8, 0.7]), "1",
               "stable", ["r1", "r1", "r1", "r2"])
    writer.close()
    ingest(tmp_path / "out", spec, plain={"request_id": ["r2"], "is_fraud": [1], "observed_at": [None]},  # now
           rows={"request_id": ["r1"] * 3, "row": [2, 0, 1], "is_fraud": [0, 1, 0], "observed_at": [None] * 3})
    result = run(tmp_path / "log", tmp_path / "out", Stub({"1": 0.5}), now=datetime.now(timezone.utc))
    assert joined(result.found) == [("r1", 0, 0.9, 1), ("r1", 1, 0.1, 0), ("r1", 2, 0.8, 0), ("r2", 0, 0.7, 1)]
    metrics = result.figures["1"]["metrics"]
    assert (metrics["precision"], metrics["recall"]) == (2 / 3, 1.0) and result.orphans == 0


def test_the_later_observed_label_counts_and_a_conflicting_key_is_counted_once(tmp_path, spec):
    write_log(tmp_path / "log", [(k, 0, "1", NOW - timedelta(days=2), 0.9) for k in ("x", "y", "z")])
    at = [(NOW - timedelta(hours=h)).isoformat() for h in (5, 4, 3)]
    ingest(tmp_path / "out", spec, later={"request_id": ["x", "y"], "is_fraud": [0, 1], "observed_at": at[1:]},
           earlier={"request_id": ["x", "y"], "is_fraud": [1, 0], "observed_at": at[:2]})
    folder = tmp_path / "out" / f"model={MODEL}" / f"date={NOW:%Y-%m-%d}"  # z flip-flops, in the stored layout
    pd.DataFrame({"request_id": ["z"] * 3, "row": [0] * 3, "is_fraud": [1, 0, 1],
                  "observed_at": pd.to_datetime(at, utc=True).astype("datetime64[ms, UTC]")}).to_parquet(
        folder / "part-z.parquet", index=False)
    result = run(tmp_path / "log", tmp_path / "out", Stub({"1": 0.5}))
    assert result.conflicting == 3
    assert joined(result.found) == [("x", 0, 0.9, 0), ("y", 0, 0.9, 1), ("z", 0, 0.9, 1)]


def test_a_label_given_again_later_counts_through_ingest(tmp_path, spec):
    write_log(tmp_path / "log", [("k", 0, "1", NOW - timedelta(days=2), 0.9)])
    for hours, label in ((5, 1), (4, 0), (3, 1)):  # fraud, then reversed, then confirmed after all
        ingest(tmp_path / "out", spec, a={"request_id": ["k"], "is_fraud": [label],
                                          "observed_at": [(NOW - timedelta(hours=hours)).isoformat()]})
    assert joined(run(tmp_path / "log", tmp_path / "out", Stub({"1": 0.5})).found) == [("k", 0, 0.9, 1)]


def test_implicit_negatives_are_old_let_through_rows_without_outcome(tmp_path, spec):
    old, new = NOW - timedelta(days=10), NOW - timedelta(days=2)
    write_log(tmp_path / "log", [("old_low", 0, "1", old, 0.1), ("old_high", 0, "1", old, 0.9),
                                 ("new_low", 0, "1", new, 0.1), ("caught", 0, "1", old, 0.8),
                                 ("missed", 0, "1", old, 0.2)])
    ingest(tmp_path / "out", spec, a={"request_id": ["caught", "missed"], "is_fraud": [1, 1]})
    without = run(tmp_path / "log", tmp_path / "out", Stub({"1": 0.5})).figures["1"]
    entry = run(tmp_path / "log", tmp_path / "out", Stub({"1": 0.5}), implicit_negative_after_days=5).figures["1"]
    assert (without["labelled"], without["implicit_negatives"], without["metrics"]["precision"]) == (2, 0, 1.0)
    assert (entry["labelled"], entry["implicit_negatives"], entry["positives"]) == (3, 1, 2)  # old_low only
    assert entry["metrics"]["recall"] == 0.5 and entry["metrics"]["roc_auc"] == 1.0
    assert (entry["flagged"]["labelled"], entry["let_through"]["labelled"]) == (1, 2)


def test_string_labels_give_the_same_figures_as_0_1_labels(tmp_path, spec, words):
    rng = np.random.default_rng(5)
    ids, labels = [f"t{i}" for i in range(60)], rng.integers(0, 2, 60)
    write_log(tmp_path / "log", [(k, 0, "1", NOW - timedelta(hours=3 + i), p)
                                 for i, (k, p) in enumerate(zip(ids, rng.random(60)))])
    ingest(tmp_path / "ints", spec, a={"request_id": ids, "is_fraud": labels})
    ingest(tmp_path / "words", words, a={"request_id": ids, "is_fraud": np.where(labels == 1, "fraud", "legit")})
    ints = run(tmp_path / "log", tmp_path / "ints", Stub({"1": 0.5})).figures
    texts = run(tmp_path / "log", tmp_path / "words", Stub({"1": 0.5}), positive="fraud").figures
    assert ints == texts and ints["1"]["positives"] == labels.sum() and ints["1"]["metrics"]["roc_auc"] is not None


def test_each_version_is_measured_at_its_own_threshold(tmp_path, spec):
    probability = [0.1, 0.4, 0.6, 0.8, 0.2, 0.5]
    truth = [0, 1, 1, 1, 0, 0]
    write_log(tmp_path / "log", [(f"{v}-{i}", 0, v, NOW - timedelta(hours=i + 1), p)
                                 for v in ("1", "2") for i, p in enumerate(probability)])
    ingest(tmp_path / "out", spec, a={"request_id": [f"{v}-{i}" for v in ("1", "2") for i in range(6)],
                                      "is_fraud": truth * 2})
    versions = Stub({"1": 0.3, "2": 0.7})
    result = run(tmp_path / "log", tmp_path / "out", versions)
    assert result.found.flagged == {"1": 4, "2": 1}
    for name, cut in (("1", 0.3), ("2", 0.7)):
        entry, flags = result.figures[name], np.array(probability) >= cut
        assert entry["threshold"] == cut and entry["logged"] == entry["labelled"] == 6
        measured = logic.measure(truth, probability, cut, versions.costs)[0]
        assert entry["metrics"] == {**measured, "flag_rate": flags.mean()}
        assert (entry["flagged"]["logged"], entry["flagged"]["labelled"]) == (flags.sum(), flags.sum())
        assert (entry["let_through"]["logged"], entry["let_through"]["labelled"]) == (6 - flags.sum(), 6 - flags.sum())
    assert (result.figures["1"]["metrics"]["recall"], result.figures["2"]["metrics"]["recall"]) == (1.0, 1 / 3)


def entry(positive, probability, threshold=0.5):
    metrics, missing = logic.measure(positive, probability, threshold, (10.0, 1.0))
    return {"labelled": len(positive), "positives": int(np.sum(positive)), "metrics": metrics, "missing": missing,
            "registered": REGISTERED, "error": None}


def rows(negatives, caught, missed):
    """(positive, probability) of labelled rows: negatives at 0.1, positives caught at 0.9 and missed at 0.3."""
    return [0] * negatives + [1] * (caught + missed), [0.1] * negatives + [0.9] * caught + [0.3] * missed


def test_verdict_waits_for_outcomes_then_judges_the_live_gates():
    live = check_live(ISSUE_LIVE)
    assert logic.verdict({"labelled": 600, "positives": 120}, live) == (
        "insufficient_labels", "waiting for outcomes: 120 of 200 positives", [])
    assert logic.verdict({"labelled": 300, "positives": 120}, live)[1] == \
        "waiting for outcomes: 300 of 500 labelled rows, 120 of 200 positives"
    assert logic.verdict(None, live)[0] == "insufficient_labels"
    decided, reason, gates = logic.verdict(entry(*rows(400, 50, 150)), live)
    assert decided == "performance_degraded" and reason.startswith("live recall 0.2500: below minimum 0.3")
    assert {g["metric"]: g["verdict"] for g in gates} == {"recall": "fail", "roc_auc": "pass"}
    decided, reason, gates = logic.verdict(entry(*rows(400, 180, 20)), live)
    assert (decided, reason) == ("ok", "2 live gate(s) passed on 600 labelled rows (200 positives)")
    assert [g["verdict"] for g in gates] == ["pass", "pass"]


@pytest.mark.parametrize("negatives, positives", [(600, 0), (0, 600)])
def test_one_class_labelled_is_insufficient_never_a_gate_on_a_missing_roc_auc(negatives, positives):
    live = check_live({**ISSUE_LIVE, "min_labelled_positives": 0})
    decided, reason, gates = logic.verdict(entry(*rows(negatives, positives, 0)), live)
    assert (decided, gates) == ("insufficient_labels", [])
    short = ("recall: no labelled row of the positive class" if not positives else
             "roc_auc: only one class labelled (600 of 600 rows positive)")
    assert reason == f"waiting for outcomes: {short}"


def test_no_positive_labelled_is_insufficient_even_when_only_recall_is_gated():
    live = check_live({**ISSUE_LIVE, "min_labelled_positives": 0, "metrics": {"recall": {"minimum": 0.3}}})
    assert logic.verdict(entry(*rows(600, 0, 0)), live)[0] == "insufficient_labels"


def test_combine_keeps_the_drift_result_without_performance_and_names_the_reasons():
    drift = {"decision": "no_drift", "reason": "no feature drifted", "model_version": "3"}
    assert logic.combine(drift, None) is drift and drift == {"decision": "no_drift", "reason": "no feature drifted",
                                                             "model_version": "3"}
    retrain = {**drift, "decision": "retrain"}
    cases = [(drift, "ok", "no_drift", []), (retrain, "insufficient_labels", "retrain", ["drift"]),
             (drift, "performance_degraded", "retrain", ["performance"]),
             (retrain, "performance_degraded", "retrain", ["drift", "performance"])]
    for base, performance, decided, reasons in cases:
        result = logic.combine(base, {"decision": performance})
        assert (result["decision"], result["reasons"], result["drift_decision"]) == (decided, reasons,
                                                                                    base["decision"])
        assert result["performance"] == {"decision": performance} and result["reason"] == base["reason"]


PROBABILITY = st.floats(0, 1) | st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), PROBABILITY), min_size=1, max_size=40), PROBABILITY)
def test_measure_is_scikit_learn(labelled, threshold):
    y = np.array([int(t) for t, _ in labelled])
    p = np.array([q for _, q in labelled])
    metrics, missing = logic.measure(y, p, threshold, (10.0, 1.0))
    decided = (p >= threshold).astype(int)
    for name, score in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            expected = score(y, decided)
        if any(issubclass(w.category, UndefinedMetricWarning) for w in caught):  # sklearn divided by zero
            assert metrics[name] is None and missing[name]
        elif metrics[name] is not None:
            assert metrics[name] == expected, name
        else:  # the one gap: test_f1_is_zero_where_scikit_learn_defines_it
            assert name == "f1" and expected == 0.0 and missing["f1"]
    fn, fp = int(np.sum((decided == 0) & (y == 1))), int(np.sum((decided == 1) & (y == 0)))
    assert metrics["flag_rate"] == decided.sum() / len(y) and metrics["expected_cost"] == (10 * fn + fp) / len(y)
    if 0 < y.sum() < len(y):
        assert metrics["roc_auc"] == roc_auc_score(y, p)
        assert metrics["average_precision"] == average_precision_score(y, p)
    else:
        assert metrics["roc_auc"] is metrics["average_precision"] is None
        assert "only one class labelled" in missing["roc_auc"] and "only one class" in missing["average_precision"]
    assert not set(missing) & {k for k, v in metrics.items() if v is not None}


def test_measure_without_costs_or_rows_says_why():
    metrics, missing = logic.measure([1, 0], [0.9, 0.1], 0.5, None)
    assert metrics["expected_cost"] is None and "no costs" in missing["expected_cost"] and metrics["recall"] == 1.0
    metrics, missing = logic.measure([], [], 0.5, (1.0, 1.0))
    assert set(v for v in metrics.values()) == {None} and set(missing.values()) == {"no labelled rows"}


@pytest.mark.parametrize("positive, probability", [([1, 0], [0.1, 0.2]), ([0, 0], [0.9, 0.1])])
def test_f1_is_zero_where_scikit_learn_defines_it(positive, probability):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        expected = f1_score(positive, [int(p >= 0.5) for p in probability])
    metrics, missing = logic.measure(positive, probability, 0.5, None)
    assert metrics["f1"] == expected == 0.0 and "f1" not in missing


KEYS = st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 2))
THRESHOLDS = {"1": 0.5, "2": 0.3}


@settings(max_examples=50, deadline=None)
@given(st.data(), st.lists(st.tuples(KEYS, st.sampled_from(list(THRESHOLDS)), PROBABILITY), min_size=1, max_size=25),
       st.dictionaries(KEYS, st.lists(st.booleans(), min_size=1, max_size=2), max_size=12))
def test_per_version_is_a_plain_pandas_join(spec, data, logged, truth):
    minutes = data.draw(st.permutations(range(len(logged))))  # distinct times, over several hour partitions
    log = pd.DataFrame([(i, r, v, NOW - timedelta(days=1, minutes=17 * m), p)
                        for ((i, r), v, p), m in zip(logged, minutes)],
                       columns=["request_id", "row", "model_version", "timestamp", "probability"])
    told = pd.DataFrame([(i, r, int(label), (NOW - timedelta(hours=2, minutes=-n)).isoformat())
                         for (i, r), labels in truth.items() for n, label in enumerate(labels)],
                        columns=["request_id", "row", "is_fraud", "observed_at"])
    with tempfile.TemporaryDirectory() as tmp:
        write_log(Path(tmp, "log"), log.itertuples(index=False))
        if len(told):
            ingest(Path(tmp, "out"), spec, a=told)
        figures = run(Path(tmp, "log"), Path(tmp, "out"), Stub(THRESHOLDS)).figures
    last = log.sort_values("timestamp").drop_duplicates(["request_id", "row", "model_version"], keep="last")
    latest = told.sort_values("observed_at").drop_duplicates(["request_id", "row"], keep="last")
    merged = last.merge(latest, on=["request_id", "row"])
    for version, cut in THRESHOLDS.items():
        mine = merged[merged["model_version"] == version]
        positive, flagged = mine["is_fraud"] == 1, mine["probability"] >= cut
        entry = figures.get(version, {"labelled": 0, "metrics": {"recall": None}, "logged": 0})
        assert entry["logged"] == (log["model_version"] == version).sum()
        assert entry["labelled"] == len(mine)
        assert entry["metrics"]["recall"] == ((positive & flagged).sum() / positive.sum() if positive.any() else None)
