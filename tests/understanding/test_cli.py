"""`sipas flows parse KIND`: replies on stdin, one JSON object a line out (contract.md, CLI)."""

from __future__ import annotations

import json
import unicodedata

from click.testing import CliRunner

from workers.cli import cli


def _run(*args: str, stdin: bytes) -> tuple[int, list[dict[str, object]]]:
    result = CliRunner().invoke(cli, ["flows", "parse", *args], input=stdin)
    return result.exit_code, [json.loads(line) for line in result.output.splitlines()]


def test_parse_scale_prints_one_object_a_line() -> None:
    nfd = unicodedata.normalize("NFD", "bốn")
    replies = ["5", "Rat hai long a", "TC", "không", "3 hoặc 4", "HD", "", nfd]
    code, lines = _run("scale5", stdin="\n".join(replies).encode())
    assert code == 0
    assert lines == [
        {"text": "5", "understood": True, "value": 5, "keyword": None},
        {"text": "Rat hai long a", "understood": True, "value": 5, "keyword": None},
        {"text": "TC", "understood": True, "value": None, "keyword": "opt_out"},
        {"text": "không", "understood": False, "value": None, "keyword": None},
        {"text": "3 hoặc 4", "understood": False, "value": None, "keyword": None},
        {"text": "HD", "understood": True, "value": None, "keyword": "help"},
        {"text": "", "understood": False, "value": None, "keyword": None},
        {"text": "bốn", "understood": True, "value": 4, "keyword": None},
    ]


def test_parse_keeps_vietnamese_readable_and_handles_windows_files() -> None:
    result = CliRunner().invoke(cli, ["flows", "parse", "yesno"], input="\ufeffCó ạ\r\nlại\r\n".encode())
    assert result.exit_code == 0
    assert '"text": "Có ạ"' in result.output  # ensure_ascii=False
    assert [json.loads(line) for line in result.output.splitlines()] == [
        {"text": "Có ạ", "understood": True, "value": 1, "keyword": None},
        {"text": "lại", "understood": True, "value": None, "keyword": "restart"},
    ]


def test_parse_choice_and_the_options_of_a_question() -> None:
    code, lines = _run("choice5", "--verbose", stdin="số 3\n6\n".encode())
    assert code == 0
    assert lines[0]["value"] == 3
    assert lines[0]["values"] == [3]
    assert (lines[1]["understood"], lines[1]["reason"]) == (False, "out_of_range")
    options = ["--max-answers", "3", "--question-number", "1", "-v"]
    code, lines = _run("scale5", *options, stdin=b"5 4 5\ncau 2: 4\n")
    assert code == 0
    assert lines[0]["values"] == [5, 4, 5]
    assert lines[1]["reason"] == "other_question"


def test_parse_reports_bad_encoding_and_goes_on() -> None:
    code, lines = _run("scale5", stdin=b"5\n\xff\xfe4\n4\n")
    assert code == 1
    assert lines == [
        {"text": "5", "understood": True, "value": 5, "keyword": None},
        {"error": "bad_encoding", "message": "line 2 is not valid UTF-8", "line": 2},
        {"text": "4", "understood": True, "value": 4, "keyword": None},
    ]


def test_parse_rejects_an_unknown_kind() -> None:
    result = CliRunner().invoke(cli, ["flows", "parse", "stars"], input=b"5\n")
    assert result.exit_code == 2
    assert "stars" in result.output


def test_parse_takes_the_wording_of_the_question() -> None:
    names = ["--option", "Tiếp cận dịch vụ", "--option", "Thủ tục hành chính", "--option", "Công chức"]
    code, lines = _run("choice5", *names, stdin=b"thu tuc\n")
    assert (code, lines[0]["value"]) == (0, 2)
    asked_money = ["--yes-digit", "2", "--yes-is-bad"]
    code, lines = _run("yesno", *asked_money, stdin="2\nCó, họ đòi thêm tiền\n".encode())
    assert code == 0
    assert [line["value"] for line in lines] == [1, 1]
    code, lines = _run("yesno", stdin="Có, họ đòi thêm tiền\n".encode())
    assert lines[0]["understood"] is False
