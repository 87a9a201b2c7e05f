"""What both survey modules (flows.survey on SMS, flows.zalo_survey on Zalo and between channels)
do to a survey's rows: lock it, store its conversation state, queue its messages, add comments,
end it. One definition each, so a survey moved between channels is changed exactly as one that
stays put. Nothing here commits; flows.survey's docstring explains why the survey row is the one
record of where a conversation is.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, SessionTransaction, selectinload

from config.settings import Settings
from flows.engine import ConversationState, ConversationStatus
from flows.routes import conversation_recipient
from flows.rules import RuleBook
from storage.models import Answer, Case, Comment, OptOut, Route, Survey, SurveyStatus, Timer, TimerKind
from storage.outbox import NewMessage, stage

__all__ = [
    "applied_events",
    "close_timers",
    "finish",
    "finish_status",
    "lock_survey",
    "lock_surveys",
    "new_comment",
    "queue_replies",
    "queue_texts",
    "read_answers",
    "read_refusals",
    "record_answer",
    "refused",
    "rule_book",
    "store_state",
    "write_timer_closes",
]


_LOCKED = "sipas_locked_surveys"
_REFUSALS = "sipas_refusals_read"


def lock_survey(session: Session, survey_id: int) -> Survey | None:
    """The survey row, re-read and locked until the caller commits (`SELECT ... FOR UPDATE` on
    PostgreSQL): two steps of one survey never read the same state. A row lock_surveys locked in
    this transaction is handed out as it is, without a query."""
    held: Survey | None = session.info.get(_LOCKED, {}).get(survey_id)
    if held is not None:
        return held
    return session.get(Survey, survey_id, with_for_update=True, populate_existing=True)


def lock_surveys(session: Session, survey_ids: Collection[int]) -> set[int]:
    """Lock a batch's survey rows in one statement (with their cases and agencies), skipping
    those another transaction holds: a batch never waits on a row lock while holding hundreds,
    so it cannot deadlock with a drain that locks in another order. Returns the ids locked;
    lock_survey hands these out without a query of its own until the transaction ends.

    The rows are kept (session.info) for the transaction, not only their ids: the session's
    identity map holds unchanged rows weakly, so rows nobody references were collected at once
    and every lock_survey, case and agency of the batch was read again one query at a time,
    each after an autoflush (in-process, 1,000 openings: 5,000 single-row SELECTs and 1,000
    flushes, 10 ms of CPU an opening)."""
    if not survey_ids:
        return set()
    rows = session.scalars(
        select(Survey)
        .where(Survey.id.in_(list(survey_ids)))
        .order_by(Survey.id)
        .with_for_update(of=Survey, skip_locked=True)
        .options(selectinload(Survey.case).selectinload(Case.agency))
        .execution_options(populate_existing=True)
    ).all()
    held: dict[int, Survey] = session.info.setdefault(_LOCKED, {})
    held.update((survey.id, survey) for survey in rows)
    return {survey.id for survey in rows}


def read_refusals(session: Session, phone_hashes: Collection[str]) -> None:
    """Read which of these numbers refused our messages, in one query, for `refused` (a batch of
    openings asks once instead of once per survey)."""
    known: dict[str, bool] = session.info.setdefault(_REFUSALS, {})
    wanted = [phone_hash for phone_hash in phone_hashes if phone_hash not in known]
    if wanted:
        refusing = set(session.scalars(select(OptOut.phone_hash).where(OptOut.phone_hash.in_(wanted))))
        known.update({phone_hash: phone_hash in refusing for phone_hash in wanted})


def refused(session: Session, phone_hash: str) -> bool:
    """Whether the number refused our messages (an OptOut row): as read_refusals read it in this
    transaction, else asked now."""
    known = session.info.get(_REFUSALS, {}).get(phone_hash)
    if known is not None:
        return bool(known)
    return session.get(OptOut, phone_hash) is not None


def applied_events(survey: Survey) -> list[int]:
    """The ids of the inbound events already applied to the survey (kept in its state), so a
    replayed event is recognised."""
    raw = (survey.state or {}).get("events", [])
    return [int(e) for e in raw] if isinstance(raw, list) else []


def store_state(survey: Survey, state: ConversationState, *, events: list[int] | None = None) -> None:
    """Set `state` on the survey row, the one record of where the conversation is; the caller's
    flush writes it with the step's answers and outbox rows. `events` replaces the applied inbound
    event ids; None keeps those already recorded."""
    if events is None:
        events = applied_events(survey)
    data: dict[str, Any] = state.to_dict()
    survey.state = {**data, "events": events}
    survey.state_version = state.version


def queue_texts(
    session: Session,
    survey: Survey,
    texts: Sequence[str],
    dedupe_prefix: str,
    recipient_enc: str,
    route: Route | None,
    not_before: datetime | None = None,
) -> None:
    """Stage `texts` for the outbox (storage.outbox.stage) on the survey's channel, keyed
    `<dedupe_prefix><n>`: a step recomputed after a rollback finds its messages instead of adding
    twins. The transaction's owner writes them, a batch's all at once (write_staged)."""
    stage(
        session,
        [
            NewMessage(
                dedupe_key=f"{dedupe_prefix}{n}",
                channel=survey.channel,
                route=route,
                recipient_enc=recipient_enc,
                text=text,
                survey_id=survey.id,
                not_before=not_before,
            )
            for n, text in enumerate(texts)
        ],
    )


def queue_replies(
    session: Session,
    survey: Survey,
    texts: Sequence[str],
    dedupe_prefix: str,
    not_before: datetime | None = None,
) -> None:
    """queue_texts to where the conversation is now (flows.routes.conversation_recipient);
    nothing when the survey has no one to write to there."""
    recipient, route = conversation_recipient(survey)
    if recipient is not None:
        queue_texts(session, survey, texts, dedupe_prefix, recipient, route, not_before)


class AnswerWrite(StrEnum):
    """What recording an answer did: the first understood answer per question is the one counted."""

    RECORDED = "recorded"  # the question's first answer, now stored
    SAME = "same"  # the question already had this very answer
    CHANGED = "changed"  # the question already had another answer, which stands


_ANSWERS = "sipas_known_answers"


def read_answers(session: Session, survey_ids: Collection[int]) -> None:
    """Read the answers recorded so far of all these surveys in one query, for record_answer
    (a batch reads them with its surveys instead of once per answer). Kept for the transaction
    only: another one may record answers after it ends."""
    known: dict[int, dict[str, tuple[int | None, str | None]]] = session.info.setdefault(_ANSWERS, {})
    for survey_id in survey_ids:
        known.setdefault(survey_id, {})
    if survey_ids:
        rows = session.execute(
            select(Answer.survey_id, Answer.question_key, Answer.value, Answer.text_value).where(
                Answer.survey_id.in_(list(survey_ids))
            )
        )
        for survey_id, key, value, text_value in rows:
            known[survey_id][key] = (value, text_value)


_RULES = "sipas_rule_book"
_TIMER_CLOSES = "sipas_timer_closes"  # for write_timer_closes
_Closes = dict[tuple[datetime, tuple[TimerKind, ...] | None], set[int]]  # (now, kinds) -> survey ids


def rule_book(session: Session, settings: Settings) -> RuleBook:
    """The transaction's RuleBook (flows.rules): a batch of timers reads each unit's rules once,
    not once per survey. Kept for the transaction only: rules edited later are read afresh."""
    book: RuleBook | None = session.info.get(_RULES)
    if book is None or book.settings is not settings:
        book = session.info[_RULES] = RuleBook(session, settings)
    return book


@event.listens_for(Session, "after_transaction_end")
def _forget_after_transaction(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        for key in (_ANSWERS, _RULES, _LOCKED, _REFUSALS, _TIMER_CLOSES):
            session.info.pop(key, None)


def record_answer(
    session: Session,
    survey: Survey,
    *,
    question_key: str,
    criterion: str | None,
    value: int | None,
    text_value: str | None,
    raw_text: str | None,
    event_id: int | None,
    now: datetime,
) -> AnswerWrite:
    """Store the question's answer unless it already has one (the caller decides what to keep of a
    changed mind). Every channel records answers through here, so the rule is one rule. The
    answers read_answers read in this transaction are not asked for again."""
    known = session.info.get(_ANSWERS, {}).get(survey.id)
    if known is not None:
        existing = known.get(question_key)
    else:
        row = session.execute(
            select(Answer.value, Answer.text_value).where(
                Answer.survey_id == survey.id, Answer.question_key == question_key
            )
        ).first()
        existing = (row[0], row[1]) if row is not None else None
    if existing is not None:
        return AnswerWrite.SAME if existing == (value, text_value) else AnswerWrite.CHANGED
    session.add(
        Answer(
            survey_id=survey.id,
            flow_name=survey.flow_name,
            flow_version=survey.flow_version,
            question_key=question_key,
            criterion_code=criterion,
            value=value,
            text_value=text_value,
            raw_text=raw_text,
            inbound_event_id=event_id,
            answered_at=now,
        )
    )
    if known is not None:
        known[question_key] = (value, text_value)
    return AnswerWrite.RECORDED


def new_comment(
    survey: Survey, question_key: str | None, text: str, event_id: int | None, now: datetime
) -> Comment:
    """A citizen's words kept for staff to read (the caller adds it to the session)."""
    return Comment(
        survey_id=survey.id, question_key=question_key, text=text, inbound_event_id=event_id, created_at=now
    )


