"""One number formatter for pages, charts, digests and the `scores show` table."""

from __future__ import annotations

from bot.web.charts import Bar, bar_chart
from flows.scores.render import format_number
from workers.digest.message import ci, pct, points


def test_vietnamese_and_english_numbers() -> None:
    assert format_number(1234.5) == "1.234,50"
    assert format_number(1234.5, lang="en") == "1,234.50"
    assert format_number(74.84, 1) == "74,8"
    assert format_number(14100) == "14.100"  # counts have no decimals
    assert format_number(None) == "—"
    assert format_number(1.5, signed=True) == "+1,50"
    assert format_number(-1.5, lang="en", signed=True) == "-1.50"


def test_digest_and_charts_use_it() -> None:
    assert pct(78.256) == "78,26%"
    assert pct(78.256, "en") == "78.26%"
    assert ci([77.5, 79.125]) == "77,50–79,12"
    assert points(1.234) == "+1,23 điểm"
    assert points(-0.5, "en") == "-0.50 points"
    chart = str(bar_chart([Bar("Kết quả", 78.44)], title="Các yếu tố", lang="vi"))
    assert "78,4" in chart
    assert "78.4" in str(bar_chart([Bar("Kết quả", 78.44)], title="Elements", lang="en"))
