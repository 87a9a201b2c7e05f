"""A province with scores: real cases, surveys, answers and comments, then the nightly counting
(flows.scores.counts.compute_days), so the pages read what production would."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from flows.scores.counts import compute_days
from flows.scores.periods import yesterday
from storage.agencies import get_by_code
from storage.models import Comment, Survey
from tests.scores.factories import surveyed_case
from tests.web.support import seed_tree

ELEMENT_CODES = ("tiep_can", "thu_tuc", "cong_chuc", "ket_qua", "phan_anh")
# Each unit's answers per day: a good ward, a weaker ward, a department.
PATTERNS = {
    "HN-BD": (5, 5, 4, 5),
    "HN-HK": (4, 3, 2, 4),
    "HN-SNV": (4, 4, 5, 3),
}
SCRIPT_COMMENT = "<script>alert('xss')</script> Cán bộ gọi 0912345678 rất nhiệt tình"
DAYS = 14
# The last case of each unit and day is a marriage registration, the others birth registrations:
# the pages' procedure filter narrows the figures to one of them.
BIRTH, MARRIAGE = "1.001612", "1.001193"


def seeded_period(tz: ZoneInfo) -> str:
    """The period the seeded answers fall in (the last DAYS complete local days)."""
    last = yesterday(tz)
    return f"{last - timedelta(days=DAYS - 1)}..{last}"


def seed_scores(sessions: sessionmaker[Session], tz: ZoneInfo) -> tuple[date, date]:
    seed_tree(sessions)
    last = yesterday(tz)
    first = last - timedelta(days=DAYS - 1)
    with sessions() as s, s.begin():
        for code, values in PATTERNS.items():
            agency = get_by_code(s, code)
            assert agency is not None
            for offset in range(DAYS):
                day = first + timedelta(days=offset)
                for minute, value in enumerate(values):
                    closed = datetime.combine(day, time(9, minute), tz).astimezone(UTC)
                    answers = {
                        "overall": value,
                        **{e: max(1, value - (i % 2)) for i, e in enumerate(ELEMENT_CODES)},
                    }
                    procedure = MARRIAGE if minute == len(values) - 1 else BIRTH
                    surveyed_case(s, agency, closed, answers, procedure=procedure)
        ward = get_by_code(s, "HN-HK")
        assert ward is not None
        closed = datetime.combine(last, time(10, 0), tz).astimezone(UTC)
        case = surveyed_case(s, ward, closed, {"overall": 2})
        survey = s.query(Survey).filter(Survey.case_pk == case.id).one()
        s.add(Comment(survey_id=survey.id, question_key="overall", text=SCRIPT_COMMENT))
    with sessions() as s, s.begin():
        compute_days(s, first, last, tz)
    return first, last
