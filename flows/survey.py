"""Surveys in the database: start, apply a reply, remind, expire, honour a refusal.

Worker jobs call these inside their own transaction. The messages a step sends are staged
(storage.outbox.stage) and the job stores a whole batch's at once (write_staged), then wakes the
send drain after committing. Nothing here sends anything or commits.

Where the conversation position lives, and why it stays consistent:

- `Survey.state` + `Survey.state_version` (the database row) is the one record, as mailroom keeps
  its sessions. It changes in the same transaction as the answers, comments and outbox rows of a
  step, so it can never disagree with them, and a rolled-back step leaves no trace: its retry
  reads the same state, computes the same step and writes the same deterministic outbox keys.
- The survey row is locked for the step (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite
  transactions take the write lock at BEGIN) until the caller commits, so two replies of one
  citizen are never read against the same question. The inbound drain reads and locks the
  surveys of a whole batch in one statement (`ActiveSurveys`); the row is then written with the
  step when the batch flushes.
- Redis holds no conversation state: it carries the queues, their coalescing and the rate limits.

A job retried after its transaction *committed* (crash before acknowledging) is stopped first by
the caller (the inbound event is marked processed in the same transaction) and second here: the
ids of applied inbound events are kept in `Survey.state["events"]`, and a replay returns the
messages already stored instead of applying the reply again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session, selectinload

from config.settings import Settings
from flows.definition import Flow
from flows.engine import Conversation, ConversationState, ConversationStatus, Step
from flows.routes import conversation_recipient, first_contact, rating_request
from flows.survey_rows import (
    AnswerWrite,
    applied_events,
    close_timers,
    finish,
    finish_status,
    lock_survey,
    new_comment,
    queue_replies,
    queue_texts,
    read_answers,
    record_answer,
    refused,
    rule_book,
    store_state,
)
from flows.versions import load_version
from storage.models import (
    Answer,
    Case,
    Channel,
    OptOut,
    OutboundMessage,
    Route,
    Survey,
    SurveyStatus,
    Timer,
    TimerKind,
)
from storage.outbox import NewMessage, stage

__all__ = [
    "ActiveSurveys",
    "conversation_for",
    "expire_survey",
    "find_active_survey",
    "flow_for",
    "handle_reply",
    "record_opt_out",
    "send_reminder",
    "start_survey",
]

# How many applied inbound event ids a survey remembers (a survey has a handful of replies).
_EVENTS_KEPT = 50
_OPEN_STATUSES = (SurveyStatus.SCHEDULED, SurveyStatus.ACTIVE)


def flow_for(survey: Survey) -> Flow:
    """Exactly the flow version the survey was given when it was created (flows.versions):
    publishing a new version never changes a running survey. A stored version never changes, so
    the session keeps each one it loaded: a batch of replies reads its flow once."""
    session = object_session(survey)
    key = (survey.flow_name, survey.flow_version)
    loaded: dict[tuple[str, int], Flow] = session.info.setdefault("sipas_flows", {}) if session else {}
    if key not in loaded:
        loaded[key] = load_version(session, survey.flow_name, survey.flow_version)
    return loaded[key]


def conversation_for(survey: Survey) -> Conversation:
    """The survey's conversation on its current channel (a flow has texts per channel)."""
    case = survey.case
    values = {"agency": case.agency.name, "case_id": case.case_id}
    return Conversation(flow_for(survey), survey.language, values, survey.channel)


def start_survey(session: Session, settings: Settings, survey_id: int, now: datetime) -> None:
    """Stage the opening notice and the first question (two SMS) of a scheduled survey for the
    outbox (storage.outbox.stage: the caller writes a batch's messages at once).

    Sets it active, stores its first state, and sets the REMINDER (first send + the agency's
    reminder delay, moved into its send window) and EXPIRE (first send + its expiry) timers
    (flows.rules: the agency's rules, read once for the whole step). A survey that is no longer
    scheduled is left alone: its opening is in the outbox already, and the sweep wakes the send
    drain for any queued row that is due.
    """
    survey = lock_survey(session, survey_id)
    if survey is None or survey.status is not SurveyStatus.SCHEDULED:
        return
    case = survey.case
    phone_hash = survey.phone_hash or case.phone_hash
    if phone_hash is not None and refused(session, phone_hash):
        finish(session, survey, SurveyStatus.OPTED_OUT, ConversationStatus.OPTED_OUT, now)
        return
    recipient, route = first_contact(survey)
    if recipient is None:
        survey.fallback_reason = f"no {survey.channel.value} contact on the case"
        finish(session, survey, SurveyStatus.FAILED, ConversationStatus.EXPIRED, now)
        return
    step = conversation_for(survey).open()
    rules = rule_book(session, settings).for_agency_id(survey.agency_id)
    send_at = rules.next_send_time(now)
    if route is Route.ZNS:
        # First contact by phone on Zalo: the rating template stands for the opening and the
        # first question (the rating answers it); see flows.routes.
        rating_request(session, settings, survey, recipient, send_at)
    else:
        queue_texts(session, survey, step.messages, f"survey:{survey.id}:open:", recipient, route, send_at)
    survey.status = SurveyStatus.ACTIVE
    survey.started_at = now
    survey.last_activity_at = now
    first_state = replace(step.state, version=survey.state_version + 1)
    store_state(survey, first_state, events=[])
    reminder_at = rules.next_send_time(send_at + rules.reminder_after)
    # Only this step sets them, once (the survey was scheduled, its row is locked): no look-up.
    session.add(Timer(survey_id=survey.id, kind=TimerKind.REMINDER, due_at=reminder_at))
    session.add(Timer(survey_id=survey.id, kind=TimerKind.EXPIRE, due_at=send_at + rules.expiry))
    # The first-message timer that called this is marked done by its drain (workers.timers).


