"""A horizontal bar chart as inline SVG, drawn on the server: no script, no external file.

Accessible: the SVG is an image named by its `<title>` and described by its
`<desc>` (every bar's label and value in words), and each bar carries its
label and value as visible text, so the figures can be read without the bars.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

ROW = 28
"""Height of one bar's row, in SVG units."""
LABEL_WIDTH = 220
BAR_WIDTH = 360
VALUE_WIDTH = 60
MAX_LABEL = 32
"""Longer labels are cut (the full label stays in the `<desc>` and in the table beside)."""


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def bar_chart(
    title: str, bars: Sequence[tuple[str, float]], *, chart_id: str, testid: str
) -> Markup:
    """An `<svg>` with one bar per (label, value), scaled to the largest value."""
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    height = max(1, len(bars)) * ROW + 8
    largest = max((value for _, value in bars), default=0) or 1
    words = "; ".join(f"{label}: {value:g}" for label, value in bars) or "no data"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" data-testid="{escape(testid)}" '
        f'id="{escape(chart_id)}" viewBox="0 0 {width} {height}" width="100%" '
        f'style="max-width:{width}px" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(words)}</desc>',
    ]
    if not bars:
        parts.append(f'<text x="0" y="{ROW - 10}" fill="currentColor">No data</text>')
    for index, (label, value) in enumerate(bars):
        top = index * ROW + 4
        length = round(BAR_WIDTH * value / largest, 1)
        middle = top + ROW / 2 + 1
        parts += [
            "<g>",
            f'<text x="{LABEL_WIDTH - 8}" y="{middle}" text-anchor="end" '
            f'dominant-baseline="middle" fill="currentColor">{escape(_short(label))}</text>',
            f'<rect x="{LABEL_WIDTH}" y="{top + 4}" width="{length}" height="{ROW - 8}" '
            'fill="#1f6feb" rx="2"></rect>',
            f'<text x="{LABEL_WIDTH + length + 6}" y="{middle}" dominant-baseline="middle" '
            f'fill="currentColor">{escape(f"{value:g}")}</text>',
            "</g>",
        ]
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value taken from data is escaped above
