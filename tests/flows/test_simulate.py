"""`sipas flows simulate` (contract.md, CLI): the default flows on both channels in both languages
against golden output (read and checked by hand: see tests/flows/data/simulate/), files, published
versions, and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from flows.loading import FLOWS_DIR, load_flow
from flows.versions import publish
from workers.cli import cli

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "simulate"
# The replies each golden file was made from: help, a re-ask, the branch, a choice, a comment,
# chatter after the end and a refusal (SMS flow); a star rating and the yes/no integrity
# question offered as "1 Khong, 2 Co" (Zalo flow: "1" records no = 2).
SCRIPTS = {
    "sipas-sms": ["2", "HD", "4", "khong biet", "3", "2", "Phải chờ lâu quá, 3 lần mới xong", "cảm ơn", "TC"],
    "sipas-zalo": ["4", "5", "abc", "4 sao", "2", "Cán bộ nhiệt tình, chu đáo", "1"],
}
KEYS = ["reply", "understood", "question", "value", "keyword", "reason", "messages", "state"]


@pytest.fixture(autouse=True)
def database(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Names are looked up among published versions first: an empty, migrated database."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    return db_url


def _simulate(*args: str, replies: list[str]) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(cli, ["flows", "simulate", *args], input="".join(f"{r}\n" for r in replies))
    return result.exit_code, [json.loads(line) for line in result.stdout.splitlines()], result.stderr


@pytest.mark.parametrize("language", ["vi", "en"])
@pytest.mark.parametrize("channel", ["sms", "zalo"])
@pytest.mark.parametrize("flow", ["sipas-sms", "sipas-zalo"])
def test_default_flows_match_their_golden_output(flow: str, channel: str, language: str) -> None:
    code, lines, stderr = _simulate(flow, "--channel", channel, "--lang", language, replies=SCRIPTS[flow])
    assert code == 0, stderr
    assert stderr.strip() == f"simulating shipped {flow} (config/flows/{flow}.yaml)"
    golden = GOLDEN / f"{flow}.{channel}.{language}.jsonl"
    expected = [json.loads(line) for line in golden.read_text(encoding="utf-8").splitlines()]
    assert lines == expected
    opening, *answers = lines
    assert list(opening) == ["messages", "state"]
    assert opening["state"] == "overall"
    assert len(answers) == len(SCRIPTS[flow])
    assert all(list(line) == KEYS for line in answers)
    assert [line["reply"] for line in answers] == SCRIPTS[flow]


# Goldens of the progress wording (issue 11): the count is a range while a branch may still add
# questions ("3-5 cau", "Cau 1/3-5"), and exact once it is decided ("Cau 2/3" for a satisfied
# citizen; "Cau 2/5" above for an unsatisfied one). (name, flow, replies), SMS in vi and en.
PROGRESS = [
    ("sipas-sms.satisfied", "sipas-sms", ["5", "4", "5"]),
    ("valid-branching.unsatisfied", str(DATA / "valid-branching.yaml"), ["2", "abc", "3", "2", "Lau qua"]),
]


@pytest.mark.parametrize("language", ["vi", "en"])
@pytest.mark.parametrize(("name", "flow", "replies"), PROGRESS)
def test_progress_goldens(name: str, flow: str, replies: list[str], language: str) -> None:
    code, lines, stderr = _simulate(flow, "--channel", "sms", "--lang", language, replies=replies)
    assert code == 0, stderr
    golden = GOLDEN / f"{name}.sms.{language}.jsonl"
    assert lines == [json.loads(line) for line in golden.read_text(encoding="utf-8").splitlines()]


def test_the_count_is_a_range_until_the_branch_is_decided() -> None:
    def texts(name: str) -> list[str]:
        lines = [json.loads(x) for x in (GOLDEN / name).read_text(encoding="utf-8").splitlines()]
        return [message for line in lines for message in line["messages"]]

    unsatisfied, satisfied = texts("sipas-sms.sms.vi.jsonl"), texts("sipas-sms.satisfied.sms.vi.jsonl")
    for conversation in (unsatisfied, satisfied):
        assert ": 3-5 cau, tu nguyen" in conversation[0]  # the opening promises no fixed count
        assert conversation[1].startswith("Cau 1/3-5: ")
    assert [t[:8] for t in satisfied[2:4]] == ["Cau 2/3:", "Cau 3/3:"]
    assert [t[:8] for t in unsatisfied[2:3]] == ["Cau 2/5:"]
    english = texts("sipas-sms.satisfied.sms.en.jsonl")
    assert ": 3-5 questions, voluntary" in english[0]
    assert english[1].startswith("Q1/3-5: ")


def test_golden_values_follow_the_contract() -> None:
    """What the goldens say, spelt out: the branch opens on overall 2, help and re-asks keep the
    question, free text is a string, yes/no records no as 2, refusal ends in opted_out."""
    sms = [
        json.loads(x) for x in (GOLDEN / "sipas-sms.sms.vi.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [(x.get("question"), x.get("value"), x["state"]) for x in sms[1:]] == [
        ("overall", 2, "cong_chuc"),
        ("cong_chuc", None, "cong_chuc"),  # HD
        ("cong_chuc", 4, "ket_qua"),
        ("ket_qua", None, "ket_qua"),  # khong biet: re-asked
        ("ket_qua", 3, "worst_element"),  # overall was 2: which element was worst?
        ("worst_element", 2, "comment"),
        ("comment", "Phải chờ lâu quá, 3 lần mới xong", "done"),
        (None, None, "done"),  # after the end: kept, not answered
        (None, None, "opted_out"),
    ]
    assert sms[2]["keyword"] == "help"
    assert sms[-1]["keyword"] == "opt_out"
    zalo = [
        json.loads(x) for x in (GOLDEN / "sipas-zalo.zalo.vi.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [(x["question"], x["value"]) for x in zalo[1:] if x["understood"]] == [
        ("overall", 4),
        ("cong_chuc", 5),
        ("ket_qua", 4),
        ("worst_element", 2),
        ("comment", "Cán bộ nhiệt tình, chu đáo"),
        ("nhung_nhieu", 2),  # "1 Khong" -> no = 2
    ]
    assert zalo[-1]["state"] == "done"


def test_high_overall_skips_the_branch_on_sms() -> None:
    code, lines, _ = _simulate("sipas-sms", replies=["5", "5", "4"])
    assert code == 0
    assert [line["state"] for line in lines] == ["overall", "cong_chuc", "ket_qua", "done"]


def test_a_file_is_simulated_before_publishing_with_several_answers() -> None:
    code, lines, stderr = _simulate(str(DATA / "valid-multi.yaml"), replies=["5 4 5", "co"])
    assert code == 0
    assert stderr.strip() == f"simulating file {DATA / 'valid-multi.yaml'}"
    assert lines[1] == {
        "reply": "5 4 5",
        "understood": True,
        "question": "overall",
        "value": 5,
        "keyword": None,
        "reason": None,
        "messages": ["Dung hen? 1 Co, 2 Khong"],
        "state": "on_time",
        "answers": {"overall": 5, "cong_chuc": 4, "ket_qua": 5},
    }
    assert (lines[2]["value"], lines[2]["state"]) == (1, "done")


def test_a_published_name_runs_its_newest_version_or_the_one_asked(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    changed = tmp_path / "sipas-sms.yaml"
    changed.write_text(
        (FLOWS_DIR / "sipas-sms.yaml")
        .read_text(encoding="utf-8")
        .replace(
            "Cau {number}/{total}: Ong/Ba hai long the nao", "Cau {number}/{total}: Ong/Ba thay the nao"
        ),
        encoding="utf-8",
    )
    now = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    with sessions() as session, session.begin():
        for path in (FLOWS_DIR / "sipas-sms.yaml", changed):
            publish(
                session,
                load_flow(path),
                path.read_text(encoding="utf-8"),
                agency=None,
                channels=None,
                by="t",
                now=now,
            )
    code, lines, stderr = _simulate("sipas-sms", replies=[])
    assert (code, stderr.strip()) == (0, "simulating sipas-sms v2")
    assert lines[0]["messages"][1].startswith("Cau 1/3-5: Ong/Ba thay the nao")
    code, lines, stderr = _simulate("sipas-sms", "--version", "1", replies=[])
    assert (code, stderr.strip()) == (0, "simulating sipas-sms v1")
    assert lines[0]["messages"][1].startswith("Cau 1/3-5: Ong/Ba hai long the nao")
    code, _lines, stderr = _simulate("sipas-sms", "--version", "7", replies=[])
    assert code == 1
    assert "has no version 7" in stderr


def test_bad_input_is_reported() -> None:
    result = CliRunner().invoke(cli, ["flows", "simulate", "sipas-sms"], input=b"5\n\xff\xfe\n4\n")
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[2] == {"error": "bad_encoding", "message": "line 2 is not valid UTF-8", "line": 2}
    assert (lines[1]["value"], lines[3]["value"]) == (5, 4)
    unknown = CliRunner().invoke(cli, ["flows", "simulate", "sipas-nothing"], input="")
    assert unknown.exit_code == 1
    assert "no published or shipped flow named 'sipas-nothing'" in unknown.stderr
    broken = CliRunner().invoke(cli, ["flows", "simulate", str(DATA / "invalid" / "loop.yaml")], input="")
    assert broken.exit_code == 1
    assert "loop.yaml:22: questions.0: loop without exit" in broken.stderr
    no_zalo = CliRunner().invoke(
        cli, ["flows", "simulate", str(DATA / "valid-multi.yaml"), "--channel", "zalo"]
    )
    assert no_zalo.exit_code == 1
    assert "has no zalo texts" in no_zalo.stderr
