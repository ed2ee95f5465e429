"""The drift report's charts: a share axis with round ticks, a legend, and bin labels that neither overlap nor
get cut into look-alikes, on a profile of the synthetic transactions and on constructed edge cases."""
import math
import re
import xml.etree.ElementTree as ET

import pyarrow as pa
import pytest

from components import contract
from components.charts import ticks as _ticks
from components.drift import logic
from components.drift.report import CHAR, _percent, render_html
from components.profile import build_profile
from mlops.datagen import generate

SVG = "{http://www.w3.org/2000/svg}"
CONFIG = {"min_samples": 100, "drift_threshold": 0.2, "drifted_share": 0.3, "window_hours": 1, "bins": 10}


def charts(html: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg.*?</svg>", html, flags=re.S)]


def x_labels(svg: ET.Element) -> list[ET.Element]:
    return [t for t in svg.iter(f"{SVG}text") if t.get("class") == "xlabel"]


def shown(text: ET.Element) -> str:
    return "".join(text.itertext())[len(text.find(f"{SVG}title").text):]


@pytest.fixture(scope="module")
def report():
    spec = contract.load("schemas/features_v2.json")
    profile = build_profile(generate(20000)[list(spec.features)], spec.features)
    current = generate(20000, seed=1, drift=0.5)[list(spec.features)]
    result, detail = logic.evaluate(pa.Table.from_pandas(current, preserve_index=False), profile, CONFIG)
    return render_html({**result, "skipped_files": []}, detail, profile), detail


def assert_readable(svg: ET.Element):
    labels = x_labels(svg)
    font = float(svg.get("font-size"))
    xs = [float(t.get("x")) for t in labels]
    for t in labels:
        assert t.get("text-anchor") == "end"
        angle, cx, cy = map(float, re.fullmatch(r"rotate\((\S+) (\S+) (\S+)\)", t.get("transform")).groups())
        assert -60 <= angle <= -40 and (cx, cy) == (float(t.get("x")), float(t.get("y")))
        # rotated labels are parallel: neighbours dx apart along x are dx * sin(angle) apart across the text
        assert float(t.get("x")) - len(shown(t)) * CHAR * math.cos(math.radians(angle)) >= 0  # not cut at the left
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    assert all(gap >= 10 and gap * math.sin(math.radians(-angle)) >= 1.2 * font for gap in gaps), gaps
    texts = [shown(t) for t in labels]
    assert len(set(texts)) == len(texts), texts
    for t in labels:  # the full label is in the title; what is shown is it, or its start with an ellipsis
        full = t.find(f"{SVG}title").text
        assert shown(t) == full or (shown(t).endswith("\u2026") and full.startswith(shown(t)[:-1]))


def test_realistic_report_has_readable_axes(report):
    html, detail = report
    svgs = charts(html)
    assert len(svgs) == len(detail)
    for svg in svgs:
        assert_readable(svg)
        ticks = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "ytick"]
        assert float(ticks[0][:-2]) == 0 and len(ticks) >= 3 and all(re.fullmatch(r"\d+(\.\d+)? %", t) for t in ticks)
        values = [float(t[:-2]) for t in ticks]
        assert len({round(b - a, 6) for a, b in zip(values, values[1:])}) == 1  # even steps
        all_text = " ".join("".join(t.itertext()) for t in svg.iter(f"{SVG}text"))
        assert "share of rows" in all_text and "training reference" in all_text and "logged rows" in all_text
    (amount,) = charts(next(s for s in html.split("<section>") if s.startswith("<h3>amount (")))
    assert len(x_labels(amount)) == len(detail["amount"]["reference"])
    top = float([t.text for t in amount.iter(f"{SVG}text") if t.get("class") == "ytick"][-1][:-2]) / 100
    assert max(detail["amount"]["current"]) <= top < max(detail["amount"]["current"]) * 2


def test_long_and_close_labels_stay_distinct_and_escaped():
    values = [f"merchant category number {i} <script>" for i in range(12)]
    profile = {"features": {
        "long": {"kind": "categorical", "values": values, "shares": [1 / 12] * 12, "null_share": 0.0},
        "close": {"kind": "numeric", "edges": [123456.1, 123456.2, 123456.3, 1e9], "shares": [0.2] * 5,
                  "null_share": 0.0}}}
    detail = {"long": {"psi": 0.0, "ks": None, "reference": [1 / 12] * 12 + [0, 0], "current": [1 / 12] * 12 + [0, 0]},
              "close": {"psi": 0.0, "ks": 0.0, "reference": [0.2] * 5 + [0], "current": [0.2] * 5 + [0]}}
    result = {"decision": "no_drift", "drifted_features": [], "samples": 5, "reason": "r", "skipped_files": []}
    html = render_html(result, detail, profile)
    assert "<script>" not in html
    long, close = charts(html)
    for svg in (long, close):
        assert_readable(svg)
    assert [t.find(f"{SVG}title").text for t in x_labels(long)] == [*values, "unseen", "null"]
    assert "123456.1..123456.2" in [shown(t) for t in x_labels(close)]


def test_ticks_are_round_steps_up_to_the_max():
    assert _ticks(0.65) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
    assert _ticks(0.2) == pytest.approx([0, 0.05, 0.1, 0.15, 0.2])
    assert _ticks(0.11) == pytest.approx([0, 0.025, 0.05, 0.075, 0.1, 0.125])
    assert len(_ticks(0.0)) >= 2
    assert [_percent(t, 0.025) for t in (0, 0.025, 0.05)] == ["0.0 %", "2.5 %", "5.0 %"]
    assert _percent(0.4, 0.2) == "40 %"
