"""`sipas scores show` output: JSON (contract.md), CSV (spreadsheets), and a table for people.

The table is for Vietnamese supervisors: Vietnamese headings, unit names indented under their
parent, decimal commas and dd/mm/yyyy dates as Vietnamese reports write them.
JSON and CSV keep machine conventions (decimal points, ISO dates).
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from flows.scores.counts import CHANNELS
from flows.scores.flags import FLAG_NAMES
from flows.scores.formulas import ELEMENTS, OVERALL
from flows.scores.report import Report

NONE = "—"
CHANNEL_NAMES = {"all": "tất cả", "sms": "SMS", "zalo": "Zalo"}
ELEMENT_NAMES = {
    "tiep_can": "Tiếp cận dịch vụ",
    "thu_tuc": "Thủ tục hành chính",
    "cong_chuc": "Công chức giải quyết công việc",
    "ket_qua": "Kết quả",
    "phan_anh": "Tiếp nhận, xử lý góp ý, phản ánh, kiến nghị",
}
ELEMENT_SHORT = {"tiep_can": "TC", "thu_tuc": "TT", "cong_chuc": "CC", "ket_qua": "KQ", "phan_anh": "PA"}


def to_json(report: Report) -> str:
    return json.dumps(report.as_json(), ensure_ascii=False, indent=2)


BOM = "\ufeff"  # Excel on Windows reads a CSV as UTF-8 only when it starts with this mark
FUNNEL_NAMES = {
    "sent": "Đã gửi",
    "delivered": "Đã nhận",
    "started": "Bắt đầu trả lời",
    "completed": "Hoàn thành",
    "opted_out": "Từ chối",
    "expired": "Hết hạn",
    "undeliverable": "Không gửi được",
}


OVERALL_NAME = "Hài lòng chung"


def criterion_name(code: str) -> str:
    """A criterion as supervisors know it (pages, workbook, digests): the overall question and
    each element's general question by name, finer criteria by their code (their wording lives in
    the flows)."""
    if code == OVERALL:
        return OVERALL_NAME
    return ELEMENT_NAMES.get(code, code)


def rank_text(rank_range: tuple[int, int] | list[int] | None) -> str:
    """ "3–5" when the intervals leave the rank open, "4" when they fix it, "—" unranked."""
    if rank_range is None:
        return NONE
    best, worst = rank_range
    return str(best) if best == worst else f"{best}–{worst}"


def to_csv(report: Report) -> str:
    """One line per unit; criteria and integrity questions become columns named after their code.
    Starts with a UTF-8 byte-order mark so that Excel opens the Vietnamese text correctly."""
    rows = report.as_json()
    criteria = sorted({code for row in rows for code in row["criteria"]})
    integrity = sorted({code for row in rows for code in row["integrity"]})
    header = [
        "agency_code",
        "agency_name",
        "level",
        "parent_code",
        "period",
        "period_start",
        "period_end",
        "channel",
        "n_cases_closed",
        "n_surveys_sent",
        "n_surveys_delivered",
        "n_responses",
        "response_rate",
        "sipas_index",
        "unit_mean",
        "overall_satisfaction",
        "overall_ci95_low",
        "overall_ci95_high",
        "n_overall",
        "n_effective",
        "n_repeat_phone",
        "sipas_ci95_low",
        "sipas_ci95_high",
        "rate_766",
        "on_time_rate",
        "suppressed",
        "rank",
        "rank_best",
        "rank_worst",
        *(f"element.{code}" for code in ELEMENTS),
        *(f"element.{code}.ci95_{end}" for code in ELEMENTS for end in ("low", "high")),
        *(f"criterion.{code}.{part}" for code in criteria for part in _CI_PARTS["index"]),
        *(f"{code}.{part}" for code in integrity for part in _CI_PARTS["rate"]),
        *(f"funnel.{channel}.{name}" for channel in CHANNELS for name in FUNNEL_NAMES),
        "anomalies",
    ]
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        ci = row["overall_ci95"] or [None, None]
        sipas_ci = row["sipas_ci95"] or [None, None]
        ranks = row["rank_range"] or [None, None]
        flat: dict[str, Any] = {
            **{key: row[key] for key in header if key in row},
            "overall_ci95_low": ci[0],
            "overall_ci95_high": ci[1],
            "sipas_ci95_low": sipas_ci[0],
            "sipas_ci95_high": sipas_ci[1],
            "rank_best": ranks[0],
            "rank_worst": ranks[1],
            **{f"element.{code}": row["elements"][code] for code in ELEMENTS},
            "anomalies": "; ".join(f"{flag['day']} {flag['kind']}" for flag in row["anomalies"]),
        }
        for code in ELEMENTS:
            low, high = row["elements_ci95"][code] or [None, None]
            flat[f"element.{code}.ci95_low"], flat[f"element.{code}.ci95_high"] = low, high
        for prefix, table, key in (("criterion.", "criteria", "index"), ("", "integrity", "rate")):
            for code, cell in row[table].items():
                low, high = cell["ci95"] or [None, None]
                values = (cell[key], cell["n"], low, high)
                for part, value in zip(_CI_PARTS[key], values, strict=True):
                    flat[f"{prefix}{code}.{part}"] = value
        for channel, counts in row["funnel"].items():
            for name, value in counts.items():
                flat[f"funnel.{channel}.{name}"] = value
        writer.writerow([_csv_cell(flat.get(key)) for key in header])
    return buffer.getvalue()


_CI_PARTS = {
    "index": ("index", "n", "ci95_low", "ci95_high"),
    "rate": ("rate", "n", "ci95_low", "ci95_high"),
}


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_table(report: Report) -> str:
    period = report.period
    span = (
        _vn_date(period.start) if period.n_days == 1 else f"{_vn_date(period.start)}–{_vn_date(period.end)}"
    )
    lines = [
        f"Điểm SIPAS kỳ {period.label} ({span}), kênh: {CHANNEL_NAMES.get(report.channel, report.channel)}",
    ]
    if not report.rows:
        lines.append(
            "Không có dữ liệu cho kỳ này (chưa có hồ sơ nào kết thúc, hoặc chưa chạy `sipas scores compute`)."
        )
        return "\n".join(lines) + "\n"
    top = min(row.unit.depth for row in report.rows)
    main: list[list[str]] = []
    elements: list[list[str]] = []
    funnel: list[list[str]] = []
    flags: list[str] = []
    for row in report.rows:
        f = row.figures
        name = "  " * (row.unit.depth - top) + unicodedata.normalize("NFC", row.unit.name)
        ci = f.overall_ci95
        main.append(
            [
                row.unit.code,
                name,
                str(f.n_cases_closed),
                str(f.n_surveys_sent),
                str(f.n_responses),
                format_number(f.response_rate),
                format_number(f.sipas_index) + ("*" if row.suppressed else ""),
                format_number(row.unit_mean),
                format_number(f.overall_satisfaction),
                NONE if ci is None else f"{format_number(ci[0])}–{format_number(ci[1])}",
                format_number(f.rate_766),
                format_number(f.on_time_rate),
                rank_text(row.rank_range),
            ]
        )
        elements.append([row.unit.code, name, *(format_number(f.elements[code].value) for code in ELEMENTS)])
        funnel.append([row.unit.code, name, *(str(f.funnel["all"][key]) for key in FUNNEL_NAMES)])
        for flag in row.anomalies:
            flags.append(f"  {row.unit.code} {_vn_date(date.fromisoformat(flag['day']))}: {flag_text(flag)}")
    lines.append("")
    lines.extend(
        _grid(
            [
                "Mã",
                "Đơn vị",
                "Hồ sơ",
                "Đã gửi",
                "Trả lời",
                "Tỷ lệ TL",
                "SIPAS",
                "TB đơn vị",
                "Hài lòng",
                "KTC 95%",
                "HL 766",
                "Đúng hạn",
                "Hạng",
            ],
            main,
        )
    )
    lines.append("")
    lines.append("Chỉ số theo yếu tố (%):")
    lines.extend(_grid(["Mã", "Đơn vị", *(ELEMENT_SHORT[code] for code in ELEMENTS)], elements))
    lines.append("")
    legend = [f"{ELEMENT_SHORT[code]} = {ELEMENT_NAMES[code]}" for code in ELEMENTS]
    lines.append("  " + "; ".join(legend[:3]) + ";")
    lines.append("  " + "; ".join(legend[3:]) + ".")
    lines.append(
        f"  * dưới {report.minimum} câu trả lời hợp lệ cho câu hỏi hài lòng chung: "
        "vẫn tính và hiển thị, không xếp hạng."
    )
    lines.append(
        "  Hài lòng = tỷ lệ hài lòng chung (mức 4–5), KTC 95% = khoảng tin cậy Wilson; "
        "HL 766 = tỷ lệ hài lòng theo QĐ 766/QĐ-TTg;"
    )
    lines.append("  TB đơn vị = trung bình cộng chỉ số SIPAS của các đơn vị trực thuộc.")
    lines.append("  Hạng: khoảng hạng theo khoảng tin cậy (3–5 = có thể từ hạng 3 đến hạng 5).")
    lines.append("")
    lines.append("Phiếu khảo sát theo trạng thái (mọi kênh):")
    lines.extend(_grid(["Mã", "Đơn vị", *FUNNEL_NAMES.values()], funnel))
    if flags:
        lines.append("")
        lines.append("Dấu hiệu bất thường:")
        lines.extend(flags)
    return "\n".join(lines) + "\n"


def _vietnamese(text: str, **values: object) -> str:
    return text.format(**values) if values else text


def flag_text(
    flag: Mapping[str, Any], translate: Callable[..., str] = _vietnamese, *, decimal_comma: bool = True
) -> str:
    """One anomaly flag in a sentence, for the table, the digest and the workbook: Vietnamese, or
    through `translate` (the pages' catalogue, bot.web.i18n, which holds these sentences)."""
    kind = flag["kind"]
    name = translate(FLAG_NAMES.get(kind, kind))

    def num(value: float) -> str:
        return format_number(float(value), lang="vi" if decimal_comma else "en")

    if kind == "fast_answers":
        return translate(
            "{name}: {surveys}/{answered} phiếu trả lời trong {seconds} giây",
            name=name, surveys=flag["surveys"], answered=flag["answered"], seconds=f"{flag['seconds']:.0f}",
        )  # fmt: skip
    if kind == "identical_answers":
        return translate(
            "{name}: {surveys} phiếu giống nhau ({answers}) từ {phones} số",
            name=name, surveys=flag["surveys"], answers=flag["answers"], phones=flag["phones"],
        )  # fmt: skip
    if kind == "index_jump":
        sentence = "{name}: tăng từ {before} lên {after}" if flag["direction"] == "up" else (
            "{name}: giảm từ {before} xuống {after}"
        )  # fmt: skip
        return translate(sentence, name=name, before=num(flag["baseline"]), after=num(flag["index"]))
    if kind == "repeat_phone":
        return translate("{name}: {surveys} phiếu không tính lại", name=name, surveys=flag["surveys"])
    return str(name)


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; the first two (code, name) left-aligned, figures right."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(width) if column < 2 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]


def format_number(value: float | None, digits: int = 2, lang: str = "vi", *, signed: bool = False) -> str:
    """A number as its readers write it: Vietnamese 1.234,56 (decimal comma, dots between
    thousands), English 1,234.56; floats with `digits` decimals, `signed` puts + before a rise;
    "—" for no data. The one formatter of pages, charts, digests and the `scores show` table."""
    if value is None:
        return NONE
    sign = "+" if signed else ""
    text = f"{value:{sign},.{digits}f}" if isinstance(value, float) else f"{value:{sign},}"
    if lang == "vi":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


def _vn_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")
