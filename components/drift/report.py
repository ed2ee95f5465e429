"""The drift check's HTML report: the decision and its reasons, then per feature the reference and current
shares on the profile's bins as an inline SVG bar chart (self-contained: no scripts, nothing fetched).
"""
from __future__ import annotations

import math

from components import charts

FONT, ANGLE = 10, 45  # x labels: font size (px), rotated this many degrees up to the left, ending at their bin
CHAR = 0.62 * FONT  # a generous average glyph width: the label's length in px, to size the margins
SHORT = 24  # longer labels are shortened with an ellipsis, unless that makes two alike (the full one is in a title)
COLORS = (("#8c8c8c", "training reference"), ("#d9534f", "logged rows"))


def _bin_labels(spec: dict) -> list[str]:
    if spec["kind"] == "numeric":
        if not spec["edges"]:
            return ["all", "null"]
        for digits in range(4, 18):  # enough significant digits that no two edges read alike
            edges = [f"{e:.{digits}g}" for e in spec["edges"]]
            if len(set(edges)) == len(edges):
                break
        return [f"< {edges[0]}", *(f"{a}..{b}" for a, b in zip(edges, edges[1:])), f">= {edges[-1]}", "null"]
    return [*(str(v) for v in spec["values"]), "unseen", "null"]


def _shown(labels: list[str]) -> list[str]:
    """The labels as drawn: the long ones cut with an ellipsis, at a length that keeps them all distinct."""
    for limit in (SHORT, 2 * SHORT, None):
        shown = [label if limit is None or len(label) <= limit else label[:limit - 1] + "\u2026" for label in labels]
        if len(set(shown)) == len(set(labels)):
            return shown
    return labels


def _percent(share: float, step: float) -> str:
    digits = next((d for d in range(6) if abs(round(step * 100, d) - step * 100) < 1e-9), 6)
    return f"{share * 100:.{digits}f} %"


def _svg(labels: list[str], reference: list[float], current: list[float]) -> str:
    """Grouped bars per bin on a share axis with gridlines, a legend, and rotated bin labels that never overlap:
    neighbouring labels are `step` px apart along x, so step * sin(ANGLE) apart across, more than a line."""
    from html import escape

    n, shown = len(labels), _shown(labels)
    cos, sin = math.cos(math.radians(ANGLE)), math.sin(math.radians(ANGLE))
    step = max(40.0, 480 / max(n, 1))
    # a label ends at its bin's centre and runs down to the left: the left margin holds the first ones
    left = max(58.0, *(len(s) * CHAR * cos - (i + 0.5) * step + 4 for i, s in enumerate(shown)))
    top_pad, plot_h = 28, 150
    bottom = top_pad + plot_h
    height = bottom + 12 + max((len(s) * CHAR * sin + FONT for s in shown), default=0)
    width = left + n * step + 12
    ticks = charts.ticks(max([*reference, *current, 0.0]))
    y = lambda share: bottom - plot_h * share / ticks[-1]  # noqa: E731
    parts = charts.grid(width, height, FONT, ticks, left, left + n * step, y, lambda t: _percent(t, ticks[1]))
    parts.append(f'<line x1="{left:.1f}" y1="{top_pad - 4}" x2="{left:.1f}" y2="{bottom}" stroke="#333"/>'
                 f'<text x="12" y="{top_pad + plot_h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top_pad + plot_h / 2:.1f})">share of rows</text>')
    for k, (color, name) in enumerate(COLORS):
        lx = left + 8 + k * 140
        parts.append(f'<rect x="{lx:.1f}" y="6" width="10" height="10" fill="{color}"/>'
                     f'<text x="{lx + 14:.1f}" y="15">{name}</text>')
    for i, (label, r, c) in enumerate(zip(labels, reference, current)):
        x = left + i * step
        for j, (share, (color, name)) in enumerate(zip((r, c), COLORS)):
            parts.append(f'<rect x="{x + step * (0.1 + 0.4 * j):.1f}" y="{y(share):.1f}" width="{step * 0.38:.1f}" '
                         f'height="{bottom - y(share):.1f}" fill="{color}">'
                         f'<title>{escape(label)}: {name} {share:.2%}</title></rect>')
        cx, ly = x + step / 2, bottom + 12
        parts.append(f'<text class="xlabel" x="{cx:.1f}" y="{ly}" text-anchor="end" '
                     f'transform="rotate(-{ANGLE} {cx:.1f} {ly})"><title>{escape(label)}</title>'
                     f'{escape(shown[i])}</text>')
    return "".join(parts) + "</svg>"


def render_html(result: dict, detail: dict, profile: dict) -> str:
    """A self-contained report: the decision and its reasons, then a plot per feature, drifted ones first."""
    from html import escape

    order = sorted(detail, key=lambda f: (f not in result["drifted_features"], -detail[f]["psi"]))
    rows = []
    for feature in order:
        d, spec = detail[feature], profile["features"][feature]
        flag = "DRIFTED" if feature in result["drifted_features"] else "stable"
        ks = f", KS {d['ks']:.3f}" if d["ks"] is not None else ""
        rows.append(f"<section><h3>{escape(feature)} ({spec['kind']}): PSI {d['psi']:.3f}{ks}: {flag}</h3>"
                    f"{_svg(_bin_labels(spec), d['reference'], d['current'])}</section>")
    skipped = "".join(f"<li>{escape(s['file'])}: {escape(s['reason'])}</li>" for s in result.get("skipped_files", []))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Drift check</title>"
        "<style>body{font-family:sans-serif;margin:1em}h3{font-size:1em;margin:.8em 0 .2em}</style></head><body>"
        f"<h1>Drift check: {escape(result['decision'])}</h1>"
        f"<p>Model {escape(str(result.get('model_name', '')))} version {escape(str(result.get('model_version', '')))}; "
        f"{result['samples']} logged rows in the last {result.get('window_hours', '')} h.</p>"
        f"<p><strong>{escape(result['reason'])}</strong></p>"
        f"<p>Drifted: {escape(', '.join(result['drifted_features']) or 'none')}. "
        "Bars: grey the training reference, red the logged rows.</p>"
        + (f"<p>Skipped files:</p><ul>{skipped}</ul>" if skipped else "")
        + "".join(rows) + "</body></html>")
