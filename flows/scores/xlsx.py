"""The monthly report workbook (`sipas export xlsx`, and the dashboard's download link).

Built from the same Report as `scores show`, so every figure in it equals the JSON. Vietnamese
headers, numbers stored as numbers (2-decimal format for percentages), frozen header rows,
column widths fitted to their content, and every text cell that a spreadsheet would read as a
formula (starting with =, +, - or @) neutralised with a leading apostrophe: comments are the
citizens' own words and must never run as formulas on a supervisor's machine.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlalchemy.orm import Session

from config.settings import Settings
from flows.scores.comments import load_comments
from flows.scores.counts import CHANNELS
from flows.scores.flags import FLAG_NAMES
from flows.scores.formulas import ELEMENTS, round2
from flows.scores.periods import Period, day_period
from flows.scores.points import TrendPoint
from flows.scores.render import ELEMENT_NAMES, FUNNEL_NAMES, criterion_name, flag_text, rank_text
from flows.scores.report import Report, build_report
from flows.scores.trend import unit_trends

PERCENT_FORMAT = "0.00"
COUNT_FORMAT = "0"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
DAILY_TREND_MAX_DAYS = 62  # longer periods trend by month
_MAX_WIDTH = 60
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_HEADER_FONT = Font(bold=True)
_HEADER_ALIGNMENT = Alignment(wrap_text=True, vertical="top")
_CHANNEL_NAMES = {"all": "Tất cả", "sms": "SMS", "zalo": "Zalo"}
LEVEL_NAMES = {
    "province": "Tỉnh/Thành phố",
    "department": "Sở, ban, ngành",
    "district": "Quận/Huyện (trước 7/2025)",
    "commune": "Xã/Phường/Đặc khu",
}

Cell = str | int | float | bool | None


def neutralise(value: Cell) -> Cell:
    """Text that a spreadsheet would evaluate becomes plain text (OWASP "CSV injection")."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def build_workbook(
    session: Session,
    period: Period,
    agency_code: str | None,
    *,
    settings: Settings,
    channel: str = "all",
    procedure: str | None = None,
) -> Workbook:
    """Every sheet of the report for a period (and an agency's subtree, when given; the cases of
    one procedure, when given)."""
    report = build_report(
        session, period, agency_code, settings=settings, channel=channel, procedure=procedure
    )
    rows = report.as_json()
    book = Workbook(write_only=True)  # streamed: a province's month is 45,000 cells
    _fill(
        book.create_sheet("Đơn vị"),
        UNIT_HEADERS,
        (unit_row(row) for row in rows),
        percent_columns=UNIT_PERCENT_COLUMNS,
    )
    _fill(
        book.create_sheet("Tiêu chí"),
        [
            "Mã đơn vị",
            "Đơn vị",
            "Mã tiêu chí",
            "Tiêu chí",
            "Chỉ số (%)",
            "Số trả lời",
            "KTC 95% thấp",
            "KTC 95% cao",
        ],
        criterion_rows(rows),
        percent_columns={5, 7, 8},
    )
    _fill(
        book.create_sheet("Yếu tố"),
        ["Mã đơn vị", "Đơn vị", "Mã yếu tố", "Yếu tố", "Chỉ số (%)", "KTC 95% thấp", "KTC 95% cao"],
        element_rows(rows),
        percent_columns={5, 6, 7},
    )
    _fill(
        book.create_sheet("Xu hướng"),
        ["Kỳ", "Mã đơn vị", "Đơn vị", "Chỉ số SIPAS (%)", "Hài lòng chung (%)", "Số trả lời"],
        trend_rows(session, report, agency_code, channel),
        percent_columns={4, 5},
    )
    _fill(
        book.create_sheet("Phễu phản hồi"),
        ["Mã đơn vị", "Đơn vị", "Kênh", *FUNNEL_NAMES.values()],
        funnel_rows(rows),
        percent_columns=set(),
    )
    _fill(
        book.create_sheet("Bất thường"),
        ["Ngày", "Mã đơn vị", "Đơn vị", "Loại", "Mô tả"],
        (
            [
                flag["day"],
                row["agency_code"],
                row["agency_name"],
                FLAG_NAMES.get(flag["kind"], flag["kind"]),
                flag_text(flag),
            ]
            for row in rows
            for flag in row["anomalies"]
        ),
        percent_columns=set(),
    )
    _fill(
        book.create_sheet("Ý kiến"),
        ["Thời gian", "Mã đơn vị", "Đơn vị", "Kênh", "Câu hỏi", "Ý kiến (đã che thông tin cá nhân)"],
        comment_rows(session, period, settings.tz, agency_code, procedure),
        percent_columns=set(),
    )
    return book


