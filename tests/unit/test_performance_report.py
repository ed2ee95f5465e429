"""The live-performance sections of the monitoring report: the verdict and gates, one section per version,
n/a with its reason for missing metrics, escaping of every value, and where add_to puts them."""
import math
import re
import xml.etree.ElementTree as ET

from components.performance.report import add_to, render_sections

SVG = "{http://www.w3.org/2000/svg}"
METRICS = ["precision", "recall", "f1", "flag_rate", "expected_cost", "roc_auc", "average_precision"]
HOSTILE = "<script>alert(1)</script>"


def part(logged, labelled, values, missing=None):
    return {"logged": logged, "labelled": labelled, "metrics": dict(zip(METRICS, values)), "missing": missing or {}}


def version(name: str, days: int = 30) -> dict:
    return {"model_version": name, "window": {"start": "2026-11-01T00:00:00+00:00", "end": "2026-12-01T00:00:00+00:00"},
            "logged": 10000, "labelled": 800, "coverage": 0.08, "prevalence": 0.05, "training_prevalence": 0.02,
            "threshold": 0.04, **part(10000, 800, [0.2, 0.5, 0.28, 0.09, 0.3, 0.8, None],
                                      {"average_precision": "only one class labelled"}),
            "flagged": part(900, 300, [0.2, 1.0, 0.33, 1.0, 0.8, 0.6, 0.5]),
            "let_through": part(9100, 500, [None, 0.0, None, 0.0, 0.02, 0.7, 0.1], {"precision": "no row flagged"}),
            "registered": {"precision": 0.19, "recall": 0.84, "roc_auc": 0.95},
            "labelled_by_day": [{"date": f"2026-11-{i + 1:02d}", "logged": 300 + i, "labelled": 20 + i}
                                for i in range(days)]}


def performance(**versions) -> dict:
    versions = versions or {"3": version("3"), "4": version("4", days=3), "10": version("10", days=90)}
    prod = versions[next(iter(versions))]
    return {"decision": "performance_degraded", "reason": "recall worse than baseline",
            **{k: v for k, v in prod.items()}, "orphan_outcomes": 3, "conflicting": 1,
            "gates": [{"metric": "recall", "value": 0.5, "threshold": ">= 0.3, >= baseline - 0.1", "baseline": 0.84,
                       "verdict": "fail", "reason": "worse than baseline 0.8400 by more than 0.1"},
                      {"metric": "average_precision", "value": None, "threshold": ">= 0.2", "baseline": None,
                       "verdict": "skip", "reason": "only one class labelled"}],
            "versions": versions}


def test_sections_hold_the_verdict_the_gates_and_each_version_newest_first():
    html = render_sections(performance())
    assert html.startswith("<section>") and html.endswith("</section>")
    assert "Production version 3: performance_degraded" in html and "recall worse than baseline" in html
    rows = re.findall(r"<tr><td>(recall|average_precision)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>"
                      r"<td>(.*?)</td><td>(.*?)</td></tr>", html)
    assert rows[0][0] == "recall" and rows[0][2] == "&gt;= 0.3, &gt;= baseline - 0.1" and "fail" in rows[0][4]
    assert rows[0][1] == "0.5000" and rows[0][3] == "0.8400" and rows[0][5].startswith("worse than baseline")
    assert "n/a" in rows[1][1] and 'title="only one class labelled"' in rows[1][1]
    headings = re.findall(r"<h3>Version (\w+)", html)
    assert headings == ["10", "4", "3"]
    assert "<h3>Version 3 (production)</h3>" in html
    assert html.count("<svg") == 3


def test_a_version_shows_live_metrics_beside_registered_ones_and_n_a_with_the_reason():
    html = render_sections(performance(**{"3": version("3")}))
    section = html.split("<h3>Version 3")[1]
    for head in ("registered (offline)", "all rows (10,000 logged, 800 labelled)", "flagged rows (900 logged",
                 "let-through rows (9,100 logged, 500 labelled)"):
        assert head in section
    recall = re.search(r"<tr><td>recall</td>(.*?)</tr>", section).group(1)
    assert re.findall(r"<td>([^<]*)</td>", recall) == ["0.8400", "0.5000", "1.0000", "0.0000"]
    precision = re.search(r"<tr><td>precision</td>(.*?)</tr>", section).group(1)
    assert 'title="no row flagged">n/a<' in precision
    ap = re.search(r"<tr><td>average_precision</td>(.*?)</tr>", section).group(1)
    assert 'title="only one class labelled">n/a<' in ap and 'title="no value registered for this metric"' in ap
    assert all(section.count(f"<tr><td>{m}</td>") == 1 for m in METRICS)  # each metric once
    for fact in ("8.00%", "5.00%", "2.00%", "0.0400", "10,000"):
        assert fact in section


def test_hostile_strings_are_escaped():
    v = version(HOSTILE)
    v["missing"] = {"average_precision": HOSTILE + '" onmouseover="x'}
    v["labelled_by_day"][0]["date"] = HOSTILE
    doc = performance(**{HOSTILE: v})
    doc["reason"] = HOSTILE
    doc["gates"][0]["reason"] = HOSTILE
    html = render_sections(doc)
    assert "<script>" not in html and '" onmouseover' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        ET.fromstring(svg)  # still well-formed


def test_day_chart_has_count_ticks_and_date_labels_that_do_not_overlap():
    html = render_sections(performance())
    for svg_text in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        svg = ET.fromstring(svg_text)
        ticks = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "ytick"]
        assert ticks[0] == "0" and len(ticks) >= 3
        labels = [t for t in svg.iter(f"{SVG}text") if t.get("class") == "xlabel"]
        xs = [float(t.get("x")) for t in labels]
        assert labels and all(t.get("text-anchor") == "end" and t.get("transform").startswith("rotate(-45")
                                for t in labels)
        assert all((b - a) * math.sin(math.radians(45)) >= 12 for a, b in zip(xs, xs[1:]))
        assert re.fullmatch(r"2026-11-\d\d", labels[0].text)


def test_missing_pieces_do_not_break_the_sections():
    doc = {"decision": "insufficient_labels", "reason": "waiting for outcomes", "model_version": "1",
           "gates": [], "versions": {"1": {"metrics": {"recall": None}, "missing": {}, "labelled_by_day": []}}}
    html = render_sections(doc)
    assert "No live gate was evaluated" in html and "No logged rows in the window" in html
    assert 'title="not computable">n/a<' in html


def test_add_to_puts_the_sections_before_body_under_a_heading():
    report = "<!DOCTYPE html><html><body><h1>Drift check</h1></body></html>"
    out = add_to(report, "<section>S</section>")
    assert out.startswith(report[:report.index("</body>")])
    assert out.endswith("</body></html>")
    assert out.index("<h1>Drift check</h1>") < out.index("Live performance") < out.index("<section>S</section>") \
        < out.index("</body>")
    assert add_to("<p>no body</p>", "<section>S</section>").startswith("<p>no body</p>")
    assert add_to("<p>no body</p>", "<section>S</section>").endswith("<section>S</section></div>")
