"""Small server-side SVG charts for the dashboard and the static report (A5).

No JavaScript and no chart library: the page must render the same inside the Airflow UI's iframe, from a
file opened offline, and in a headless browser test. Every chart carries its figures as text too (titles
and a data table beside it), so a reader without the picture — or a test — still gets the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#1f6f8b", "#e07a1f", "#3c9d5d", "#a23b72", "#6c5b7b", "#c0392b", "#7f8c8d")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")


def _clip(label: str, size: int = 24) -> str:
    """Axis labels stay inside the left margin; the tables beside the charts carry the full text."""
    return label if len(label) <= size else label[: size - 1] + "…"


def _nice_max(value: float) -> float:
    """The axis top: the next 1, 2 or 5 × 10^k at or above the largest value (at least 1)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def line_chart(
    labels: Sequence[str], series: Sequence[Series], *, title: str, width: int = 640, height: int = 240
) -> Markup:
    """Lines over labelled points (days); one polyline per series, a legend, a y axis with 0 and the top."""
    pad_l, pad_r, pad_t, pad_b = 56, 24, 28, 40
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = _nice_max(max((v for s in series for v in s.values), default=0.0))
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return pad_l + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return pad_t + plot_h - plot_h * (v / top)

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{pad_l}" y="16" class="chart-title">{escape(title)}</text>',
        f'<line x1="{pad_l}" y1="{y(0):.1f}" x2="{width - pad_r}" y2="{y(0):.1f}" class="axis"/>',
        f'<line x1="{pad_l}" y1="{y(top):.1f}" x2="{width - pad_r}" y2="{y(top):.1f}" class="grid"/>',
        f'<text x="{pad_l - 6}" y="{y(0) + 4:.1f}" class="tick" text-anchor="end">0</text>',
        f'<text x="{pad_l - 6}" y="{y(top) + 4:.1f}" class="tick" text-anchor="end">{_fmt(top)}</text>',
    ]
    every = max(1, n // 8)  # at most ~8 x labels
    for i, label in enumerate(labels):
        if i % every == 0 or i == n - 1:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - pad_b + 16}" class="tick" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    for k, s in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        if len(s.values) == 1:
            parts.append(f'<circle cx="{x(0):.1f}" cy="{y(s.values[0]):.1f}" r="3" fill="{color}"/>')
        else:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        lx = pad_l + 110 * k
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{lx + 14}" y="{height - 5}" class="legend">{escape(s.name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    width: int = 640,
    bar_h: int = 22,
    fmt: Callable[[float], str] | None = None,
) -> Markup:
    """Horizontal bars, one per label, each with its value written at its end (`fmt`: how, e.g. a percent)."""
    fmt = fmt or _fmt
    pad_l, pad_r, pad_t = 150, 70, 28
    height = pad_t + bar_h * max(len(labels), 1) + 8
    top = _nice_max(max(values, default=0.0))
    plot_w = width - pad_l - pad_r
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="8" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = pad_t + i * bar_h
        w = plot_w * (value / top) if top else 0
        parts.append(
            f'<text x="{pad_l - 6}" y="{y + bar_h * 0.65:.1f}" class="tick" text-anchor="end">'
            f"{escape(_clip(label))}</text>"
        )
        parts.append(
            f'<rect x="{pad_l}" y="{y + 3}" width="{max(w, 0):.1f}" height="{bar_h - 6}" fill="{PALETTE[0]}"/>'
        )
        parts.append(
            f'<text x="{pad_l + max(w, 0) + 4:.1f}" y="{y + bar_h * 0.65:.1f}" class="tick">{escape(fmt(value))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def interval_chart(
    labels: Sequence[str],
    estimates: Sequence[float | None],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    *,
    title: str,
    unit: str = " pts",
    width: int = 640,
    row_h: int = 36,
) -> Markup:
    """Point estimates with their confidence intervals around a zero line (A4 lift); rows without an
    estimate say "not enough data" instead of drawing a point."""
    pad_l, pad_r, pad_t = 190, 20, 30
    height = pad_t + row_h * max(len(labels), 1) + 10
    known = [v for v in (*lows, *highs, *estimates) if v is not None]
    span = 1.1 * (max((abs(v) for v in known), default=1.0) or 1.0)  # a margin beyond the widest interval
    plot_w = width - pad_l - pad_r

    def x(v: float) -> float:
        return pad_l + plot_w / 2 + (plot_w / 2) * (v / span)

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="8" y="16" class="chart-title">{escape(title)}</text>',
        f'<line x1="{x(0):.1f}" y1="{pad_t - 6}" x2="{x(0):.1f}" y2="{height - 6}" class="axis"/>',
    ]
    for i, label in enumerate(labels):
        y = pad_t + i * row_h + row_h / 2
        parts.append(
            f'<text x="{pad_l - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{escape(_clip(label, 30))}</text>'
        )
        est, lo, hi = estimates[i], lows[i], highs[i]
        if est is None or lo is None or hi is None:
            parts.append(f'<text x="{x(0) + 6:.1f}" y="{y + 4:.1f}" class="tick muted">not enough data</text>')
            continue
        parts.append(
            f'<line x1="{x(lo):.1f}" y1="{y:.1f}" x2="{x(hi):.1f}" y2="{y:.1f}" '
            f'stroke="{PALETTE[1]}" stroke-width="3"/>'
        )
        parts.append(f'<circle cx="{x(est):.1f}" cy="{y:.1f}" r="5" fill="{PALETTE[0]}"/>')
        text_x = min(max(x(est), pad_l + 90), width - pad_r - 90)  # centred above the point, inside the box
        parts.append(
            f'<text x="{text_x:.1f}" y="{y - 7:.1f}" class="tick" text-anchor="middle">'
            f"{_fmt(est)}{escape(unit)} [{_fmt(lo)}, {_fmt(hi)}]</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
