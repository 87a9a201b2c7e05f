"""Survey flows as data: the typed shape of a flow (config/flows/*.yaml, published versions) and
how to walk and render one.

This module holds the structure only: what fields exist and their types (pydantic, which also
gives the JSON Schema in config/flows/flow.schema.json). What a flow must *mean* to be used
(criterion codes, every question reachable, no loop without exit, every SMS unaccented and within
160 GSM-7 characters, every translation present) is checked by flows.checks, and files are read
with YAML line numbers by flows.loading. docs/flows.md documents the format for staff.

Texts come in two shapes: per language (`{vi: ..., en: ...}`, shared by every channel the flow
runs on) or per channel and language (`{sms: {vi, en}, zalo: {vi, en}}`), because SMS must be
unaccented GSM-7 in 160 characters while Zalo may use diacritics and 2,000 characters.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from flows.templates import SMS_LIMIT, fit_sms, render_template
from flows.understanding import ReplyKind
from storage.models import Channel

__all__ = [
    "CHANNELS",
    "ELEMENT_CODES",
    "END",
    "LANGUAGES",
    "MAX_QUESTIONS",
    "MAX_VISITS",
    "ZALO_LIMIT",
    "Answers",
    "Condition",
    "Flow",
    "FlowError",
    "Messages",
    "Question",
    "QuestionKind",
    "Rule",
    "Text",
    "json_schema",
]

# The five SIPAS elements (shared spec sipas-method.md).
ELEMENT_CODES = ("tiep_can", "thu_tuc", "cong_chuc", "ket_qua", "phan_anh")
LANGUAGES = ("vi", "en")
CHANNELS = (Channel.SMS.value, Channel.ZALO.value)
END = "end"  # `goto: end` finishes the survey (thanks)
ZALO_LIMIT = 2000  # characters of one Zalo text message
MAX_QUESTIONS = 20
# A question asked this many times in one conversation (a loop the citizen keeps taking) ends the
# survey instead of asking again: a safety net behind the "no loop without exit" check.
MAX_VISITS = 3
_NAME = r"^[a-z][a-z0-9_-]{0,63}$"
_KEY = r"^[a-z][a-z0-9_]{0,63}$"

# A question's recorded values so far, by question key (int for scale/choice/yes-no, str for text).
Answers = Mapping[str, int | str]


class FlowError(ValueError):
    """A flow that cannot be used; the message says which one and everything that is wrong."""


class QuestionKind(enum.StrEnum):
    """What a question expects. `choice` offers 1-5 numbered options."""

    SCALE5 = "scale5"
    CHOICE = "choice"
    YESNO = "yesno"
    TEXT = "text"

    @property
    def reply_kind(self) -> ReplyKind:
        """The answer-understanding kind (flows.understanding) for this question kind."""
        return _REPLY_KINDS[self]

    @property
    def values(self) -> range:
        """The values an answer of this kind can have (yes = 1, no = 2; contract.md)."""
        return range(1, 3) if self is QuestionKind.YESNO else range(1, 6)


_REPLY_KINDS = {
    QuestionKind.SCALE5: ReplyKind.SCALE5,
    QuestionKind.CHOICE: ReplyKind.CHOICE5,
    QuestionKind.YESNO: ReplyKind.YESNO,
    QuestionKind.TEXT: ReplyKind.TEXT,
}

_LANG_TEXTS: dict[str, Any] = {
    "type": "object",
    "properties": {lang: {"type": "string", "minLength": 1} for lang in LANGUAGES},
    "additionalProperties": False,
    "minProperties": 1,
}
_TEXT_SCHEMA: dict[str, Any] = {
    "description": "A text per language ({vi, en}), or per channel and language ({sms: {...}, zalo: {...}}).",
    "anyOf": [
        _LANG_TEXTS,
        {
            "type": "object",
            "properties": dict.fromkeys(CHANNELS, _LANG_TEXTS),
            "additionalProperties": False,
            "minProperties": 1,
        },
    ],
}
# Structurally lenient (flows.checks explains what is wrong in words, with the YAML line);
# the JSON Schema says the exact shape for editors.
Text = Annotated[dict[str, str | dict[str, str]], WithJsonSchema(_TEXT_SCHEMA)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Condition(_Model):
    """Holds when question `question` was answered with a value within `min`..`max` and in `in`
    (each bound optional; no bound at all means "was answered"). Unanswered: does not hold."""

    question: str = Field(pattern=_KEY)
    min: int | None = None
    max: int | None = None
    in_: tuple[int, ...] | None = Field(default=None, alias="in", min_length=1)

    def holds(self, answers: Answers) -> bool:
        value = answers.get(self.question)
        if not isinstance(value, int):
            return False
        return self.accepts(value)

    def accepts(self, value: int) -> bool:
        if self.min is not None and value < self.min:
            return False
        if self.max is not None and value > self.max:
            return False
        return self.in_ is None or value in self.in_


Conditions = Condition | tuple[Condition, ...]


def conditions_of(when: Conditions | None) -> tuple[Condition, ...]:
    if when is None:
        return ()
    return when if isinstance(when, tuple) else (when,)


def all_hold(when: Conditions | None, answers: Answers) -> bool:
    return all(condition.holds(answers) for condition in conditions_of(when))


class Rule(_Model):
    """After a question: go to `goto` (a question key, or `end`) when `when` holds (always
    without `when`). Rules are tried in order; none applying means the next question in the list."""

    when: Conditions | None = None
    goto: str = Field(pattern=_KEY)


class Question(_Model):
    """One question: what it expects (`kind`), what it measures (`criterion`), how it reads, and
    when it is asked (`when`) and what follows it (`next`)."""

    key: str = Field(pattern=_KEY)
    kind: QuestionKind
    criterion: str | None = Field(default=None, max_length=64)
    text: Text
    options: tuple[Text, ...] | None = Field(default=None, min_length=1, max_length=5)
    when: Conditions | None = None
    next: tuple[Rule, ...] | None = Field(default=None, min_length=1)
    reprompt: Text | None = None  # falls back to messages.reprompt
    max_reprompts: int | None = Field(default=None, ge=0, le=3)  # falls back to the flow's
    max_answers: int = Field(default=1, ge=1, le=5)  # "5 4 5" answers this and the next ones
    optional: bool = False  # text only: "khong"/"no"/"0" skips it
    yes_digit: Literal[1, 2] | None = None  # yesno: the digit the prompt offers for "yes" (1)
    yes_is_good: bool | None = None  # yesno: is "yes" the good answer? (tunes comment checks)


class Messages(_Model):
    """The flow's fixed messages."""

    opening: Text
    reprompt: Text
    help: Text
    reminder: Text
    opt_out: Text
    thanks: Text