def workbook_bytes(book: Workbook) -> bytes:
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


UNIT_HEADERS = [
    "Mã đơn vị",
    "Đơn vị",
    "Cấp",
    "Đơn vị cấp trên",
    "Kỳ",
    "Hồ sơ đã giải quyết",
    "Phiếu đã gửi",
    "Phiếu đã nhận",
    "Phiếu có trả lời",
    "Tỷ lệ trả lời (%)",
    "Chỉ số SIPAS (%)",
    "SIPAS KTC 95% thấp",
    "SIPAS KTC 95% cao",
    "TB đơn vị trực thuộc (%)",
    "Hài lòng chung (%)",
    "KTC 95% thấp",
    "KTC 95% cao",
    "Số trả lời câu hài lòng chung",
    "Cỡ mẫu hiệu dụng (Kish)",
    "Tỷ lệ hài lòng QĐ 766 (%)",
    "Tỷ lệ đúng hạn (%)",
    "Dưới ngưỡng công bố",
    "Hạng",
    *(f"{ELEMENT_NAMES[code]} (%)" for code in ELEMENTS),
    "Phiếu không tính lại (cùng số ĐT)",
    "Dấu hiệu bất thường",
]
UNIT_PERCENT_COLUMNS = {10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, *range(24, 24 + len(ELEMENTS))}


def unit_row(row: dict[str, Any]) -> list[Cell]:
    """One unit's figures in the order of UNIT_HEADERS: the JSON values, the level in words."""
    sipas_ci = row["sipas_ci95"] or [None, None]
    ci = row["overall_ci95"] or [None, None]
    return [
        row["agency_code"],
        row["agency_name"],
        LEVEL_NAMES.get(row["level"], row["level"]),
        row["parent_code"],
        row["period"],
        row["n_cases_closed"],
        row["n_surveys_sent"],
        row["n_surveys_delivered"],
        row["n_responses"],
        row["response_rate"],
        row["sipas_index"],
        sipas_ci[0],
        sipas_ci[1],
        row["unit_mean"],
        row["overall_satisfaction"],
        ci[0],
        ci[1],
        row["n_overall"],
        row["n_effective"],
        row["rate_766"],
        row["on_time_rate"],
        "có" if row["suppressed"] else "không",
        None if row["rank_range"] is None else rank_text(row["rank_range"]),
        *(row["elements"][code] for code in ELEMENTS),
        row["n_repeat_phone"],
        "; ".join(f"{flag['day']}: {flag_text(flag)}" for flag in row["anomalies"]) or None,
    ]


def criterion_rows(rows: Iterable[dict[str, Any]]) -> Iterable[list[Cell]]:
    for row in rows:
        for table, key in (("criteria", "index"), ("integrity", "rate")):
            for code, cell in row[table].items():
                low, high = cell["ci95"] or [None, None]
                yield [
                    row["agency_code"],
                    row["agency_name"],
                    code,
                    criterion_name(code),
                    cell[key],
                    cell["n"],
                    low,
                    high,
                ]


def element_rows(rows: Iterable[dict[str, Any]]) -> Iterable[list[Cell]]:
    for row in rows:
        for code in ELEMENTS:
            low, high = row["elements_ci95"][code] or [None, None]
            name = ELEMENT_NAMES[code]
            yield [row["agency_code"], row["agency_name"], code, name, row["elements"][code], low, high]


def funnel_rows(rows: Iterable[dict[str, Any]]) -> Iterable[list[Cell]]:
    for row in rows:
        for channel in CHANNELS:
            counts = row["funnel"][channel]
            yield [
                row["agency_code"],
                row["agency_name"],
                _CHANNEL_NAMES[channel],
                *(counts[k] for k in FUNNEL_NAMES),
            ]


