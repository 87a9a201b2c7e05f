"""Charts drawn on the server as SVG: no script, no CDN (the machines are offline), styled by
app.css classes (the CSP allows no inline style). Every label is escaped.

Percentages only (0-100). Bars start at 0 so their lengths compare honestly; a line's value axis
starts at a round number below its lowest point (labelled), so a trend of a few points shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from flows.scores.render import format_number

__all__ = ["Bar", "Point", "bar_chart", "line_chart"]


@dataclass(frozen=True)
class Point:
    label: str
    value: float | None
    ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    ci: tuple[float, float] | None = None
    muted: bool = False  # suppressed: drawn grey
    note: str = ""  # shown after the value (rank range, n)


def _axis(values: Sequence[float]) -> tuple[float, float]:
    """A round lower bound and tick step for a 0-100 axis that shows `values` comfortably."""
    low = max(0.0, min(values) - 2) if values else 0.0
    step = 5.0 if low >= 80 else 10.0 if low >= 50 else 20.0
    return math.floor(low / step) * step, step


PHONE_WIDTH = 340  # a trend drawn for a phone's width, so its text is not shrunk to a blur


def line_chart(points: Sequence[Point], *, title: str, lang: str) -> Markup:
    """A line of values over periods with its 95 % interval as a band; gaps where no data. The
    value axis is labelled in percent (60%), so the chart reads without its legend. Drawn twice,
    560 wide and PHONE_WIDTH wide with fewer date labels; app.css shows the one that fits."""
    return Markup("").join(
        [
            _line_svg(points, title=title, lang=lang, width=560, css="chart trend"),
            _line_svg(points, title=title, lang=lang, width=PHONE_WIDTH, css="chart trend narrow"),
        ]
    )


def _line_svg(
    points: Sequence[Point], *, title: str, lang: str, width: int, css: str, height: int = 220
) -> Markup:
    left, right, top, bottom = 46, 22, 12, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    shown = [p for p in points if p.value is not None]
    lows = [p.ci[0] if p.ci else p.value for p in shown if p.value is not None]
    y0, step = _axis([v for v in lows if v is not None])
    span = 100.0 - y0
    count = max(1, len(points) - 1)

    def x(i: int) -> float:
        return left + plot_w * (i / count if len(points) > 1 else 0.5)

    def y(v: float) -> float:
        return top + plot_h * (1 - (min(100.0, max(y0, v)) - y0) / span)

    parts = [
        f'<svg class="{css}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for step in range(5):
        value = y0 + span * step / 4
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
        )
        parts.append(f'<text x="{left - 4}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.0f}%</text>')
    parts.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
    )
    # Runs of consecutive points with data: one band and one line each.
    runs: list[list[int]] = []
    for i, point in enumerate(points):
        if point.value is None:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    for run in runs:
        values = [(i, v) for i in run if (v := points[i].value) is not None]
        intervals = [(i, ci) for i in run if (ci := points[i].ci) is not None]
        if len(intervals) > 1:
            upper = " ".join(f"{x(i):.1f},{y(ci[1]):.1f}" for i, ci in intervals)
            lower = " ".join(f"{x(i):.1f},{y(ci[0]):.1f}" for i, ci in reversed(intervals))
            parts.append(f'<polygon class="band" points="{upper} {lower}"/>')
        if len(values) > 1:
            line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in values)
            parts.append(f'<polyline class="line" points="{line}"/>')
        for i, v in values:
            parts.append(
                f'<circle class="dot" cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.6">'
                f"<title>{escape(points[i].label)}: {format_number(v, 1, lang)}</title></circle>"
            )
    slot = 16 + 8 * max((len(p.label) for p in points), default=1)  # a label's width and a gap
    every = max(1, math.ceil(len(points) / max(2, plot_w // slot)))
    for i, point in enumerate(points):
        if (len(points) - 1 - i) % every == 0:  # counted back from the newest, always labelled
            anchor = "end" if i == len(points) - 1 and i > 0 else "start" if i == 0 else "middle"
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - 10}" text-anchor="{anchor}">{escape(point.label)}</text>'
            )
    if not shown:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">—</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped, the rest are numbers


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    lang: str,
    width: int = 560,
    label_width: int = 230,
    wide: bool = False,
) -> Markup:
    """Horizontal bars (0-100) with 95 % interval whiskers, the value and a note at the end.
    A `wide` chart is hidden on phones, where a table beside it says the same; the others are
    also drawn PHONE_WIDTH wide with each label above its bar, which app.css shows on a phone."""
    if wide:
        return _bar_svg(bars, title=title, lang=lang, width=width, label_width=label_width, css="chart wide")
    return Markup("").join(
        [
            _bar_svg(bars, title=title, lang=lang, width=width, label_width=label_width, css="chart bars"),
            _bar_svg(bars, title=title, lang=lang, width=PHONE_WIDTH, label_width=0, css="chart bars narrow"),
        ]
    )


def _bar_svg(bars: Sequence[Bar], *, title: str, lang: str, width: int, label_width: int, css: str) -> Markup:
    """Labels left of the bars, or (label_width 0) each label on its own line above its bar."""
    above = label_width == 0
    row_h, top = (40, 4) if above else (26, 6)
    value_w = 110
    plot_w = width - label_width - value_w
    height = top * 2 + row_h * max(1, len(bars))

    def x(v: float) -> float:  # bars start at 0: their lengths compare honestly
        return label_width + plot_w * min(100.0, max(0.0, v)) / 100.0

    parts = [
        f'<svg class="{css}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, bar in enumerate(bars):
        mid = top + row_h * i + (29 if above else row_h / 2)
        fits = (width if above else label_width) // 8  # characters of ~8 units at the chart's 13 px
        label = bar.label if len(bar.label) <= fits else bar.label[: fits - 1] + "…"
        if above:
            parts.append(f'<text x="0" y="{top + row_h * i + 13:.1f}">{escape(label)}</text>')
        else:
            parts.append(
                f'<text x="{label_width - 6}" y="{mid + 4:.1f}" text-anchor="end">{escape(label)}</text>'
            )
        if bar.value is None:
            parts.append(f'<text x="{label_width + 4}" y="{mid + 4:.1f}">—</text>')
            continue
        bar_css = "bar suppressed" if bar.muted else "bar"
        parts.append(
            f'<rect class="{bar_css}" x="{label_width}" y="{mid - 8:.1f}" '
            f'width="{x(bar.value) - label_width:.1f}" height="16" rx="2">'
            f"<title>{escape(bar.label)}: {format_number(bar.value, 1, lang)}</title></rect>"
        )
        if bar.ci is not None:
            lo, hi = x(bar.ci[0]), x(bar.ci[1])
            parts.append(f'<line class="whisker" x1="{lo:.1f}" x2="{hi:.1f}" y1="{mid:.1f}" y2="{mid:.1f}"/>')
            for edge in (lo, hi):
                parts.append(
                    f'<line class="whisker" x1="{edge:.1f}" x2="{edge:.1f}" '
                    f'y1="{mid - 5:.1f}" y2="{mid + 5:.1f}"/>'
                )
        note = f" {escape(bar.note)}" if bar.note else ""
        parts.append(
            f'<text class="value" x="{label_width + plot_w + 6}" y="{mid + 4:.1f}">'
            f"{format_number(bar.value, 1, lang)}{note}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped, the rest are numbers
