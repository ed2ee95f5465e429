"""The live-performance part of the monitoring report: the production version's verdict and its gates, then per
model version its live metrics beside the registered ones and a chart of labelled rows per day (inline SVG, no
scripts, nothing fetched). `add_to` puts it into an existing HTML report, the drift check's.

Every value from the performance dict is escaped; a metric that could not be computed reads "n/a", its reason in
a title attribute.
"""
from __future__ import annotations

import math
from html import escape

from components import charts

FONT, ANGLE = 10, 45  # x labels: font size (px) and rotation (degrees, up to the left, ending at their day)
COLORS = (("#c8c8c8", "logged rows"), ("#337ab7", "labelled rows"))
STYLE = ("<style>.live-performance table{border-collapse:collapse;margin:.3em 0 .8em}"
         ".live-performance th,.live-performance td{border:1px solid #ccc;padding:2px 8px;text-align:left}"
         ".live-performance td.num{text-align:right}.live-performance .fail{color:#c9302c;font-weight:bold}"
         ".live-performance .na{color:#888;text-decoration:underline dotted}</style>")


def _e(value) -> str:
    return escape(str(value), quote=True)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _na(reason) -> str:
    return f'<span class="na" title="{_e(reason or "not computable")}">n/a</span>'


def _fmt(value, reason=None, kind: str = "metric") -> str:
    """A value as shown: a metric to 4 decimals, a share in percent, a count with separators; n/a when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return _na(reason)
    if not _number(value):
        return _e(value)
    if kind == "share":
        return f"{value:.2%}"
    if kind == "count":
        return f"{value:,}" if isinstance(value, int) else f"{value:,.0f}"
    return f"{value:.4f}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    """Cells are HTML already (values escaped by _e or _fmt)."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _verdict(performance: dict) -> str:
    p = performance
    window = p.get("window") or {}
    gates = [[_e(g.get("metric", "")), _fmt(g.get("value"), g.get("reason")), _e(g.get("threshold", "")),
              _fmt(g.get("baseline"), "no baseline"),
              f'<span class="{"fail" if g.get("verdict") == "fail" else "verdict"}">{_e(g.get("verdict", ""))}</span>',
              _e(g.get("reason", ""))] for g in p.get("gates") or []]
    return (f"<section><h3>Production version {_e(p.get('model_version', ''))}: {_e(p.get('decision', ''))}</h3>"
            f"<p><strong>{_e(p.get('reason', ''))}</strong></p>"
            f"<p>Window {_e(window.get('start', ''))} to {_e(window.get('end', ''))}: "
            f"{_fmt(p.get('logged'), kind='count')} logged rows, {_fmt(p.get('labelled'), kind='count')} labelled "
            f"(coverage {_fmt(p.get('coverage'), kind='share')}); "
            f"{_fmt(p.get('orphan_outcomes'), kind='count')} outcomes without a logged prediction, "
            f"{_fmt(p.get('conflicting'), kind='count')} with conflicting labels.</p>"
            + (_table(["metric", "value", "threshold", "baseline", "verdict", "reason"], gates) if gates
               else "<p>No live gate was evaluated.</p>") + "</section>")


def _metric_names(v: dict) -> list[str]:
    """Every metric once: the live ones in their order, then those only registered."""
    parts = (v, v.get("flagged") or {}, v.get("let_through") or {})
    keys = [k for p in parts for k in (*(p.get("metrics") or {}), *(p.get("missing") or {}))]
    return list(dict.fromkeys([*keys, *(v.get("registered") or {})]))


def _metrics_table(v: dict) -> str:
    parts = [("all rows", v), ("flagged rows", v.get("flagged") or {}),
             ("let-through rows", v.get("let_through") or {})]
    head = ["metric", "registered (offline)",
            *(f"{name} ({_fmt(p.get('logged'), kind='count')} logged, {_fmt(p.get('labelled'), kind='count')} "
              "labelled)" if p else name for name, p in parts)]
    registered = v.get("registered") or {}
    rows = [[_e(m), _fmt(registered.get(m), "no value registered for this metric"),
             *(_fmt((p.get("metrics") or {}).get(m), (p.get("missing") or {}).get(m)) for _, p in parts)]
            for m in _metric_names(v)]
    return _table(head, rows)


