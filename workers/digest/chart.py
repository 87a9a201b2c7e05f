"""The digest's one picture: the unit's SIPAS index over 30 days with its 95 % band, and its child
units side by side (last 7 days, with their intervals). A PNG drawn off-screen (Agg), labelled in
the reader's language (the pages' catalogue, bot.web.i18n)."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.dates import DateFormatter, DayLocator, date2num
from matplotlib.figure import Figure

from bot.web.i18n import translator
from workers.digest.content import DigestContent

_LINE = "#1f5fa8"
_BAND = "#9cc3ea"
_SUPPRESSED = "#b0b0b0"
MAX_CHILD_BARS = 12


def chart_png(content: DigestContent, lang: str = "vi") -> bytes:
    """The chart as PNG bytes (about 800 × 560 pixels)."""
    _ = translator(lang)
    children = [c for c in content.children if c["sipas_index"] is not None][:MAX_CHILD_BARS]
    rows = 2 if children else 1
    # A bare Figure renders with Agg and needs no pyplot state: safe in any worker thread.
    figure = Figure(figsize=(8, 5.6 if children else 3.2), dpi=100)
    _trend(figure.add_subplot(rows, 1, 1), content, _)
    if children:
        _children(figure.add_subplot(rows, 1, 2), children, _)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _trend(axes: Axes, content: DigestContent, _: Callable[..., str]) -> None:
    """Days without answers stay gaps (a line across them would invent figures); every day with
    answers gets its interval as an error bar, and runs of days also a shaded band."""
    days = date2num([day for day, _, _ in content.trend])  # type: ignore[no-untyped-call]
    nan = float("nan")
    values = [value if value is not None else nan for _, value, _ in content.trend]
    lows = [ci[0] if ci is not None else nan for _, _, ci in content.trend]
    highs = [ci[1] if ci is not None else nan for _, _, ci in content.trend]
    below = [v - low if v == v and low == low else 0.0 for v, low in zip(values, lows, strict=True)]
    above = [high - v if v == v and high == high else 0.0 for v, high in zip(values, highs, strict=True)]
    axes.fill_between(days, lows, highs, color=_BAND, alpha=0.6, linewidth=0, label=_("Khoảng tin cậy 95%"))
    axes.errorbar(
        days,
        values,
        yerr=[below, above],
        color=_LINE,
        ecolor=_BAND,
        elinewidth=3,
        capsize=0,
        marker="o",
        markersize=4,
        linewidth=1.5,
        label=_("Chỉ số SIPAS"),
    )
    axes.set_xlim(days[0] - 0.5, days[-1] + 0.5)
    axes.set_ylim(0, 100)
    axes.set_ylabel("%")
    title = _(
        "{agency}: chỉ số SIPAS 30 ngày đến {day}", agency=content.agency_name, day=f"{content.day:%d/%m/%Y}"
    )
    axes.set_title(title, fontsize=11)
    axes.xaxis.set_major_locator(DayLocator(interval=5))  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(DateFormatter("%d/%m"))  # type: ignore[no-untyped-call]
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="lower left", fontsize=8, frameon=False)


def _children(axes: Axes, children: Sequence[Mapping[str, Any]], _: Callable[..., str]) -> None:
    names = [str(c["agency_name"]) for c in children]
    values = [float(c["sipas_index"]) for c in children]
    errors_low: list[float] = []
    errors_high: list[float] = []
    for child, value in zip(children, values, strict=True):
        ci = child["sipas_ci95"] or [value, value]
        errors_low.append(max(0.0, value - ci[0]))
        errors_high.append(max(0.0, ci[1] - value))
    colours = [_SUPPRESSED if c["suppressed"] else _LINE for c in children]
    positions = list(range(len(children)))
    axes.barh(positions, values, color=colours, xerr=[errors_low, errors_high], capsize=3, height=0.6)
    axes.set_yticks(positions, names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_title(_("Đơn vị trực thuộc, 7 ngày qua (xám: chưa đủ số phiếu)"), fontsize=11)
    axes.grid(axis="x", alpha=0.3)
