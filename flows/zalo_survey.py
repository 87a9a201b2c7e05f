"""Zalo surveys in the database: whose conversation a Zalo message belongs to, linking a chat
with a start code, recording a ZNS rating, and moving a survey to SMS when Zalo cannot reach the
citizen. Like flows.survey, nothing here sends or commits: callers enqueue the returned outbox ids
after committing.

Moving a survey between channels (`fall_back_to_sms`, `link_chat`) keeps everything recorded and
re-asks where the citizen is. The survey keeps its flow and version when the flow has texts for
the new channel (the shipped Zalo flow has SMS variants of every text, for exactly this);
otherwise it takes the flow live for its agency on the new channel. The pending question is asked
again there (the first unanswered one when the flow lacks it), preceded by the flow's opening
notice, because on a new channel the citizen does not yet know who is writing and how to refuse.
Answers already given stand (first understood answer per question). The move is recorded on the
survey (`channel`, `zalo_route`, `fallback_reason`) and happens once per failure: still-queued
messages of the old channel are cancelled, so they cannot fail again and cause a second move.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from config.settings import Settings
from flows.channel_policy import Fallback
from flows.definition import Question
from flows.engine import Conversation, ConversationState, ConversationStatus
from flows.rules import RuleBook
from flows.survey import conversation_for, flow_for, handle_reply, record_opt_out
from flows.survey_rows import (
    AnswerWrite,
    finish,
    finish_status,
    lock_survey,
    new_comment,
    queue_replies,
    record_answer,
    store_state,
)
from flows.versions import live_version
from storage.models import (
    Answer,
    Case,
    Channel,
    OutboundMessage,
    OutboxStatus,
    Route,
    Survey,
    SurveyStatus,
)
from storage.outbox import write_staged

__all__ = [
    "OVERALL",
    "Rating",
    "fall_back_to_sms",
    "find_by_code",
    "find_conversation",
    "handle_zalo_reply",
    "link_chat",
    "record_rating",
]

log = structlog.get_logger(__name__)

OVERALL = "overall"  # the criterion a ZNS service rating answers (sipas-method.md)


@dataclass(frozen=True)
class Rating:
    """A ZNS service rating (webhook `user_feedback` or `rating/get`)."""

    msg_id: str | None
    tracking_id: str | None
    rate: int  # 1..5 stars
    note: str | None = None
    feedbacks: tuple[str, ...] = ()


# --- finding the survey -----------------------------------------------------------------------


def find_conversation(session: Session, route: Route, sender_hash: str) -> Survey | None:
    """The survey a Zalo user's message belongs to: their active survey on `route` first, else the
    latest one linked to them (finished, or moved to SMS), so the caller can stay quiet."""
    if not sender_hash:
        return None
    if route is Route.ZALO_BOT:
        query = select(Survey).where(Survey.zalo_chat_hash == sender_hash)
    else:
        query = (
            select(Survey)
            .join(Case, Case.id == Survey.case_pk)
            .where(
                Survey.channel == Channel.ZALO,
                or_(Survey.zalo_route == Route.ZALO_OA, Survey.zalo_route.is_(None)),
                or_(Survey.zalo_chat_hash == sender_hash, Case.zalo_user_hash == sender_hash),
            )
        )
    active_first = (Survey.status == SurveyStatus.ACTIVE).desc()
    return session.scalars(query.order_by(active_first, Survey.id.desc()).limit(1)).first()


def find_by_code(session: Session, codes: list[str]) -> Survey | None:
    """The active survey one of `codes` opens (flows.routes.find_start_codes gives the codes)."""
    if not codes:
        return None
    return session.scalars(
        select(Survey).where(Survey.start_code.in_(codes), Survey.status == SurveyStatus.ACTIVE).limit(1)
    ).first()


# --- conversation on Zalo ---------------------------------------------------------------------


def handle_zalo_reply(
    session: Session,
    survey: Survey,
    text: str,
    inbound_event_id: int,
    now: datetime,
) -> list[int]:
    """flows.survey.handle_reply on the survey row locked (a timer or a fallback to SMS may hold
    it), plus the Zalo identity of a refusal: a citizen known only by their OA user id (no phone)
    is never asked again either (intake checks both)."""
    locked = lock_survey(session, survey.id)
    if locked is None:
        return []
    handle_reply(session, locked, text, inbound_event_id, now)
    zalo_hash = locked.case.zalo_user_hash
    if locked.status is SurveyStatus.OPTED_OUT and zalo_hash is not None:
        record_opt_out(session, zalo_hash, "zalo", now)
    return write_staged(session)


def link_chat(
    session: Session,
    settings: Settings,
    survey: Survey,
    route: Route,
    chat_enc: str,
    chat_hash: str,
    now: datetime,
) -> list[int]:
    """A citizen sent the survey's start code from a Zalo chat: the survey continues there (on
    the Zalo flow), from the question it is at. Returns the outbox ids to send."""
    locked = lock_survey(session, survey.id)
    if locked is None or locked.status is not SurveyStatus.ACTIVE:
        return []
    locked.zalo_chat_enc, locked.zalo_chat_hash = chat_enc, chat_hash
    log.info("zalo chat linked", survey_id=locked.id, route=route.value)
    return _move_conversation(
        session, settings, locked, Channel.ZALO, route, now, label=f"link-{route.value}"
    )


def fall_back_to_sms(
    session: Session,
    settings: Settings,
    survey_id: int,
    reason: str,
    now: datetime,
) -> list[int]:
    """Zalo cannot reach the citizen: continue the survey by SMS (or end it as failed when the
    agency's rule says `fallback: none` or the case has no phone). Returns the SMS outbox ids."""
    survey = lock_survey(session, survey_id)
    if survey is None or survey.status is not SurveyStatus.ACTIVE or survey.channel is not Channel.ZALO:
        return []
    survey.fallback_reason = reason[:255]
    _cancel_queued(session, survey.id, Channel.ZALO, now)
    policy = RuleBook(session, settings).for_agency_id(survey.agency_id).channel
    if policy.fallback is Fallback.NONE or survey.case.phone_enc is None:
        log.warning("zalo survey failed without fallback", survey_id=survey.id, reason=reason)
        finish(session, survey, SurveyStatus.FAILED, ConversationStatus.EXPIRED, now)
        session.flush()
        return []
    log.info("survey falls back to sms", survey_id=survey.id, reason=reason)
    return _move_conversation(
        session, settings, survey, Channel.SMS, None, now, label="fallback-sms", in_window=True
    )


# --- ZNS rating -------------------------------------------------------------------------------


def _rated_survey(session: Session, rating: Rating) -> Survey | None:
    """The survey a rating is about: by the ZNS message we sent, else by tracking_id (survey id)."""
    if rating.msg_id:
        survey_id = session.scalar(
            select(OutboundMessage.survey_id).where(
                OutboundMessage.provider_id == rating.msg_id, OutboundMessage.route == Route.ZNS
            )
        )
        if survey_id is not None:
            return lock_survey(session, survey_id)
    if rating.tracking_id and rating.tracking_id.isdigit():
        return lock_survey(session, int(rating.tracking_id))
    return None


def _overall_question(survey: Survey) -> tuple[str, str]:
    """(question key, criterion) the stars answer: the flow's overall-satisfaction question."""
    for question in flow_for(survey).questions:
        if question.criterion == OVERALL:
            return question.key, OVERALL
    return OVERALL, OVERALL


def record_rating(
    session: Session,
    rating: Rating,
    inbound_event_id: int,
    now: datetime,
) -> str:
    """Store a ZNS rating as the survey's overall answer (its note and chosen options as comments).

    Idempotent: the first rating stands; the same rating again changes nothing, a different one is
    kept as a comment. A rating for a survey the citizen refused is not stored. While the survey
    is active and waiting on that question, the conversation moves past it, so a citizen who then
    links the bot is asked the next question, not the stars again. Returns what happened.
    """
    survey = _rated_survey(session, rating)
    if survey is None:
        return f"rating for unknown survey (tracking_id {rating.tracking_id!r})"
    if survey.status is SurveyStatus.OPTED_OUT:
        return f"survey {survey.id} refused: rating not stored"
    key, criterion = _overall_question(survey)
    raw = f"ZNS: {rating.rate}/5"
    written = record_answer(
        session,
        survey,
        question_key=key,
        criterion=criterion,
        value=rating.rate,
        text_value=None,
        raw_text=raw,
        event_id=inbound_event_id,
        now=now,
    )
    if written is AnswerWrite.SAME:
        return f"survey {survey.id}: rating already recorded"
    if written is AnswerWrite.CHANGED:
        session.add(new_comment(survey, key, f"{raw} (đánh giá lại)", inbound_event_id, now))
        return f"survey {survey.id}: different rating kept as comment"
    if rating.note:
        session.add(new_comment(survey, key, rating.note, inbound_event_id, now))
    if rating.feedbacks:
        session.add(new_comment(survey, key, "; ".join(rating.feedbacks), inbound_event_id, now))
    survey.last_activity_at = now
    _advance_past(session, survey, key, rating.rate, now)
    session.flush()
    return f"survey {survey.id}: rating {rating.rate} recorded"


def _advance_past(
    session: Session,
    survey: Survey,
    key: str,
    value: int,
    now: datetime,
) -> None:
    """The conversation waits on question `key`, now answered elsewhere: move to what follows."""
    state = ConversationState.from_dict(survey.state or {})
    if survey.status is not SurveyStatus.ACTIVE or state is None or state.question != key:
        return
    flow = flow_for(survey)
    answers = {**state.answers, key: value}
    following = flow.following(flow.question(key), answers)
    version = survey.state_version + 1
    if following is None:
        done = ConversationState(ConversationStatus.DONE, None, 0, version, answers, state.path)
        store_state(survey, done)
        finish_status(session, survey, SurveyStatus.COMPLETED, now)
        return
    asking = ConversationState(
        ConversationStatus.ASKING, following.key, 0, version, answers, (*state.path, following.key)
    )
    store_state(survey, asking)


# --- moving between channels -------------------------------------------------------------------


def _cancel_queued(session: Session, survey_id: int, channel: Channel, now: datetime) -> None:
    session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.survey_id == survey_id,
            OutboundMessage.channel == channel,
            OutboundMessage.status == OutboxStatus.QUEUED,
        )
        .values(status=OutboxStatus.FAILED, last_error="cancelled: the survey moved to another channel")
        .execution_options(synchronize_session=False)
    )


