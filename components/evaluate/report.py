"""The evaluation's precision-recall plot: the candidate's curve on the holdout with the point its decision
threshold chose marked, as a self-contained HTML page (inline SVG, nothing fetched)."""
from __future__ import annotations

from html import escape


def render_precision_recall(curve: dict | None, chosen: dict, title: str) -> str:
    """`curve`: precision, recall, threshold lists (None: not computed, said so); `chosen`: the candidate's
    threshold, precision and recall on the holdout."""
    width, height, pad = 420, 320, 40
    if curve is None:
        body = "<p>No precision-recall curve: the holdout does not hold both classes.</p>"
    else:
        def xy(recall: float, precision: float) -> str:
            return f"{pad + recall * (width - 2 * pad):.1f},{height - pad - precision * (height - 2 * pad):.1f}"

        line = " ".join(xy(r, p) for r, p in zip(curve["recall"], curve["precision"]))
        point = ""
        if chosen.get("recall") is not None and chosen.get("precision") is not None:
            cx, cy = xy(chosen["recall"], chosen["precision"]).split(",")
            point = (f'<circle cx="{cx}" cy="{cy}" r="5" fill="#d9534f"><title>threshold {chosen["threshold"]:.4g}: '
                     f'precision {chosen["precision"]:.3f}, recall {chosen["recall"]:.3f}</title></circle>')
        body = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
                f'<rect x="{pad}" y="{pad}" width="{width - 2 * pad}" height="{height - 2 * pad}" fill="none" '
                f'stroke="#999"/><polyline points="{line}" fill="none" stroke="#337ab7" stroke-width="2"/>{point}'
                f'<text x="{width / 2}" y="{height - 8}" font-size="12" text-anchor="middle">recall</text>'
                f'<text x="12" y="{height / 2}" font-size="12" transform="rotate(-90 12 {height / 2})" '
                f'text-anchor="middle">precision</text></svg>')
    marked = ", ".join(f"{k} {chosen[k]:.4g}" for k in ("threshold", "precision", "recall", "flag_rate")
                       if chosen.get(k) is not None)
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Precision-recall</title></head>"
            f"<body style='font-family:sans-serif'><h1>{escape(title)}</h1><p>Marked: the decision ({marked}).</p>"
            f"{body}</body></html>")