def trend_periods(period: Period) -> list[Period]:
    """Days for periods up to two months, calendar months (clipped to the period) beyond."""
    if period.n_days <= DAILY_TREND_MAX_DAYS:
        return [day_period(day) for day in period.days()]
    months: list[Period] = []
    start = period.start
    while start <= period.end:
        following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        end = min(following - timedelta(days=1), period.end)
        months.append(Period(f"{start:%Y-%m}", start, end))
        start = following
    return months


def trend_rows(
    session: Session, report: Report, agency_code: str | None, channel: str
) -> Iterable[list[Cell]]:
    """The units of the report, period by period (days, or months for long periods): each unit's
    index, overall satisfaction and its answers, as the report of that period alone would give
    them (flows.scores.trend, the dashboard's trend computation, instead of a report per period).
    A period lists the units that closed cases in it, and the unit asked for always."""
    parts = trend_periods(report.period)
    if agency_code is not None:
        roots = [row.unit for row in report.rows[:1]]  # the unit asked for comes first
    else:
        roots = [row.unit for row in report.rows if row.unit.parent_id is None]
    by_part: list[dict[int, TrendPoint]] = [{} for _ in parts]
    for root in roots:
        found = unit_trends(session, root.id, parts, channel, report.procedure)
        for points, of_root in zip(by_part, found, strict=True):
            points.update(of_root)
    for part, points in zip(parts, by_part, strict=True):
        for row in report.rows:
            point = points.get(row.unit.id)
            if point is None or (point.cases == 0 and row.unit.code != agency_code):
                continue
            yield [
                part.label,
                row.unit.code,
                row.unit.name,
                round2(point.sipas.value),
                round2(point.overall.value),
                point.overall.n,
            ]


def comment_rows(
    session: Session, period: Period, tz: ZoneInfo, agency_code: str | None, procedure: str | None
) -> Iterable[list[Cell]]:
    for comment in load_comments(session, period, tz, agency_code, procedure=procedure):
        yield [
            comment.written_at.strftime("%d/%m/%Y %H:%M"),
            comment.agency_code,
            comment.agency_name,
            _CHANNEL_NAMES.get(comment.channel, comment.channel),
            comment.question,
            comment.text,
        ]


def _fill(
    sheet: WriteOnlyWorksheet,
    headers: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    *,
    percent_columns: set[int],
) -> None:
    """Write a sheet: bold header row (frozen), numbers with their format, widths that fit. A
    streamed sheet takes its widths before its rows, so the rows are gathered first."""
    lines = [list(values) for values in rows]
    widths = [min(_MAX_WIDTH, max(10, len(header) // 2 + 2)) for header in headers]
    for values in lines:
        for column, value in enumerate(values, start=1):
            if value is None or isinstance(value, bool):
                continue
            text = f"{value:.2f}" if isinstance(value, float) else str(value)
            widths[column - 1] = min(_MAX_WIDTH, max(widths[column - 1], len(text) + 2))
    for column, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = width
    sheet.freeze_panes = "A2"
    header_cells = []
    for header in headers:
        cell = WriteOnlyCell(sheet, value=header)
        cell.font = _HEADER_FONT
        cell.fill = _HEADER_FILL
        cell.alignment = _HEADER_ALIGNMENT
        header_cells.append(cell)
    sheet.append(header_cells)
    for values in lines:
        sheet.append(
            [_cell(sheet, column, value, percent_columns) for column, value in enumerate(values, start=1)]
        )


def _cell(
    sheet: WriteOnlyWorksheet, column: int, value: Cell, percent_columns: set[int]
) -> Cell | WriteOnlyCell:
    """A value as written: numbers carry their format (2 decimals for percentages), text that a
    spreadsheet would evaluate is neutralised."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return neutralise(value)
    cell = WriteOnlyCell(sheet, value=value)
    cell.number_format = (
        PERCENT_FORMAT if isinstance(value, float) or column in percent_columns else COUNT_FORMAT
    )
    return cell
