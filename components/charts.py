"""What the reports' inline SVG charts share: round ticks for a y axis, and a chart's opening with its grid."""
from __future__ import annotations

import math
from typing import Callable


def ticks(top: float, whole: bool = False) -> list[float]:
    """0 and round steps (1, 2, 2.5 or 5 times a power of ten; with `whole`, at least 1), at most 6 of them, up to
    at least `top`."""
    top = max(top, 1.0 if whole else 1e-6)
    power = 10.0 ** math.floor(math.log10(max(top / 5, 1) if whole else top / 5))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if top / (m * power) <= 5)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def grid(width: float, height: float, font: int, marks: list[float], left: float, right: float,
         y: Callable[[float], float], text: Callable[[float], str]) -> list[str]:
    """The opening `<svg>` of a chart and a horizontal line with its label (`text(mark)`) at each of `marks`."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" role="img" '
             f'font-family="sans-serif" font-size="{font}">']
    for t in marks:
        parts.append(f'<line x1="{left:.1f}" y1="{y(t):.1f}" x2="{right:.1f}" y2="{y(t):.1f}" '
                     f'stroke="{"#333" if t == 0 else "#e3e3e3"}"/><text class="ytick" x="{left - 5:.1f}" '
                     f'y="{y(t) + 3.5:.1f}" text-anchor="end">{text(t)}</text>')
    return parts
