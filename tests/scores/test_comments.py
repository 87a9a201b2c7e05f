"""Supervisors read citizens' own words with personal numbers masked, per unit and period."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from config.settings import get_settings
from flows.scores.comments import load_comments
from flows.scores.periods import parse_period
from storage.db import session_factory
from storage.models import AgencyLevel, Answer, Comment, SurveyStatus
from tests.conftest import SECRET_KEY
from tests.scores.factories import make_agency, make_case, make_survey
from workers.cli import cli

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def _seed(session: Session) -> None:
    district = make_agency(session, "TX", level=AgencyLevel.DISTRICT, name="UBND quận Thanh Xuân")
    ward = make_agency(session, "TX-HD", parent=district, name="UBND phường Hạ Đình")
    other = make_agency(session, "CG", level=AgencyLevel.DISTRICT, name="UBND quận Cầu Giấy")
    closed = datetime(2026, 11, 20, 9, 0, tzinfo=HCM)
    survey = make_survey(session, make_case(session, ward, closed))
    session.add(Answer(survey_id=survey.id, flow_name="sipas-zalo", flow_version=1, question_key="comment",
                       text_value="Cán bộ nhiệt tình, gọi tôi 0912 345 678", raw_text="x",
                       answered_at=datetime(2026, 11, 20, 3, 0, tzinfo=UTC)))  # fmt: skip
    session.add(Comment(survey_id=survey.id, question_key="overall", text="5 nhưng CCCD 001203004567 bị giữ",
                        created_at=datetime(2026, 11, 20, 2, 0, tzinfo=UTC)))  # fmt: skip
    refused = make_survey(session, make_case(session, ward, closed), status=SurveyStatus.OPTED_OUT)
    session.add(Comment(survey_id=refused.id, text="đừng nhắn nữa", created_at=datetime.now(UTC)))
    elsewhere = make_survey(session, make_case(session, other, closed))
    session.add(Comment(survey_id=elsewhere.id, text="chậm", created_at=datetime.now(UTC)))
    late = make_survey(session, make_case(session, ward, datetime(2026, 11, 22, 9, 0, tzinfo=HCM)))
    session.add(Comment(survey_id=late.id, text="ngoài kỳ", created_at=datetime.now(UTC)))


def test_comments_are_masked_and_scoped(any_db_url: str) -> None:
    sessions = session_factory(any_db_url)
    with sessions() as session, session.begin():
        _seed(session)
    with sessions() as session:
        rows = load_comments(session, parse_period("2026-11-20"), HCM, "TX")
    assert [r.text for r in rows] == ["5 nhưng CCCD [CCCD] bị giữ", "Cán bộ nhiệt tình, gọi tôi [SĐT]"]
    assert rows[0].written_at.utcoffset() is not None
    assert rows[0].written_at.hour == 9
    assert {r.agency_code for r in rows} == {"TX-HD"}


def test_comments_command(
    db_url: str, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    with sessions() as session, session.begin():
        _seed(session)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SIPAS_SECRET_KEY", SECRET_KEY)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        table = runner.invoke(cli, ["scores", "comments", "--period", "2026-11-20"])
        as_json = runner.invoke(cli, ["scores", "comments", "--period", "2026-11-20", "--format", "json"])
        unknown = runner.invoke(cli, ["scores", "comments", "--agency", "NOPE"])
    finally:
        get_settings.cache_clear()
    assert table.exit_code == 0, table.output
    assert "3 ý kiến" in table.output
    assert "0912" not in table.output
    assert "001203004567" not in table.output
    assert len(json.loads(as_json.output)) == 3
    assert unknown.exit_code == 2
    assert "no agency with code 'NOPE'" in unknown.output