def _recorded_answers(session: Session, survey_id: int) -> dict[str, int | str]:
    rows = session.execute(
        select(Answer.question_key, Answer.value, Answer.text_value).where(Answer.survey_id == survey_id)
    ).all()
    return {key: value if value is not None else (text or "") for key, value, text in rows}


def _resume_at(
    conversation: Conversation, state: ConversationState | None, answers: dict[str, int | str]
) -> Question | None:
    """Where to continue on the new flow: the pending question when it has it and it is still
    unanswered, else the first unanswered question along the flow's path."""
    flow = conversation.flow
    if (
        state is not None
        and state.status is ConversationStatus.ASKING
        and state.question is not None
        and flow.has_question(state.question)
        and state.question not in answers
    ):
        return flow.question(state.question)
    question = flow.start(answers)
    seen: set[str] = set()
    while question is not None and question.key in answers and question.key not in seen:
        seen.add(question.key)
        question = flow.following(question, answers)
    return question if question is not None and question.key not in answers else None


def _move_conversation(
    session: Session,
    settings: Settings,
    survey: Survey,
    channel: Channel,
    route: Route | None,
    now: datetime,
    *,
    label: str,
    in_window: bool = False,
) -> list[int]:
    """Put the survey on `channel`/`route` with that channel's flow, and ask where it stands."""
    previous = ConversationState.from_dict(survey.state or {})
    answers: dict[str, int | str] = {
        **(previous.answers if previous else {}),
        **_recorded_answers(session, survey.id),
    }
    survey.channel, survey.zalo_route = channel, route
    if channel not in flow_for(survey).runs_on:
        # The survey's flow has no texts for the new channel: take the one live there for new
        # surveys of this agency (recorded answers keep the flow version they were given in).
        policy = RuleBook(session, settings).for_agency_id(survey.agency_id).channel
        live = live_version(session, survey.agency_id, channel, now, configured_name=policy.flow_for(channel))
        survey.flow_name, survey.flow_version = live.name, live.version
    conversation = conversation_for(survey)
    question = _resume_at(conversation, previous, answers)
    version = survey.state_version + 1
    path = previous.path if previous is not None else ()
    survey.last_activity_at = now
    if question is None:
        done = ConversationState(ConversationStatus.DONE, None, 0, version, answers, path)
        store_state(survey, done)
        finish_status(session, survey, SurveyStatus.COMPLETED, now)
        session.flush()
        return []
    if not path or path[-1] != question.key:
        path = (*path, question.key)
    state = ConversationState(ConversationStatus.ASKING, question.key, 0, version, answers, path)
    messages = conversation.ask_with_opening(question, state)
    store_state(survey, state)
    rules = RuleBook(session, settings).for_agency_id(survey.agency_id)
    not_before = rules.next_send_time(now) if in_window else None
    queue_replies(session, survey, messages, f"survey:{survey.id}:{label}:v{version}:", not_before)
    session.flush()
    return write_staged(session)