def handle_reply(
    session: Session, survey: Survey, text: str, inbound_event_id: int | None, now: datetime
) -> None:
    """Apply a citizen's reply to their active survey; its replies are staged for the outbox
    (storage.outbox.stage), for the caller to write with the rest of its batch (write_staged).

    `survey` is locked for the caller's transaction, as find_active_survey, ActiveSurveys and
    lock_survey return it: its state is read from the row as it is, not again. Nothing is
    flushed here: a batch writes its steps' rows together when it commits.

    Records the first understood answer per question (a later, different answer to the same
    question, e.g. after a restart, is kept as a comment), comments, the refusal (OptOut, all the
    number's open surveys ended, timers closed) and the completion. Outbox keys are
    `survey:<id>:in:<inbound_event_id>:<n>` (or `survey:<id>:v<state_version>:<n>` without an
    event), so a step recomputed after a rollback never adds twins.
    """
    events = applied_events(survey)
    if inbound_event_id is not None and inbound_event_id in events:
        return  # applied before: its messages are in the outbox
    state = ConversationState.from_dict(survey.state or {})
    if survey.status is not SurveyStatus.ACTIVE or state is None:
        return
    step = conversation_for(survey).reply(state, text)
    _record(session, survey, step, inbound_event_id, now)
    prefix = (
        f"survey:{survey.id}:in:{inbound_event_id}:"
        if inbound_event_id is not None
        else f"survey:{survey.id}:v{step.state.version}:"
    )
    queue_replies(session, survey, step.messages, prefix)
    survey.last_activity_at = now
    if step.state.status is ConversationStatus.DONE:
        finish_status(session, survey, SurveyStatus.COMPLETED, now)
    elif step.state.status is ConversationStatus.OPTED_OUT:
        finish_status(session, survey, SurveyStatus.OPTED_OUT, now)
        phone_hash = survey.phone_hash or survey.case.phone_hash
        if phone_hash is not None:
            record_opt_out(session, phone_hash, survey.channel.value, now)
    if inbound_event_id is not None:
        events = [*events, inbound_event_id][-_EVENTS_KEPT:]
    store_state(survey, step.state, events=events)


def find_active_survey(session: Session, channel: Channel, sender_hash: str) -> Survey | None:
    """The most recently started active survey of this number on this channel, if any, locked
    for the caller's transaction (handle_reply's precondition)."""
    return ActiveSurveys(session, channel, [sender_hash]).get(sender_hash)


class ActiveSurveys:
    """The active surveys of a batch's senders on one channel, read and locked in one statement
    (with their cases and agencies, then their answers so far in one more) instead of once per
    event: the inbound drain's one read of the conversation state per batch. The caller holds
    the senders (storage.inbound), so no other drain changes these rows meanwhile.

    With `skip_locked` (the drain), a survey another transaction holds (a timer, a send moving
    it to SMS) is not waited for: its sender is in `busy` and the caller leaves that sender's
    events to a later batch. A batch never waits on a row lock while holding hundreds, so it
    cannot deadlock with a timer batch that locks surveys in another order."""

    def __init__(
        self, session: Session, channel: Channel, sender_hashes: Collection[str], *, skip_locked: bool = False
    ) -> None:
        self._by_sender: dict[str, list[Survey]] = {}
        self.busy: set[str] = set()
        if not sender_hashes:
            return
        rows = session.scalars(
            select(Survey)
            .where(_active(channel, sender_hashes))
            .order_by(Survey.id)
            .with_for_update(of=Survey, skip_locked=skip_locked)
            .options(selectinload(Survey.case).selectinload(Case.agency))
            .execution_options(populate_existing=True)
        ).all()
        for survey in sorted(rows, key=_most_recent_first):
            self._by_sender.setdefault(survey.phone_hash or "", []).append(survey)
        read_answers(session, [survey.id for survey in rows])
        if skip_locked:
            held = {survey.id for survey in rows}
            every = session.execute(
                select(Survey.id, Survey.phone_hash).where(_active(channel, sender_hashes))
            ).all()
            self.busy = {phone_hash or "" for survey_id, phone_hash in every if survey_id not in held}

    def get(self, sender_hash: str) -> Survey | None:
        """As find_active_survey: the sender's most recently started survey still active (one
        the batch ended gives way to the next, as it would in a new transaction)."""
        for survey in self._by_sender.get(sender_hash, ()):
            if survey.status is SurveyStatus.ACTIVE:
                return survey
        return None


