"""The decision policy: its checks, and the threshold it tunes against a brute force over every threshold."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import decision

probabilities = st.lists(st.one_of(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0]),
                                   st.floats(0, 1, allow_nan=False)), min_size=1, max_size=60)


def rows(draw_probability, draw_labels):
    p = np.array(draw_probability)
    y = np.array((draw_labels * len(p))[:len(p)], dtype=bool)
    return p, y


def candidates(p: np.ndarray) -> np.ndarray:
    """Every threshold that matters and more: each probability, 0, 1, and the midpoints between them."""
    values = np.unique(np.r_[p, 0.0, 1.0])
    return np.unique(np.r_[values, (values[1:] + values[:-1]) / 2])


def counts(p, y, t):
    flagged = p >= t
    return int((flagged & y).sum()), int((flagged & ~y).sum()), int((~flagged & y).sum())


@settings(max_examples=300, deadline=None)
@given(probabilities, st.lists(st.booleans(), min_size=1, max_size=60),
       st.floats(0.1, 100), st.floats(0.1, 100))
def test_min_cost_reaches_the_brute_force_minimum_ties_taking_the_highest(p, labels, cfn, cfp):
    p, y = rows(p, labels)
    policy = decision.check_decision({"objective": "min_cost", "cost_false_negative": cfn, "cost_false_positive": cfp})
    chosen = decision.tune(p, y, policy)
    cost = {t: cfn * counts(p, y, t)[2] + cfp * counts(p, y, t)[1] for t in candidates(p)}
    best = min(cost.values())
    tp, fp, fn = counts(p, y, chosen)
    assert cfn * fn + cfp * fp == pytest.approx(best)
    assert chosen == max(t for t, c in cost.items() if c == pytest.approx(best))


@settings(max_examples=300, deadline=None)
@given(probabilities, st.lists(st.booleans(), min_size=1, max_size=60), st.floats(0.05, 1))
def test_max_recall_is_the_highest_recall_meeting_the_precision_floor(p, labels, floor):
    p, y = rows(p, labels)
    policy = decision.check_decision({"objective": "max_recall", "min_precision": floor})
    meets = {}
    for t in candidates(p):
        tp, fp, _ = counts(p, y, t)
        if tp + fp and tp / (tp + fp) >= floor - 1e-12:
            meets[t] = tp
    if not meets:
        with pytest.raises(decision.DecisionError, match=f"no threshold reaches min_precision {floor:g}"):
            decision.tune(p, y, policy)
        return
    chosen = decision.tune(p, y, policy)
    most = max(meets.values())
    assert counts(p, y, chosen)[0] == most
    assert chosen == max(t for t, tp in meets.items() if tp == most)


def test_fixed_is_its_own_threshold_and_the_default_is_half():
    assert decision.check_decision(None) == {"objective": "fixed", "threshold": 0.5}
    policy = decision.check_decision({"objective": "fixed", "threshold": 0.3})
    assert decision.tune(np.array([0.1, 0.9]), np.array([False, True]), policy) == 0.3


def test_no_threshold_meeting_the_floor_names_the_best_precision():
    p, y = np.array([0.9, 0.8, 0.7, 0.2]), np.array([False, True, False, True])
    with pytest.raises(decision.DecisionError, match="best precision is 0.5000 at threshold 0.8"):
        decision.tune(p, y, {"objective": "max_recall", "min_precision": 0.9})


@pytest.mark.parametrize("doc, message", [
    ("min_cost", "expected a mapping with 'objective'"),
    ({"objective": "cheapest"}, "objective must be one of"),
    ({"objective": "min_cost", "cost_false_negative": 25}, "missing ['cost_false_positive']"),
    ({"objective": "min_cost", "cost_false_negative": 25, "cost_false_positive": 0}, "cost_false_positive must be a "
                                                                                       "positive number, got 0"),
    ({"objective": "min_cost", "cost_false_negative": True, "cost_false_positive": 1}, "got True"),
    ({"objective": "max_recall", "min_precision": 0}, "0 < p <= 1, got 0"),
    ({"objective": "max_recall", "min_precision": 1.5}, "0 < p <= 1, got 1.5"),
    ({"objective": "fixed", "threshold": -0.1}, "0 <= t <= 1, got -0.1"),
    ({"objective": "fixed", "threshold": 0.5, "cost_false_negative": 3}, "give both"),
    ({"objective": "fixed", "threshold": 0.5, "cutoff": 3}, "unknown ['cutoff']"),
])
def test_a_malformed_policy_is_a_clear_error(doc, message):
    with pytest.raises(decision.DecisionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decision.check_decision(doc, "production.yaml: decision")


def test_the_decision_file_round_trips_and_a_broken_one_is_refused(tmp_path):
    assert decision.read(tmp_path) is None and decision.threshold_of(None) == 0.5
    doc = decision.write(tmp_path, {"objective": "max_recall", "min_precision": 0.2}, 0.31, {"rows": 10})
    assert decision.read(tmp_path) == doc and decision.threshold_of(doc) == 0.31
    (tmp_path / decision.FILE).write_text(json.dumps({"threshold": 7}))
    with pytest.raises(decision.DecisionError, match="threshold must be a number in"):
        decision.read(tmp_path)


def test_figures_at_a_threshold():
    p, y = np.array([0.9, 0.6, 0.4, 0.1]), np.array([True, False, True, False])
    out = decision.figures(p, y, 0.5, {"objective": "min_cost", "cost_false_negative": 10, "cost_false_positive": 1})
    assert out == {"rows": 4, "positives": 2, "flagged": 2, "precision": 0.5, "recall": 0.5, "flag_rate": 0.5,
                   "expected_cost": (10 * 1 + 1 * 1) / 4}
