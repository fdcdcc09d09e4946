"""Charts drawn on the server as SVG (no chart library, nothing fetched by the browser).

Each function takes plain numbers and labels and returns the SVG markup; every label
is escaped. The page inlines the SVG, so it scales and prints like text.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

ACCENT = "#3b2a20"
SECOND = "#c7883f"
GRID = "#e4ddd3"


def _nice_max(value: float) -> float:
    """The top of an axis with 4 steps, each a whole 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^k.

    Whole steps keep every tick label exact (counts and roubles are shown without
    decimals): a day with one purchase gets 0 1 2 3 4, never 0 0 0 1 1; the finer
    steps keep the bars tall (10 purchases → 12, not 20).
    """
    if value <= 0:
        return 4.0
    magnitude = 1
    while True:
        for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8):
            size = step * magnitude
            if size == int(size) and value <= 4 * size:
                return float(4 * size)
        magnitude *= 10


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}"


def bars_and_line(
    labels: Sequence[str],
    bars: Sequence[int],
    line: Sequence[float | None],
    *,
    bar_name: str,
    line_name: str,
    width: int = 760,
    height: int = 240,
) -> str:
    """Bars (left axis) with a line over them (right axis): purchases and average check."""
    left, right, top, bottom = 44, 54, 22, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(labels))
    bmax = _nice_max(max(bars, default=0))
    values = [v for v in line if v is not None]
    lmax = _nice_max(max(values, default=0))
    slot = plot_w / n
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(bar_name)} / {escape(line_name)}</title>",
    ]
    for i in range(5):
        y = top + plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(bmax * (4 - i) / 4)}</text>'
        )
        parts.append(f'<text x="{width - right + 6}" y="{y + 4:.1f}">{_fmt(lmax * (4 - i) / 4)}</text>')
    for i, value in enumerate(bars):
        h = plot_h * value / bmax
        x = left + i * slot + slot * 0.15
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{ACCENT}" opacity=".8"><title>{escape(labels[i])}: {value}</title></rect>'
        )
    points = [
        f"{left + i * slot + slot / 2:.1f},{top + plot_h - plot_h * v / lmax:.1f}"
        for i, v in enumerate(line)
        if v is not None
    ]
    if points:
        parts.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{SECOND}" stroke-width="2.5"/>'
        )
        for p in points:
            cx, cy = p.split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{SECOND}"/>')
    step = max(1, n // 10)
    for i in range(0, n, step):
        x = left + i * slot + slot / 2
        parts.append(
            f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{escape(labels[i])}</text>'
        )
    parts.append(
        f'<rect x="{left}" y="4" width="10" height="10" fill="{ACCENT}"/>'
        f'<text x="{left + 14}" y="13">{escape(bar_name)}</text>'
        f'<rect x="{left + 180}" y="8" width="14" height="3" fill="{SECOND}"/>'
        f'<text x="{left + 198}" y="13">{escape(line_name)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def hbars(items: Sequence[tuple[str, int, int | None]], *, width: int = 420, row: int = 26) -> str:
    """Horizontal bars: (label, value, part) — the part (e.g. activated) drawn darker."""
    if not items:
        return ""
    label_w, pad = 120, 8
    height = row * len(items) + pad
    top = max((v for _, v, _ in items), default=0) or 1
    plot = width - label_w - 60
    summary = "; ".join(f"{label}: {value}" for label, value, _ in items)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(summary)}</title>",
    ]
    for i, (label, value, part) in enumerate(items):
        y = pad / 2 + i * row
        w = plot * value / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + row / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 4:.1f}" width="{w:.1f}" height="{row - 8}" fill="{SECOND}" opacity=".55"/>'
        )
        if part is not None:
            pw = plot * part / top
            parts.append(
                f'<rect x="{label_w}" y="{y + 4:.1f}" width="{pw:.1f}" height="{row - 8}" fill="{ACCENT}"/>'
            )
        text = f"{value}" if part is None else f"{part} / {value}"
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + row / 2 + 4:.1f}">{escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def heat_class(share: float | None) -> str:
    """The CSS class of a retention cell (admin.css): ten steps, darker for a larger share."""
    if share is None:
        return "heat-none"
    return f"heat-{int(max(0.0, min(1.0, share)) * 10 + 0.5)}"
