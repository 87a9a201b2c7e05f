"""`sipas flows validate`: every problem of a flow file, each on the line it is written on.

The broken files in tests/flows/data/invalid/ mark each line that must be reported with
`# ERROR: <words>`; a file passes only when every marked line is reported with those words and no
other line is reported.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from flows.loading import FLOWS_DIR, check_source, read_flow_file
from workers.cli import cli

DATA = Path(__file__).parent / "data"
INVALID = sorted((DATA / "invalid").glob("*.yaml"))
_MARK = re.compile(r"#\s*ERROR:\s*(.+)$")


def _marked(path: Path) -> dict[int, str]:
    marks = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        found = _MARK.search(line)
        if found and number > 2:  # the header explains the marks
            marks[number] = found.group(1).strip()
    return marks


def test_every_error_class_has_a_fixture() -> None:
    names = {path.stem for path in INVALID}
    assert {
        "unknown-criterion",
        "unreachable",
        "loop",
        "accented",
        "too-long",
        "missing-translation",
        "bad-kind",
        "duplicate-key",
        "unknown-placeholder",
        "conditions",
        "many-errors",
        "not-yaml",
    } <= names


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_each_error_is_reported_on_its_line(path: Path) -> None:
    marks = _marked(path)
    assert marks, f"{path.name} marks no error"
    report = read_flow_file(path)
    assert report.flow is None
    reported: dict[int, list[str]] = {}
    for issue in report.issues:
        assert issue.line is not None, issue
        reported.setdefault(issue.line, []).append(issue.message)
    assert set(reported) == set(marks), (report.describe(), marks)
    for line, words in marks.items():
        assert any(words in message for message in reported[line]), (line, words, reported[line])


def test_many_errors_are_all_reported_at_once() -> None:
    report = read_flow_file(DATA / "invalid" / "many-errors.yaml")
    assert len(report.issues) >= 5
    assert [issue.line for issue in report.issues] == sorted(issue.line or 0 for issue in report.issues)


@pytest.mark.parametrize(
    "path",
    [*sorted(FLOWS_DIR.glob("*.yaml")), DATA / "valid-branching.yaml", DATA / "valid-multi.yaml"],
    ids=lambda p: p.stem,
)
def test_shipped_and_test_flows_are_valid(path: Path) -> None:
    report = read_flow_file(path)
    assert report.ok, report.describe()


def test_cli_prints_file_line_and_reason_and_exits_1() -> None:
    path = DATA / "invalid" / "unknown-criterion.yaml"
    result = CliRunner().invoke(cli, ["flows", "validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}:28: questions.1.criterion: unknown criterion 'can_bo.lich_su': a scale5 question "
        "measures overall, an element (tiep_can, thu_tuc, cong_chuc, ket_qua, phan_anh) or "
        "<element>.<criterion>"
    ]
    assert result.stderr.strip() == f"{path}: 1 error"


def test_cli_ok_summary_and_exit_0() -> None:
    path = FLOWS_DIR / "sipas-sms.yaml"
    result = CliRunner().invoke(cli, ["flows", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"OK {path}: flow sipas-sms: 5 questions (overall, cong_chuc, ket_qua, worst_element (when ...), "
        "comment (when ...)); made for sms, texts for sms, zalo; languages vi, en\n"
    )


def test_cli_checks_several_files_and_fails_if_any_fails(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    result = CliRunner().invoke(
        cli,
        [
            "flows",
            "validate",
            str(FLOWS_DIR / "sipas-zalo.yaml"),
            str(DATA / "invalid" / "loop.yaml"),
            str(missing),
        ],
    )
    assert result.exit_code == 1
    assert result.stdout.startswith(f"OK {FLOWS_DIR / 'sipas-zalo.yaml'}: flow sipas-zalo: 6 questions")
    assert "loop.yaml:22: questions.0: loop without exit: overall -> staff -> overall" in result.stdout
    assert f"{missing}: cannot read" in result.stdout


def test_duplicate_keys_are_found_anywhere_in_the_file() -> None:
    text = (DATA / "valid-branching.yaml").read_text(encoding="utf-8")
    text = text.replace("channel: sms\n", "channel: sms\nchannel: zalo\n", 1)
    report = check_source(text, "dup.yaml")
    assert [(issue.line, issue.where) for issue in report.issues] == [(5, "channel")]
    assert "duplicate key 'channel'" in report.issues[0].message


def test_structure_errors_are_all_listed_with_their_lines() -> None:
    text = (DATA / "valid-branching.yaml").read_text(encoding="utf-8")
    text = text.replace("channel: sms", "channel: fax").replace("kind: text", "kind: essay")
    text = text.replace("  reprompt: {vi:", "  reprompts: {vi:")
    report = check_source(text, "structure.yaml")
    found = {(issue.line, issue.where) for issue in report.issues}
    assert found == {
        (4, "channel"),
        (13, "messages.reprompt"),  # the required one is missing (reported on `messages:`)...
        (15, "messages.reprompts"),  # ...and the misspelt one is unknown
        (38, "questions.3.kind"),
    }, report.describe()


def test_lengths_are_measured_on_every_path_with_its_own_numbers() -> None:
    """A text asked only on a branch is measured on that branch, with the count shown there; the
    issue says which path (issue 11: every path of every flow, in vi and en)."""
    source = (DATA / "valid-branching.yaml").read_text(encoding="utf-8")
    long_en = "Q{number}/{total}: worst? " + "x" * 150 + " {scale}"
    source = source.replace('en: "Q{number}/{total}: worst? {scale}"', f'en: "{long_en}"')
    assert long_en in source
    report = check_source(source, "branch.yaml")
    assert report.flow is None
    [issue] = report.issues
    assert issue.where == "questions.2.text.en"
    assert "SMS too long" in issue.message
    assert "at question 'worst', on the path overall -> staff -> worst with overall=1" in issue.message