def close_timers(
    session: Session, survey_id: int, now: datetime, kinds: Sequence[TimerKind] | None = None
) -> None:
    """Mark the survey's pending timers done so the sweep never fires them (done_at is what it
    checks).

    Not at once: the transaction's closes are written together by write_timer_closes, when it
    commits (or when a batch writes after every step), in one UPDATE per kind of close, after the
    transaction's new rows. A batch completing a hundred surveys thus pays one statement, not one
    each (and no flush per survey: an autoflush per completed survey once cost the inbound drain
    a third of its time). Closing at commit closes what closing now would: a survey that ended
    gets no new timers, and the timers added before the close (start_survey's) are written
    first."""
    key = (now, tuple(kinds) if kinds is not None else None)
    session.info.setdefault(_TIMER_CLOSES, {}).setdefault(key, set()).add(survey_id)


def write_timer_closes(session: Session) -> None:
    """Write the timer closes of this transaction so far (close_timers)."""
    closes: dict[tuple[datetime, tuple[TimerKind, ...] | None], set[int]] = session.info.pop(
        _TIMER_CLOSES, {}
    )
    for (now, kinds), survey_ids in closes.items():
        query = update(Timer).where(Timer.survey_id.in_(sorted(survey_ids)), Timer.done_at.is_(None))
        if kinds is not None:
            query = query.where(Timer.kind.in_(kinds))
        session.execute(query.values(done_at=now).execution_options(synchronize_session=False))


@event.listens_for(Session, "before_commit")
def _write_timer_closes_before_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # the transaction's commit, not a savepoint's
        write_timer_closes(session)


def finish_status(session: Session, survey: Survey, status: SurveyStatus, now: datetime) -> None:
    """End the survey with `status` and close its timers; the conversation state is the caller's
    (a reply step stores its own final state)."""
    survey.status = status
    survey.finished_at = now
    close_timers(session, survey.id, now)


def finish(
    session: Session, survey: Survey, status: SurveyStatus, conversation: ConversationStatus, now: datetime
) -> None:
    """End a survey outside a reply (refusal elsewhere, expiry, undeliverable): status, timers,
    and a new state version."""
    finish_status(session, survey, status, now)
    state = dict(survey.state or {})
    state.update(status=conversation.value, question=None, reprompts=0, version=survey.state_version + 1)
    survey.state = state
    survey.state_version += 1