def record_opt_out(session: Session, phone_hash: str, source: str, now: datetime | None = None) -> bool:
    """Honour a refusal at once and keep it: store the OptOut (once) and end every scheduled or
    active survey of that number. Returns whether the refusal is new."""
    now = now or datetime.now(UTC)
    existing = session.get(OptOut, phone_hash)
    new = existing is None
    if existing is not None:
        existing.rejoin_requested_at = None  # a refusal again cancels an opt-in not yet confirmed
    if new:
        try:
            with session.begin_nested():
                session.add(OptOut(phone_hash=phone_hash, source=source, created_at=now))
        except IntegrityError:
            new = False  # a concurrent transaction stored the same refusal first
    open_surveys = session.scalars(
        select(Survey).where(Survey.phone_hash == phone_hash, Survey.status.in_(_OPEN_STATUSES))
    ).all()
    for survey in open_surveys:
        finish(session, survey, SurveyStatus.OPTED_OUT, ConversationStatus.OPTED_OUT, now)
    session.flush()
    return new


def send_reminder(session: Session, settings: Settings, survey_id: int, now: datetime) -> None:
    """The one reminder, staged for the outbox (storage.outbox.stage): only while the survey is
    active and its current question unanswered, and only once.

    Reads the database state (always current: it is written with every step). Sent no earlier
    than the next opening of the agency's send window.
    """
    survey = lock_survey(session, survey_id)
    if survey is None or survey.status is not SurveyStatus.ACTIVE:
        return
    dedupe_key = f"survey:{survey.id}:reminder"
    if session.scalar(select(OutboundMessage.id).where(OutboundMessage.dedupe_key == dedupe_key)):
        return  # reminded before
    state = ConversationState.from_dict(survey.state)
    if state is None or state.status is not ConversationStatus.ASKING or state.question is None:
        return
    answered = session.scalar(
        select(Answer.id).where(Answer.survey_id == survey.id, Answer.question_key == state.question)
    )
    recipient, route = conversation_recipient(survey)
    text = conversation_for(survey).reminder(state)
    if answered is not None or recipient is None or text is None:
        return
    not_before = rule_book(session, settings).for_agency_id(survey.agency_id).next_send_time(now)
    reminder = NewMessage(
        dedupe_key=dedupe_key,
        channel=survey.channel,
        route=route,
        recipient_enc=recipient,
        text=text,
        survey_id=survey.id,
        not_before=not_before,
    )
    stage(session, [reminder])
    close_timers(session, survey.id, now, kinds=(TimerKind.REMINDER,))


def expire_survey(session: Session, survey_id: int, now: datetime) -> bool:
    """End a scheduled or active survey that ran out of time; answers given so far are kept.
    Returns whether it was expired now."""
    survey = lock_survey(session, survey_id)
    if survey is None or survey.status not in _OPEN_STATUSES:
        return False
    finish(session, survey, SurveyStatus.EXPIRED, ConversationStatus.EXPIRED, now)
    session.flush()
    return True


# -- internals ---------------------------------------------------------------------------------


def _active(channel: Channel, sender_hashes: Collection[str]) -> ColumnElement[bool]:
    return and_(
        Survey.phone_hash.in_(list(sender_hashes)),
        Survey.channel == channel,
        Survey.status == SurveyStatus.ACTIVE,
    )


def _most_recent_first(survey: Survey) -> tuple[float, int]:
    started = survey.started_at.timestamp() if survey.started_at is not None else float("-inf")
    return (-started, -survey.id)


def _record(
    session: Session, survey: Survey, step: Step, inbound_event_id: int | None, now: datetime
) -> None:
    for answer in step.answers:
        written = record_answer(
            session,
            survey,
            question_key=answer.question_key,
            criterion=answer.criterion,
            value=answer.value,
            text_value=answer.text_value,
            raw_text=answer.raw_text,
            event_id=inbound_event_id,
            now=now,
        )
        if written is AnswerWrite.CHANGED:
            # The first understood answer counts; a changed mind is kept for staff to read.
            session.add(new_comment(survey, answer.question_key, answer.raw_text, inbound_event_id, now))
    for comment in step.comments:
        session.add(new_comment(survey, comment.question_key, comment.text, inbound_event_id, now))