def _chart(days: list[dict]) -> str:
    """Per day a bar of logged rows with the labelled rows overlaid; a count axis with gridlines; dates rotated,
    every k-th labelled so that neighbours are at least 24 px apart along x (17 px across the text)."""
    days = sorted((d for d in days if isinstance(d, dict)), key=lambda d: str(d.get("date", "")))
    if not days:
        return "<p>No logged rows in the window.</p>"
    n = len(days)
    step = min(40.0, max(6.0, 720 / n))
    every = math.ceil(24 / step)
    left, top_pad, plot_h = 64.0, 28, 150
    bottom = top_pad + plot_h
    dates = [str(d.get("date", "")) for d in days]
    longest = max(len(s) for s in dates[::every])
    height = bottom + 16 + longest * 0.62 * FONT * math.sin(math.radians(ANGLE)) + FONT
    left = max(left, longest * 0.62 * FONT * math.cos(math.radians(ANGLE)) - step / 2 + 4)
    count = [(d.get("logged") if _number(d.get("logged")) else 0, d.get("labelled") if _number(d.get("labelled"))
              else 0) for d in days]
    ticks = charts.ticks(max(max(c) for c in count), whole=True)
    y = lambda v: bottom - plot_h * max(v, 0) / ticks[-1]  # noqa: E731
    width = left + max(n * step + 12, 260)  # room for the legend when there are few days
    parts = charts.grid(width, height, FONT, ticks, left, left + n * step, y, lambda t: f"{t:,.0f}")
    parts.append(f'<line x1="{left:.1f}" y1="{top_pad - 4}" x2="{left:.1f}" y2="{bottom}" stroke="#333"/>'
                 f'<text x="12" y="{top_pad + plot_h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top_pad + plot_h / 2:.1f})">rows per day</text>')
    for k, (color, name) in enumerate(COLORS):
        parts.append(f'<rect x="{left + 8 + k * 120:.1f}" y="6" width="10" height="10" fill="{color}"/>'
                     f'<text x="{left + 22 + k * 120:.1f}" y="15">{name}</text>')
    for i, (date, (logged, labelled)) in enumerate(zip(dates, count)):
        x, tip = left + i * step, f"<title>{_e(date)}: {logged:,.0f} logged, {labelled:,.0f} labelled</title>"
        for value, (color, _), inset in ((logged, COLORS[0], 0.1), (labelled, COLORS[1], 0.25)):
            parts.append(f'<rect x="{x + step * inset:.1f}" y="{y(value):.1f}" width="{step * (1 - 2 * inset):.1f}" '
                         f'height="{bottom - y(value):.1f}" fill="{color}">{tip}</rect>')
        if i % every == 0:
            cx, ly = x + step / 2, bottom + 12
            parts.append(f'<text class="xlabel" x="{cx:.1f}" y="{ly}" text-anchor="end" '
                         f'transform="rotate(-{ANGLE} {cx:.1f} {ly})">{_e(date)}</text>')
    return "".join(parts) + "</svg>"


def _version_key(version: str) -> tuple:
    text = str(version)
    return (0, -int(text), "") if text.isdigit() else (1, 0, text)


def _version(version: str, v: dict, production) -> str:
    window = v.get("window") or {}
    mark = " (production)" if str(version) == str(production) else ""
    facts = [["window", f"{_e(window.get('start', ''))} to {_e(window.get('end', ''))}"],
             ["logged rows", _fmt(v.get("logged"), kind="count")],
             ["labelled rows", _fmt(v.get("labelled"), kind="count")],
             ["coverage", _fmt(v.get("coverage"), "nothing logged", kind="share")],
             ["prevalence (labelled)", _fmt(v.get("prevalence"), "nothing labelled", kind="share")],
             ["training prevalence", _fmt(v.get("training_prevalence"), "not recorded", kind="share")],
             ["decision threshold", _fmt(v.get("threshold"), "not recorded")]]
    return (f"<section><h3>Version {_e(version)}{mark}</h3>{_table(['', 'value'], facts)}"
            f"{_metrics_table(v)}<h4>Labelled rows per day</h4>{_chart(v.get('labelled_by_day') or [])}</section>")


def render_sections(performance: dict) -> str:
    """The verdict of the production version and its gates, then one section per version, newest first."""
    versions = performance.get("versions") or {}
    return _verdict(performance) + "".join(
        _version(k, versions[k], performance.get("model_version")) for k in sorted(versions, key=_version_key))


def add_to(report_html: str, sections: str) -> str:
    """`sections` under a "Live performance" heading, before the report's </body> (at the end when it has none)."""
    block = f'<div class="live-performance">{STYLE}<h2>Live performance</h2>{sections}</div>'
    at = report_html.lower().rfind("</body>")
    return report_html + block if at < 0 else report_html[:at] + block + report_html[at:]
