"""Published flow versions: immutable numbered versions, what is live per agency and channel,
`sipas flows publish|list`, and a running survey keeping its version (end to end through intake
and the survey service, on both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings
from flows.definition import FlowError
from flows.intake import submit_cases
from flows.loading import FLOWS_DIR, load_flow
from flows.survey import handle_reply, start_survey
from flows.survey_rows import lock_survey
from flows.versions import SHIPPED_BY, live_version, load_version, publish
from storage.crypto import PhoneVault
from storage.db import transaction
from storage.models import (
    Agency,
    AgencyLevel,
    Answer,
    Channel,
    FlowAssignment,
    FlowVersion,
    OutboundMessage,
    Survey,
)
from storage.outbox import write_staged
from workers.cli import cli

NOW = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 10:00 in Ha Noi
SMS_FLOW = FLOWS_DIR / "sipas-sms.yaml"
V1_Q2 = "Cau {number}/{total}: Ong/Ba hai long ve cong chuc (lich su, huong dan ro rang)? Tra loi: {scale}"
V2_Q2 = "Cau {number}/{total}: Can bo tiep Ong/Ba co lich su, huong dan de hieu khong? Tra loi: {scale}"


@pytest.fixture
def changed_flow(tmp_path: Path) -> Path:
    """sipas-sms with another wording of question 2 (what staff would publish as version 2)."""
    text = SMS_FLOW.read_text(encoding="utf-8")
    assert V1_Q2 in text
    path = tmp_path / "sipas-sms-v2.yaml"
    path.write_text(text.replace(V1_Q2, V2_Q2), encoding="utf-8")
    return path


def _make_agencies(url: str) -> dict[str, int]:
    with transaction(url) as session:
        rows = [
            Agency(code="HN-TX-HD", name="UBND phường Hạ Đình", level=AgencyLevel.COMMUNE),
            Agency(code="HN-TX-KM", name="UBND phường Khương Mai", level=AgencyLevel.COMMUNE),
        ]
        session.add_all(rows)
        session.flush()
        return {a.code: a.id for a in rows}


@pytest.fixture
def agencies(db_url: str) -> dict[str, int]:
    return _make_agencies(db_url)


def _publish(url: str, path: Path, agency: str | None = None, channels: list[Channel] | None = None) -> Any:
    with transaction(url) as session:
        scope = session.scalar(select(Agency).where(Agency.code == agency)) if agency else None
        flow = load_flow(path)
        return publish(
            session,
            flow,
            path.read_text(encoding="utf-8"),
            agency=scope,
            channels=channels,
            by="staff",
            now=NOW,
        )


def _count(session: Session, model: type[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_publish_numbers_versions_and_stores_the_same_content_once(
    any_db_url: str, changed_flow: Path
) -> None:
    first = _publish(any_db_url, SMS_FLOW)
    assert (first.name, first.version, first.created, first.made_live) == (
        "sipas-sms",
        1,
        True,
        (Channel.SMS,),
    )
    again = _publish(any_db_url, SMS_FLOW)
    assert (again.version, again.created, again.made_live, again.already_live) == (
        1,
        False,
        (),
        (Channel.SMS,),
    )
    second = _publish(any_db_url, changed_flow)
    assert (second.version, second.created) == (2, True)
    back = _publish(any_db_url, SMS_FLOW)  # the old content again: live again, not stored again
    assert (back.version, back.created, back.made_live) == (1, False, (Channel.SMS,))
    with transaction(any_db_url) as session:
        versions = session.scalars(select(FlowVersion).order_by(FlowVersion.version)).all()
        assert [(v.name, v.version, v.published_by) for v in versions] == [
            ("sipas-sms", 1, "staff"),
            ("sipas-sms", 2, "staff"),
        ]
        assert versions[0].source == SMS_FLOW.read_text(encoding="utf-8")  # comments and all
        assert versions[0].definition["version"] == 1
        assert versions[1].definition["questions"][1]["text"]["vi"] == V2_Q2
        assert versions[0].checksum != versions[1].checksum
        assert live_version(session, None, Channel.SMS, NOW).version == 1
        assert _count(session, FlowAssignment) == 3  # history: v1, v2, v1 again


def test_formatting_and_comments_do_not_make_a_new_version(db_url: str, tmp_path: Path) -> None:
    _publish(db_url, SMS_FLOW)
    reformatted = tmp_path / "sipas-sms.yaml"
    text = SMS_FLOW.read_text(encoding="utf-8")
    reformatted.write_text(
        "# reviewed by the centre\n" + text.replace("max_reprompts: 1\n", ""), encoding="utf-8"
    )
    result = _publish(db_url, reformatted)  # max_reprompts: 1 is the default: same content
    assert (result.version, result.created) == (1, False)


def test_live_version_per_agency_and_channel(
    db_url: str, changed_flow: Path, agencies: dict[str, int]
) -> None:
    _publish(db_url, SMS_FLOW)
    _publish(db_url, changed_flow, agency="HN-TX-HD")
    _publish(db_url, FLOWS_DIR / "sipas-zalo.yaml")
    with transaction(db_url) as session:
        hd, km = agencies["HN-TX-HD"], agencies["HN-TX-KM"]
        assert live_version(session, hd, Channel.SMS, NOW).version == 2
        assert live_version(session, km, Channel.SMS, NOW).version == 1  # the default
        zalo = live_version(session, hd, Channel.ZALO, NOW)
        assert (zalo.name, zalo.version) == ("sipas-zalo", 1)
        # An agency's channel rule that names another flow gets that flow's newest version.
        assert live_version(session, km, Channel.SMS, NOW, configured_name="sipas-zalo").name == "sipas-zalo"


def test_publishing_on_a_channel_the_flow_has_no_texts_for_is_refused(db_url: str) -> None:
    path = Path(__file__).parent / "data" / "valid-multi.yaml"
    with pytest.raises(FlowError, match="has no zalo texts"):
        _publish(db_url, path, channels=[Channel.ZALO])
    with transaction(db_url) as session:
        assert _count(session, FlowVersion) == 0


def test_nothing_published_stores_the_shipped_default_at_first_use(
    db_url: str, agencies: dict[str, int]
) -> None:
    with transaction(db_url) as session:
        first = live_version(session, agencies["HN-TX-HD"], Channel.SMS, NOW)
        assert (first.name, first.version, first.published_by) == ("sipas-sms", 1, SHIPPED_BY)
        assert live_version(session, agencies["HN-TX-KM"], Channel.SMS, NOW).id == first.id
        assert _count(session, FlowVersion) == 1
        assert _count(session, FlowAssignment) == 1


def test_load_version_gives_exactly_the_stored_version(db_url: str, changed_flow: Path) -> None:
    _publish(db_url, SMS_FLOW)
    _publish(db_url, changed_flow)
    with transaction(db_url) as session:
        assert load_version(session, "sipas-sms", 1).question("cong_chuc").text["vi"] == V1_Q2
        assert load_version(session, "sipas-sms", 2).question("cong_chuc").text["vi"] == V2_Q2
        with pytest.raises(FlowError, match="sipas-sms version 9 is not stored"):
            load_version(session, "sipas-sms", 9)
    with transaction(db_url) as session:  # surveys made before versions were stored
        assert load_version(None, "sipas-zalo", 1).id == "sipas-zalo"


def _submit(url: str, vault: PhoneVault, settings: Settings, case_id: str, phone: str) -> int:
    case = {
        "case_id": case_id,
        "agency_code": "HN-TX-HD",
        "procedure_code": "1.001612",
        "phone": phone,
        "closed_at": (NOW - timedelta(hours=1)).isoformat(),
    }
    with transaction(url) as session:
        [outcome] = submit_cases(session, vault, settings, [case], NOW)
    assert outcome.survey_id is not None, outcome
    return outcome.survey_id


def _reply(url: str, survey_id: int, text: str) -> list[str]:
    with transaction(url) as session:
        survey = lock_survey(session, survey_id)
        assert survey is not None
        handle_reply(session, survey, text, None, NOW)
        return [session.get_one(OutboundMessage, i).text for i in write_staged(session)]


def test_a_running_survey_keeps_its_version_when_a_new_one_is_published(
    any_db_url: str,
    settings: Settings,
    vault: PhoneVault,
    changed_flow: Path,
) -> None:
    _make_agencies(any_db_url)
    settings = settings.model_copy(update={"DATABASE_URL": any_db_url})
    running = _submit(any_db_url, vault, settings, "HD-1", "0912345678")  # v1: the shipped default
    with transaction(any_db_url) as session:
        start_survey(session, settings, running, NOW)
        survey = session.get_one(Survey, running)
        assert (survey.flow_name, survey.flow_version) == ("sipas-sms", 1)

    published = _publish(any_db_url, changed_flow)
    assert (published.version, published.made_live) == (2, (Channel.SMS,))

    # The running survey goes on with version 1's wording, and its answers say so.
    [question_2] = _reply(any_db_url, running, "5")
    assert question_2.startswith("Cau 2/3: Ong/Ba hai long ve cong chuc (lich su, huong dan ro rang)?")
    # A new survey gets version 2.
    new = _submit(any_db_url, vault, settings, "HD-2", "0987654321")
    with transaction(any_db_url) as session:
        start_survey(session, settings, new, NOW)
        assert session.get_one(Survey, new).flow_version == 2
    [new_question_2] = _reply(any_db_url, new, "4")
    assert new_question_2.startswith("Cau 2/3: Can bo tiep Ong/Ba co lich su, huong dan de hieu khong?")

    _reply(any_db_url, running, "4")
    with transaction(any_db_url) as session:
        answers = session.scalars(select(Answer).order_by(Answer.survey_id, Answer.id)).all()
        assert [(a.survey_id, a.flow_name, a.flow_version, a.question_key, a.value) for a in answers] == [
            (running, "sipas-sms", 1, "overall", 5),
            (running, "sipas-sms", 1, "cong_chuc", 4),
            (new, "sipas-sms", 2, "overall", 4),
        ]


def _cli(url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("DATABASE_URL", url)
    return CliRunner().invoke(cli, ["flows", *args])


def test_cli_publish_and_list(
    db_url: str, monkeypatch: pytest.MonkeyPatch, changed_flow: Path, agencies: dict[str, int]
) -> None:
    listed = _cli(db_url, monkeypatch, "list")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[:2] == ["Versions", "  none published yet"]
    assert "default  sms      sipas-sms   -        at first survey  shipped file" in listed.stdout

    first = _cli(db_url, monkeypatch, "publish", str(SMS_FLOW), "--by", "lan")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        "sipas-sms: stored as version 1",
        "sipas-sms v1 is now live for default on sms",
    ]
    same = _cli(db_url, monkeypatch, "publish", str(SMS_FLOW), "--by", "lan")
    assert same.stdout.splitlines() == [
        "sipas-sms: same content as version 1, no new version",
        "sipas-sms v1 was already live for default on sms",
    ]
    agency = _cli(db_url, monkeypatch, "publish", str(changed_flow), "--agency", "HN-TX-HD", "--by", "minh")
    assert agency.stdout.splitlines() == [
        "sipas-sms: stored as version 2",
        "sipas-sms v2 is now live for HN-TX-HD on sms",
    ]
    both = _cli(
        db_url,
        monkeypatch,
        "publish",
        str(FLOWS_DIR / "sipas-zalo.yaml"),
        "--channel",
        "zalo",
        "--channel",
        "sms",
        "--agency",
        "HN-TX-KM",
    )
    assert both.exit_code == 0, both.output
    assert both.stdout.splitlines()[1:] == [
        "sipas-zalo v1 is now live for HN-TX-KM on zalo",
        "sipas-zalo v1 is now live for HN-TX-KM on sms",
    ]

    listed = _cli(db_url, monkeypatch, "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0] == "Versions"
    assert lines[1].split() == ["FLOW", "VERSION", "PUBLISHED", "BY", "CHECKSUM", "LIVE", "FOR"]
    first_row = lines[2].split()  # FLOW VERSION DAY TIME BY CHECKSUM LIVE-FOR
    assert (first_row[0], first_row[1], first_row[4], len(first_row[5])) == ("sipas-sms", "1", "lan", 12)
    assert lines[2].endswith("default/sms")
    assert lines[3].split()[0:2] == ["sipas-sms", "2"]
    assert lines[3].endswith("HN-TX-HD/sms")
    assert lines[4].endswith("HN-TX-KM/sms, HN-TX-KM/zalo")
    assert lines[5] == "Live for new surveys"
    table = [line.split()[:4] for line in lines[6:-1]]
    assert table == [
        ["SCOPE", "CHANNEL", "FLOW", "VERSION"],
        ["default", "sms", "sipas-sms", "1"],
        ["HN-TX-HD", "sms", "sipas-sms", "2"],
        ["HN-TX-KM", "sms", "sipas-zalo", "1"],
        ["HN-TX-KM", "zalo", "sipas-zalo", "1"],
        ["default", "zalo", "sipas-zalo", "-"],  # nothing published: the shipped file at first use
    ]


def test_cli_publish_refuses_bad_files_and_unknown_agencies(
    db_url: str, monkeypatch: pytest.MonkeyPatch, agencies: dict[str, int]
) -> None:
    broken = _cli(
        db_url, monkeypatch, "publish", str(Path(__file__).parent / "data" / "invalid" / "loop.yaml")
    )
    assert broken.exit_code == 1
    assert "loop without exit" in broken.stderr
    assert "nothing published" in broken.stderr
    unknown = _cli(db_url, monkeypatch, "publish", str(SMS_FLOW), "--agency", "NOPE")
    assert unknown.exit_code == 1
    assert "no agency with code 'NOPE'" in unknown.stderr
    with transaction(db_url) as session:
        assert _count(session, FlowVersion) == 0
