"""What citizens wrote in their own words, for supervisors: always masked before it is shown.

Two sources: free-text answers (Answer.text_value) and comments kept by the engine (words beside
a number, replies it could not read). Phone, ID-card numbers and e-mails are replaced by labels
(flows.understanding.mask_personal_data); nothing identifying the citizen is joined in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from flows.scores.periods import Period
from flows.understanding import mask_personal_data
from storage.models import Agency, Answer, Case, Comment, Survey, SurveyStatus


@dataclass(frozen=True)
class CitizenComment:
    written_at: datetime  # local time
    agency_code: str
    agency_name: str
    channel: str
    question: str | None
    text: str  # masked


def _subtree(session: Session, root_code: str | None) -> dict[int, Agency]:
    agencies = {a.id: a for a in session.scalars(select(Agency))}
    if root_code is None:
        return agencies
    roots = [a for a in agencies.values() if a.code == root_code]
    if not roots:
        raise LookupError(f"no agency with code {root_code!r}")
    keep = {roots[0].id}
    grew = True
    while grew:
        grew = False
        for agency in agencies.values():
            if agency.parent_id in keep and agency.id not in keep:
                keep.add(agency.id)
                grew = True
    return {i: agencies[i] for i in keep}


def load_comments(
    session: Session,
    period: Period,
    tz: ZoneInfo,
    agency_code: str | None = None,
    *,
    latest: int | None = None,
    procedure: str | None = None,
) -> Sequence[CitizenComment]:
    """Comments on cases closed in `period` (local days) under `agency_code` (and of `procedure`,
    when given), oldest first (with `latest`, only the newest that many: the dashboard's list).
    Surveys of citizens who refused are left out entirely."""
    agencies = _subtree(session, agency_code)
    start = datetime.combine(period.start, time.min, tz).astimezone(UTC)
    end = datetime.combine(period.end + timedelta(days=1), time.min, tz).astimezone(UTC)
    in_scope = (
        Case.closed_at >= start,
        Case.closed_at < end,
        Survey.agency_id.in_(agencies),
        Survey.status != SurveyStatus.OPTED_OUT,
        *(() if procedure is None else (Case.procedure_code == procedure,)),
    )
    free_text_query = (
        select(Answer.answered_at, Survey.agency_id, Survey.channel, Answer.question_key, Answer.text_value)
        .join(Survey, Answer.survey_id == Survey.id)
        .join(Case, Survey.case_pk == Case.id)
        .where(Answer.text_value.is_not(None), *in_scope)
    )
    kept_query = (
        select(Comment.created_at, Survey.agency_id, Survey.channel, Comment.question_key, Comment.text)
        .join(Survey, Comment.survey_id == Survey.id)
        .join(Case, Survey.case_pk == Case.id)
        .where(*in_scope)
    )
    if latest is not None:
        free_text_query = free_text_query.order_by(Answer.answered_at.desc()).limit(latest)
        kept_query = kept_query.order_by(Comment.created_at.desc()).limit(latest)
    free_text = session.execute(free_text_query).all()
    kept = session.execute(kept_query).all()
    rows = [
        CitizenComment(
            written_at=at.astimezone(tz),
            agency_code=agencies[agency_id].code,
            agency_name=agencies[agency_id].name,
            channel=channel.value,
            question=question,
            text=mask_personal_data(text or ""),
        )
        for at, agency_id, channel, question, text in [*free_text, *kept]
        if (text or "").strip()
    ]
    ordered = sorted(rows, key=lambda row: (row.written_at, row.agency_code))
    return ordered[-latest:] if latest is not None else ordered