class Flow(_Model):
    """A survey flow; `id` is the name surveys refer to (`Survey.flow_name`). `version` is set by
    `sipas flows publish` (a file leaves it out); `channel` is the channel the flow is made for
    (where publish makes it live by default) and `channels` every channel its texts are written
    for (default: `channel` alone)."""

    id: str = Field(pattern=_NAME)
    name: str = Field(min_length=1)
    version: int | None = Field(default=None, ge=1)
    channel: Channel
    channels: tuple[Channel, ...] | None = Field(default=None, min_length=1)
    languages: tuple[Literal["vi", "en"], ...] = Field(min_length=1)
    default_language: Literal["vi", "en"] = "vi"
    max_reprompts: int = Field(default=1, ge=0, le=3)
    scales: dict[Literal["scale5", "yesno", "text"], Text] = Field(default_factory=dict)
    messages: Messages
    questions: tuple[Question, ...] = Field(min_length=1, max_length=MAX_QUESTIONS)

    # -- questions and branching -------------------------------------------------------------

    @property
    def runs_on(self) -> tuple[Channel, ...]:
        return self.channels or (self.channel,)

    @property
    def first(self) -> Question:
        return self.questions[0]

    def question(self, key: str) -> Question:
        for question in self.questions:
            if question.key == key:
                return question
        raise FlowError(f"flow {self.id} has no question {key!r}")

    def has_question(self, key: str) -> bool:
        return any(question.key == key for question in self.questions)

    def position(self, key: str) -> int:
        """0-based place of `key` in the list."""
        return [question.key for question in self.questions].index(key)

    def listed_after(self, question: Question) -> Question | None:
        position = self.position(question.key) + 1
        return self.questions[position] if position < len(self.questions) else None

    def enter(self, question: Question | None, answers: Answers) -> Question | None:
        """`question` if its `when` holds, else the first later one in the list whose `when` holds
        (None: the survey is over)."""
        while question is not None and not all_hold(question.when, answers):
            question = self.listed_after(question)
        return question

    def start(self, answers: Answers | None = None) -> Question | None:
        return self.enter(self.first, answers or {})

    def following(self, question: Question, answers: Answers) -> Question | None:
        """What is asked after `question` given the answers so far: the first `next` rule that
        applies, else the next question in the list; None when the survey is over."""
        for rule in question.next or ():
            if all_hold(rule.when, answers):
                return None if rule.goto == END else self.enter(self.question(rule.goto), answers)
        return self.enter(self.listed_after(question), answers)

    def ahead(self, question: Question, answers: Answers) -> list[Question]:
        """The questions still to come after `question` if the answers stay as they are (an
        unanswered question meets no condition). Stops where the path would repeat."""
        path: list[Question] = []
        seen = {question.key}
        following = self.following(question, answers)
        while following is not None and following.key not in seen:
            path.append(following)
            seen.add(following.key)
            following = self.following(following, answers)
        return path

    def reprompts_allowed(self, question: Question) -> int:
        return self.max_reprompts if question.max_reprompts is None else question.max_reprompts

    def language_for(self, language: str | None) -> str:
        """`language` when the flow has it, else the flow's default (a case may say `en`)."""
        return language if language in self.languages else self.default_language

    # -- texts --------------------------------------------------------------------------------

    def legend(self, question: Question, channel: Channel, language: str) -> str:
        """How to answer `question` (the `{scale}` placeholder): the flow's legend for the kind,
        or the numbered options of a choice question."""
        if question.options is not None:
            labels = [variant(option, channel, language) for option in question.options]
            return ", ".join(f"{n} {label}" for n, label in enumerate(labels, start=1))
        legend = self.scales.get(question.kind.value)  # type: ignore[call-overload]
        return variant(legend, channel, language) if legend is not None else ""

    def option_labels(self, question: Question, channel: Channel, language: str) -> list[str]:
        return [variant(option, channel, language) for option in question.options or ()]

    def render(
        self,
        text: Text,
        *,
        channel: Channel,
        language: str,
        values: Mapping[str, str],
        question: Question,
        number: int,
        total: int,
    ) -> str:
        """`text` for `channel` in `language`, with `values` (agency, case_id), the question's
        position and its legend. SMS are folded to unaccented GSM-7 and fitted into one SMS."""
        merged = {
            **values,
            "number": str(number),
            "total": str(total),
            "scale": self.legend(question, channel, language),
        }
        template = variant(text, channel, language)
        if channel is Channel.SMS:
            return fit_sms(template, merged, SMS_LIMIT)
        return render_template(template, merged)


