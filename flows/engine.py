"""The conversation state machine: a flow, where the citizen is, and their reply -> what happens.

Pure: no database, no Redis, no clock. flows.survey applies a Step to the database; `sipas
flows simulate` prints it. Rules (docs/flows.md tells citizens' side of them):

- A reply is understood by flows.understanding.parse_reply for the current question's kind.
- Opt-out (TC, STOP, ...) works at any point: confirmation, state `opted_out`.
- Help (HD, ?): the help text; the question stays the same and the re-ask count is untouched.
- Restart (LAI, ...): back to the first question, re-ask count and branching answers reset, no
  opening repeated. Answers already recorded stand (the first understood answer per question is
  the valid one, sipas-method.md); a different later answer is kept by flows.survey as a comment.
- An understood answer is recorded and the next question asked: the first `next` rule of the
  question that applies, else the next question in the list whose `when` holds; thanks at the end.
  Branching reads the answers of this conversation (after a restart, the new ones).
- Where the question allows it (`max_answers`), one reply answers several questions in order
  ("5 4 5"), as long as they are of the same kind; more answers than that is not understood.
- An optional text question is skipped with a "no" ("khong", "ko", "no") or "0".
- Anything else is kept as a comment and the question re-asked, up to the question's
  `max_reprompts` (1 by default); after that the survey moves on without an answer, so a
  citizen is never stuck and no number is ever guessed. A reply understood together with extra
  words ("5, can bo nhiet tinh") records the number and keeps the whole reply as a comment.
- After the survey ended (done, opted out, expired) only opt-out gets a reply; other text is
  kept as a comment without answering, so a chatty citizen does not cost SMS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from flows.definition import Flow, FlowError, Question, QuestionKind, Text
from flows.understanding import Keyword, ParsedReply, Reason, ReplyKind, parse_reply
from storage.models import Channel

__all__ = [
    "Conversation",
    "ConversationState",
    "ConversationStatus",
    "RecordedAnswer",
    "RecordedComment",
    "Step",
]

# Replies that skip an optional free-text question besides a plain "no".
_SKIP_WORDS = frozenset({"0", "-", "."})


class ConversationStatus(StrEnum):
    ASKING = "asking"
    DONE = "done"
    OPTED_OUT = "opted_out"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ConversationState:
    """Where a conversation is. `version` counts applied steps (the DB copy's state_version);
    `answers` are this conversation's values that branching reads, `path` the questions asked so
    far in order (its length is the number the citizen sees: "Cau 2/3-5")."""

    status: ConversationStatus
    question: str | None = None
    reprompts: int = 0
    version: int = 0
    answers: Mapping[str, int | str] = field(default_factory=dict)
    path: tuple[str, ...] = ()

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
            "answers": dict(self.answers),
            "path": list(self.path),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConversationState | None:
        """The state stored in `data`, or None when it is missing or unreadable. States stored
        before branching existed (no answers, no path) read as "at `question`, nothing known"."""
        try:
            status = ConversationStatus(data["status"])
            question = data.get("question")
            reprompts, version = int(data.get("reprompts", 0)), int(data["version"])
        except (KeyError, TypeError, ValueError):
            return None
        if status is ConversationStatus.ASKING and not isinstance(question, str):
            return None
        answers = data.get("answers", {})
        path = data.get("path")
        if not isinstance(answers, dict) or not all(
            isinstance(k, str) and isinstance(v, int | str) for k, v in answers.items()
        ):
            return None
        if path is None:
            path = []  # stored before branching: Conversation rebuilds it from the list order
        if not isinstance(path, list) or not all(isinstance(k, str) for k in path):
            return None
        return cls(
            status, question if isinstance(question, str) else None, reprompts, version, answers, tuple(path)
        )


def anonymous_state(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """A survey's stored state with nothing personal left, for erasure and the retention purge:
    only the keys ConversationState reads, number answers (free text never belongs in the state,
    but a state written by an older version or by hand may hold it) and the applied event ids.
    Anything else (a number, a Zalo id, a comment) is dropped."""
    state = ConversationState.from_dict(data or {})
    if state is None:
        return {}
    kept = state.to_dict()
    kept["answers"] = {key: value for key, value in state.answers.items() if isinstance(value, int)}
    events = (data or {}).get("events", [])
    kept["events"] = [e for e in events if isinstance(e, int)] if isinstance(events, list) else []
    return kept


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
    skipped: bool = False  # an optional question the citizen chose to skip

    @property
    def keyword(self) -> Keyword | None:
        return self.parsed.keyword if self.parsed is not None else None

    def to_json(self) -> dict[str, Any]:
        """The line `sipas flows simulate` prints for this reply (contract.md), plus `reason`
        (why it was not understood, or `skipped`) and, when one reply answered several
        questions, `answers` (question key -> value)."""
        value: int | str | None = None
        if self.answers:
            first = self.answers[0]
            value = first.value if first.value is not None else first.text_value
        understood = bool(self.parsed and self.parsed.understood)
        reason = "skipped" if self.skipped else (self.parsed.reason if self.parsed is not None else None)
        line: dict[str, Any] = {
            "reply": self.reply,
            "understood": understood,
            "question": self.question,
            "value": value,
            "keyword": self.keyword.value if self.keyword is not None else None,
            "reason": None if understood and not self.skipped else (str(reason) if reason else None),
            "messages": list(self.messages),
            "state": self.state.label,
        }
        if len(self.answers) > 1:
            line["answers"] = {
                a.question_key: a.value if a.value is not None else a.text_value for a in self.answers
            }
        return line

    def opening_json(self) -> dict[str, Any]:
        """The first line of `sipas flows simulate`: the opening messages and the first state."""
        return {"messages": list(self.messages), "state": self.state.label}


class Conversation:
    """One survey's conversation: a flow on a channel, the language, the values its texts need."""

    def __init__(
        self, flow: Flow, language: str | None, values: Mapping[str, str], channel: Channel | None = None
    ) -> None:
        self.flow = flow
        self.channel = channel or flow.channel
        if self.channel not in flow.runs_on:
            raise FlowError(f"flow {flow.id} has no texts for {self.channel.value}")
        self.language = flow.language_for(language)
        self.values = dict(values)

    def open(self) -> Step:
        """The first messages (opening notice, then the first question) and the first state."""
        first = self.flow.start()
        if first is None:  # a checked flow always asks something; be safe anyway
            return Step(None, None, None, (), (), (), ConversationState(ConversationStatus.DONE, version=1))
        state = ConversationState(ConversationStatus.ASKING, first.key, 0, 1, {}, (first.key,))
        return Step(None, None, None, (), (), self.ask_with_opening(first, state), state)

    def ask_with_opening(self, question: Question, state: ConversationState) -> tuple[str, str]:
        """The opening notice, then `question`, numbered by `state`'s path: how a conversation
        starts, and how it resumes on a new channel, where the citizen does not yet know who is
        writing or how to refuse (flows.zalo_survey)."""
        opening = self._say(self.flow.messages.opening, question, state)
        return opening, self._say(question.text, question, state)

    def reminder(self, state: ConversationState) -> str | None:
        """The reminder for the question the citizen has not answered, or None if not asking."""
        if state.status is not ConversationStatus.ASKING or state.question is None:
            return None
        state = self._with_path(state)
        return self._say(self.flow.messages.reminder, self.flow.question(state.question or ""), state)

    def reply(self, state: ConversationState, text: str) -> Step:
        """Apply one reply to `state`."""
        if state.status is not ConversationStatus.ASKING or state.question is None:
            return self._after_end(state, text)
        state = self._with_path(state)
        question = self.flow.question(state.question or "")
        parsed = parse_reply(
            text,
            question.kind.reply_kind,
            max_answers=question.max_answers,
            question_number=_number(state),
            options=self.flow.option_labels(question, self.channel, self.language),
            yes_digit=question.yes_digit or 1,
            yes_is_good=question.yes_is_good,
        )
        version = state.version + 1
        keyword = parsed.keyword
        if keyword is Keyword.OPT_OUT:
            opted_out = ConversationState(
                ConversationStatus.OPTED_OUT, None, 0, version, state.answers, state.path
            )
            return self._step(text, question, parsed, (), (), (self._opt_out(question, state),), opted_out)
        if keyword is Keyword.HELP:
            same = replace(state, version=version)
            message = self._say(self.flow.messages.help, question, state)
            return self._step(text, question, parsed, (), (), (message,), same)
        if keyword is Keyword.RESTART:
            return self._restart(text, question, parsed, version)
        if question.optional and _is_skip(parsed):
            messages, next_state = self._advance(question, state, (), state.answers, version)
            return replace(self._step(text, question, parsed, (), (), messages, next_state), skipped=True)
        if parsed.understood:
            assigned = self._assign(question, parsed, state.answers)
            if isinstance(assigned, Reason):
                parsed = replace(parsed, understood=False, value=None, values=(), reason=assigned.value)
            else:
                answers, recorded = assigned
                comments = (RecordedComment(question.key, parsed.comment),) if parsed.comment else ()
                last = self.flow.question(recorded[-1].question_key)
                also = tuple(a.question_key for a in recorded[1:])
                messages, next_state = self._advance(last, state, also, answers, version)
                return self._step(text, question, parsed, recorded, comments, messages, next_state)
        comments = (RecordedComment(question.key, parsed.text),) if parsed.text.strip() else ()
        if state.reprompts < self.flow.reprompts_allowed(question):
            reprompt = question.reprompt or self.flow.messages.reprompt
            again = replace(state, reprompts=state.reprompts + 1, version=version)
            return self._step(
                text, question, parsed, (), comments, (self._say(reprompt, question, state),), again
            )
        messages, next_state = self._advance(question, state, (), state.answers, version)
        return self._step(text, question, parsed, (), comments, messages, next_state)

    # -- helpers ----------------------------------------------------------------------------

    def _with_path(self, state: ConversationState) -> ConversationState:
        """A state stored before branching existed has no path: its flow was asked in list
        order, so the questions up to the current one are the path."""
        if state.path or state.question is None:
            return state
        position = self.flow.position(state.question)
        return replace(state, path=tuple(q.key for q in self.flow.questions[: position + 1]))

    def _assign(
        self, question: Question, parsed: ParsedReply, known: Mapping[str, int | str]
    ) -> tuple[dict[str, int | str], tuple[RecordedAnswer, ...]] | Reason:
        """The values of `parsed` given to `question` and, for several values, to the questions
        that follow it in order; a reason when they do not fit (too many, out of range)."""
        answers = dict(known)
        if question.kind is QuestionKind.TEXT:
            if parsed.text_value is None:
                return Reason.NO_ANSWER
            # Free text is recorded (flows.survey) but not kept in the state: branching reads
            # numbers only, and the state also lives in Redis.
            return answers, (RecordedAnswer(question.key, None, None, parsed.text_value, parsed.text),)
        values = parsed.values or ((parsed.value,) if parsed.value is not None else ())
        if not values:
            return Reason.NO_ANSWER
        recorded: list[RecordedAnswer] = []
        current: Question | None = question
        for n, value in enumerate(values):
            if current is None or current.kind is not question.kind:
                return Reason.TOO_MANY
            if value > len(current.options or ()) and current.kind is QuestionKind.CHOICE:
                return Reason.OUT_OF_RANGE
            answers[current.key] = value
            recorded.append(RecordedAnswer(current.key, current.criterion, value, None, parsed.text))
            if n < len(values) - 1:
                current = self.flow.following(current, answers)
        return answers, tuple(recorded)

    def _advance(
        self,
        question: Question,
        state: ConversationState,
        also_answered: tuple[str, ...],
        answers: Mapping[str, int | str],
        version: int,
    ) -> tuple[tuple[str, ...], ConversationState]:
        """Leave `question` (answered or given up): the next question, or thanks at the end."""
        path = state.path + also_answered
        # A loop the citizen keeps taking ends rather than asks forever (Flow.next_asked).
        following = self.flow.next_asked(question, answers, path)
        if following is None:
            done = ConversationState(ConversationStatus.DONE, None, 0, version, answers, path)
            return (self._say(self.flow.messages.thanks, question, done),), done
        asking = ConversationState(
            ConversationStatus.ASKING, following.key, 0, version, answers, (*path, following.key)
        )
        return (self._say(following.text, following, asking),), asking

    def _restart(self, text: str, question: Question, parsed: ParsedReply, version: int) -> Step:
        first = self.flow.start()
        if first is None:
            done = ConversationState(ConversationStatus.DONE, None, 0, version)
            return self._step(text, question, parsed, (), (), (), done)
        again = ConversationState(ConversationStatus.ASKING, first.key, 0, version, {}, (first.key,))
        return self._step(text, question, parsed, (), (), (self._say(first.text, first, again),), again)

    def _after_end(self, state: ConversationState, text: str) -> Step:
        parsed = parse_reply(text, ReplyKind.TEXT)
        version = state.version + 1
        if parsed.keyword is Keyword.OPT_OUT:
            if state.status is ConversationStatus.OPTED_OUT:
                return self._step(text, None, parsed, (), (), (), replace(state, version=version))
            opted_out = ConversationState(
                ConversationStatus.OPTED_OUT, None, 0, version, state.answers, state.path
            )
            message = self._opt_out(self.flow.first, state)
            return self._step(text, None, parsed, (), (), (message,), opted_out)
        comments = (RecordedComment(None, parsed.text),) if parsed.keyword is None and parsed.text else ()
        return self._step(text, None, parsed, (), comments, (), replace(state, version=version))

    def _opt_out(self, question: Question, state: ConversationState) -> str:
        return self._say(self.flow.messages.opt_out, question, state)

    def _say(self, text: Text, question: Question, state: ConversationState) -> str:
        """`text` rendered at `question`: its number on the path so far, and the fewest and most
        questions the survey can have from here (Flow.progress), so no count is promised that a
        branch breaks: "3-5" at the start, "3" or "5" once the branch is decided."""
        asking = state.status is ConversationStatus.ASKING
        number, total = self.flow.progress(question, state.answers, state.path, asking=asking)
        return self.flow.render(
            text,
            channel=self.channel,
            language=self.language,
            values=self.values,
            question=question,
            number=number,
            total=total,
        )

    @staticmethod
    def _step(
        reply: str,
        question: Question | None,
        parsed: ParsedReply,
        answers: Sequence[RecordedAnswer],
        comments: tuple[RecordedComment, ...],
        messages: tuple[str, ...],
        state: ConversationState,
    ) -> Step:
        key = question.key if question is not None else None
        return Step(reply, key, parsed, tuple(answers), comments, messages, state)


def _number(state: ConversationState) -> int:
    return max(len(state.path), 1)


def _is_skip(parsed: ParsedReply) -> bool:
    """ "khong", "ko", "no", "0": the citizen has nothing to add."""
    if parsed.keyword is not None:
        return False
    text = parsed.text.strip()
    if text in _SKIP_WORDS:
        return True
    as_yes_no = parse_reply(text, ReplyKind.YESNO)
    return as_yes_no.understood and as_yes_no.value == 2 and as_yes_no.comment is None
