"""The conversation state machine: a flow, where the citizen is, and their reply -> what happens.

Pure: no database, no Redis, no clock. flows.survey applies a Step to the database; `sipas
flows simulate` prints it. Rules (docs/flows.md tells citizens' side of them):

- A reply is understood by flows.understanding.parse_reply for the current question's kind.
- Opt-out (TC, STOP, ...) works at any point: confirmation, state `opted_out`.
- Help (HD, ?): the help text; the question stays the same and the re-ask count is untouched.
- Restart (LAI, ...): back to the first question, re-ask count reset, no opening repeated.
  Answers already recorded stand (the first understood answer per question is the valid one,
  sipas-method.md); a different later answer is kept by flows.survey as a comment.
- An understood answer is recorded and the next question asked, or thanks after the last.
- Anything else is kept as a comment and the question re-asked, up to the question's
  `max_reprompts` (1 by default); after that the survey moves on without an answer, so a
  citizen is never stuck and no number is ever guessed.
- After the survey ended (done, opted out, expired) only opt-out gets a reply; other text is
  kept as a comment without answering, so a chatty citizen does not cost SMS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from flows.definition import Flow, Question
from flows.understanding import Keyword, ParsedReply, ReplyKind, parse_reply

__all__ = [
    "Conversation",
    "ConversationState",
    "ConversationStatus",
    "RecordedAnswer",
    "RecordedComment",
    "Step",
]


class ConversationStatus(StrEnum):
    ASKING = "asking"
    DONE = "done"
    OPTED_OUT = "opted_out"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ConversationState:
    """Where a conversation is. `version` counts applied steps (the DB copy's state_version)."""

    status: ConversationStatus
    question: str | None = None
    reprompts: int = 0
    version: int = 0

    @property
    def label(self) -> str:
        """The current question key while asking, else the status (as `flows simulate` shows)."""
        if self.status is ConversationStatus.ASKING and self.question is not None:
            return self.question
        return self.status.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "question": self.question,
            "reprompts": self.reprompts,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConversationState | None:
        """The state stored in `data`, or None when it is missing or unreadable."""
        try:
            status = ConversationStatus(data["status"])
            question = data.get("question")
            reprompts, version = int(data.get("reprompts", 0)), int(data["version"])
        except (KeyError, TypeError, ValueError):
            return None
        if status is ConversationStatus.ASKING and not isinstance(question, str):
            return None
        return cls(status, question if isinstance(question, str) else None, reprompts, version)


@dataclass(frozen=True)
class RecordedAnswer:
    question_key: str
    criterion: str | None
    value: int | None
    text_value: str | None
    raw_text: str


@dataclass(frozen=True)
class RecordedComment:
    question_key: str | None
    text: str


@dataclass(frozen=True)
class Step:
    """The outcome of one reply (or of opening the conversation, where `reply` is None)."""

    reply: str | None
    question: str | None  # the question the reply was read against
    parsed: ParsedReply | None
    answers: tuple[RecordedAnswer, ...]
    comments: tuple[RecordedComment, ...]
    messages: tuple[str, ...]
    state: ConversationState

    @property
    def keyword(self) -> Keyword | None:
        return self.parsed.keyword if self.parsed is not None else None

    def to_json(self) -> dict[str, Any]:
        """The line `sipas flows simulate` prints for this reply (contract.md)."""
        value: int | str | None = None
        if self.answers:
            answer = self.answers[0]
            value = answer.value if answer.value is not None else answer.text_value
        return {
            "reply": self.reply,
            "understood": bool(self.parsed and self.parsed.understood),
            "question": self.question,
            "value": value,
            "keyword": self.keyword.value if self.keyword is not None else None,
            "reason": self.parsed.reason if self.parsed is not None else None,
            "messages": list(self.messages),
            "state": self.state.label,
        }


class Conversation:
    """One survey's conversation: a flow, the language, and the values its texts need."""

    def __init__(self, flow: Flow, language: str | None, values: Mapping[str, str]) -> None:
        self.flow = flow
        self.language = flow.language_for(language)
        self.values = dict(values)

    def open(self) -> Step:
        """The first messages (opening notice, then the first question) and the first state."""
        first = self.flow.first
        messages = (self._say(self.flow.messages.opening, first), self._say(first.text, first))
        state = ConversationState(ConversationStatus.ASKING, first.key, 0, 1)
        return Step(None, None, None, (), (), messages, state)

    def reminder(self, state: ConversationState) -> str | None:
        """The reminder for the question the citizen has not answered, or None if not asking."""
        if state.status is not ConversationStatus.ASKING or state.question is None:
            return None
        return self._say(self.flow.messages.reminder, self.flow.question(state.question))

    def reply(self, state: ConversationState, text: str) -> Step:
        """Apply one reply to `state`."""
        if state.status is not ConversationStatus.ASKING or state.question is None:
            return self._after_end(state, text)
        question = self.flow.question(state.question)
        parsed = parse_reply(
            text, question.kind, max_answers=1, question_number=self.flow.number(question.key)
        )
        version = state.version + 1
        keyword = parsed.keyword
        if keyword is Keyword.OPT_OUT:
            opted_out = ConversationState(ConversationStatus.OPTED_OUT, None, 0, version)
            return self._step(text, question, parsed, (), (), (self._opt_out(question),), opted_out)
        if keyword is Keyword.HELP:
            same = replace(state, version=version)
            return self._step(
                text, question, parsed, (), (), (self._say(self.flow.messages.help, question),), same
            )
        if keyword is Keyword.RESTART:
            first = self.flow.first
            again = ConversationState(ConversationStatus.ASKING, first.key, 0, version)
            return self._step(text, question, parsed, (), (), (self._say(first.text, first),), again)
        if _answered(parsed, question):
            answer = RecordedAnswer(
                question.key, question.criterion, parsed.value, parsed.text_value, parsed.text
            )
            messages, next_state = self._advance(question, version)
            return self._step(text, question, parsed, (answer,), (), messages, next_state)
        comments = (RecordedComment(question.key, parsed.text),) if parsed.text else ()
        if state.reprompts < self.flow.reprompts_allowed(question):
            reprompt = question.reprompt or self.flow.messages.reprompt
            again = replace(state, reprompts=state.reprompts + 1, version=version)
            return self._step(text, question, parsed, (), comments, (self._say(reprompt, question),), again)
        messages, next_state = self._advance(question, version)
        return self._step(text, question, parsed, (), comments, messages, next_state)

    # -- helpers ----------------------------------------------------------------------------

    def _advance(self, question: Question, version: int) -> tuple[tuple[str, ...], ConversationState]:
        following = self.flow.after(question.key)
        if following is None:
            done = ConversationState(ConversationStatus.DONE, None, 0, version)
            return (self._say(self.flow.messages.thanks, question),), done
        asking = ConversationState(ConversationStatus.ASKING, following.key, 0, version)
        return (self._say(following.text, following),), asking

    def _after_end(self, state: ConversationState, text: str) -> Step:
        parsed = parse_reply(text, ReplyKind.TEXT)
        version = state.version + 1
        if parsed.keyword is Keyword.OPT_OUT:
            if state.status is ConversationStatus.OPTED_OUT:
                return self._step(text, None, parsed, (), (), (), replace(state, version=version))
            opted_out = ConversationState(ConversationStatus.OPTED_OUT, None, 0, version)
            return self._step(text, None, parsed, (), (), (self._opt_out(self.flow.first),), opted_out)
        comments = (RecordedComment(None, parsed.text),) if parsed.keyword is None and parsed.text else ()
        return self._step(text, None, parsed, (), comments, (), replace(state, version=version))

    def _opt_out(self, question: Question) -> str:
        return self._say(self.flow.messages.opt_out, question)

    def _say(self, text: dict[str, str], question: Question) -> str:
        return self.flow.render(text, self.language, self.values, question)

    @staticmethod
    def _step(
        reply: str,
        question: Question | None,
        parsed: ParsedReply,
        answers: tuple[RecordedAnswer, ...],
        comments: tuple[RecordedComment, ...],
        messages: tuple[str, ...],
        state: ConversationState,
    ) -> Step:
        key = question.key if question is not None else None
        return Step(reply, key, parsed, answers, comments, messages, state)


def _answered(parsed: ParsedReply, question: Question) -> bool:
    if not parsed.understood or parsed.keyword is not None:
        return False
    if question.kind is ReplyKind.TEXT:
        return parsed.text_value is not None
    return parsed.value is not None