def is_per_channel(text: Mapping[str, object]) -> bool:
    return any(key in CHANNELS for key in text)


def variant(text: Mapping[str, str | dict[str, str]], channel: Channel | str, language: str) -> str:
    """The text for `channel` and `language` (flows.checks guarantees it exists in a checked flow)."""
    chosen = text.get(str(channel)) if is_per_channel(text) else text
    value = chosen.get(language) if isinstance(chosen, Mapping) else None
    if not isinstance(value, str):
        raise FlowError(f"no {channel} text in {language!r}")
    return value


def texts_of(flow: Flow) -> Sequence[tuple[tuple[str | int, ...], Text, Question | None]]:
    """Every text of the flow with its path in the file and the question it is rendered for
    (None: a fixed message, rendered for any question)."""
    found: list[tuple[tuple[str | int, ...], Text, Question | None]] = [
        (("messages", name), getattr(flow.messages, name), None) for name in Messages.model_fields
    ]
    found += [(("scales", kind), legend, None) for kind, legend in flow.scales.items()]
    for index, question in enumerate(flow.questions):
        base: tuple[str | int, ...] = ("questions", index)
        found.append(((*base, "text"), question.text, question))
        if question.reprompt is not None:
            found.append(((*base, "reprompt"), question.reprompt, question))
        for n, option in enumerate(question.options or ()):
            found.append(((*base, "options", n), option, question))
    return found


CRITERION_ELEMENT = re.compile(rf"^({'|'.join(ELEMENT_CODES)})(\.[a-z][a-z0-9_]*)?$")
CRITERION_INTEGRITY = re.compile(r"^integrity\.[a-z][a-z0-9_]*$")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a flow file (config/flows/flow.schema.json is this, written out by
    `sipas flows schema`); editors use it to complete and check flow YAML as staff type."""
    schema = Flow.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://sipas-bot.invalid/flow.schema.json",
        **schema,
        "title": "SIPAS survey flow (docs/flows.md)",
    }
