"""The drift check's HTML report: the decision and its reasons, then per feature the reference and current
shares on the profile's bins as an inline SVG bar chart (self-contained: no scripts, nothing fetched).
"""
from __future__ import annotations


def _bin_labels(spec: dict) -> list[str]:
    if spec["kind"] == "numeric":
        edges = [f"{e:.4g}" for e in spec["edges"]]
        if not edges:
            return ["all", "null"]
        return [f"< {edges[0]}", *(f"{a}..{b}" for a, b in zip(edges, edges[1:])), f">= {edges[-1]}", "null"]
    return [*(str(v) for v in spec["values"]), "unseen", "null"]


def _svg(labels: list[str], reference: list[float], current: list[float]) -> str:
    from html import escape

    width, height, pad = 560, 150, 24
    n = len(labels)
    step = (width - 2 * pad) / max(n, 1)
    top = max([*reference, *current, 1e-9])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" role="img">']
    for i, (label, r, c) in enumerate(zip(labels, reference, current)):
        x = pad + i * step
        for j, (share, color) in enumerate(((r, "#8c8c8c"), (c, "#d9534f"))):
            h = (height - pad) * share / top
            parts.append(f'<rect x="{x + j * step * 0.4 + step * 0.1:.1f}" y="{height - h:.1f}" '
                         f'width="{step * 0.38:.1f}" height="{h:.1f}" fill="{color}">'
                         f'<title>{escape(label)}: {"reference" if j == 0 else "current"} {share:.3%}</title></rect>')
        parts.append(f'<text x="{x + step / 2:.1f}" y="{height + 14}" font-size="9" text-anchor="middle">'
                     f'{escape(label[:12])}</text>')
    parts.append(f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" stroke="#333"/></svg>')
    return "".join(parts)


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
