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
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cached_property
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
    "answer_values",
    "count_text",
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

    def next_asked(self, question: Question, answers: Answers, path: Sequence[str]) -> Question | None:
        """What is asked after `question` on a conversation that has asked `path`: `following`,
        except that a question already asked MAX_VISITS times ends the survey instead."""
        following = self.following(question, answers)
        if following is not None and list(path).count(following.key) >= MAX_VISITS:
            return None
        return following

    def outcomes(self, question: Question) -> list[int | None]:
        """The answers to `question` worth telling apart to know what follows: one value per class
        of values the flow's conditions on it tell apart, and None (not answered: given up after
        the re-asks, or a free text). A question no condition names has the one outcome None."""
        conditions = [c for c in self._conditions() if c.question == question.key]
        if not conditions or question.kind is QuestionKind.TEXT:
            return [None]
        classes: dict[tuple[bool, ...], int] = {}
        for value in answer_values(question):
            classes.setdefault(tuple(c.accepts(value) for c in conditions), value)
        return [*classes.values(), None]

    def remaining(self, question: Question, answers: Answers, path: Sequence[str]) -> tuple[int, int]:
        """The fewest and the most questions still to come after `question`, over every answer the
        citizen may give (or not) from here; what `{total}` shows, a range while a branch is open.
        `path` is what was asked so far (it bounds loops, see `next_asked`)."""
        asked_in, memo = self._spans
        if asked_in is not self.questions:  # a model_copy with other questions copied the memo
            del self.__dict__["_spans"]
            asked_in, memo = self._spans
        loops = self._has_loops()
        referenced = {c.question for c in self._conditions()}

        def walk(asked: Question, known: dict[str, int | str], seen: tuple[str, ...]) -> tuple[int, int]:
            key = (
                asked.key,
                tuple(sorted((k, v) for k, v in known.items() if k in referenced)),
                tuple(sorted(Counter(seen).items())) if loops else (),
            )
            if key not in memo:
                spans = []
                for value in self.outcomes(asked):
                    after = known if value is None else {**known, asked.key: value}
                    following = self.next_asked(asked, after, seen)
                    if following is None:
                        spans.append((0, 0))
                    else:
                        low, high = walk(following, after, (*seen, following.key))
                        spans.append((low + 1, high + 1))
                memo[key] = (min(low for low, _ in spans), max(high for _, high in spans))
            return memo[key]

        return walk(question, dict(answers), tuple(path))

    @cached_property
    def _spans(self) -> tuple[tuple[Question, ...], dict[tuple[object, ...], tuple[int, int]]]:
        """What `remaining` found, kept with the flow (with the questions it was found for): a
        flow never changes, so the surveys it opens share one walk instead of one each (a
        quarter of the timer drain's CPU per opening before). The keys are `remaining`'s own
        (question, the answers conditions read, the visits when the flow loops), so an answer
        read nowhere, or a path a flow without loops cannot repeat, makes no new one."""
        return self.questions, {}

    def progress(
        self, question: Question, answers: Answers, path: Sequence[str], *, asking: bool = True
    ) -> tuple[int, tuple[int, int]]:
        """Where a conversation that has asked `path` stands at `question`: the number the citizen
        sees, and the fewest and most questions of the whole survey (`{number}`, `{total}`).
        After the end (`asking` False) both are the questions asked."""
        number = max(len(path), 1)
        if not asking:
            return number, (number, number)
        low, high = self.remaining(question, answers, path)
        return number, (number + low, number + high)

    def _conditions(self) -> list[Condition]:
        found = [c for q in self.questions for c in conditions_of(q.when)]
        return found + [c for q in self.questions for rule in q.next or () for c in conditions_of(rule.when)]

    def _has_loops(self) -> bool:
        """Whether a `goto` leads back (the only way a question can be asked twice)."""
        return any(
            rule.goto != END
            and self.has_question(rule.goto)
            and self.position(rule.goto) <= self.position(q.key)
            for q in self.questions
            for rule in q.next or ()
        )

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
        total: tuple[int, int],
    ) -> str:
        """`text` for `channel` in `language`, with `values` (agency, case_id), the question's
        position, the fewest and most questions of the survey (`{total}`: "3", or "3-5" while a
        branch may add questions) and its legend. SMS are folded to unaccented GSM-7 and fitted
        into one SMS."""
        merged = {
            **values,
            "number": str(number),
            "total": count_text(*total),
            "scale": self.legend(question, channel, language),
        }
        template = variant(text, channel, language)
        if channel is Channel.SMS:
            return fit_sms(template, merged, SMS_LIMIT)
        return render_template(template, merged)


def answer_values(question: Question) -> range:
    """The values an answer to `question` can have (a choice: its options)."""
    if question.kind is QuestionKind.CHOICE:
        return range(1, len(question.options or ()) + 1)
    return question.kind.values


def count_text(low: int, high: int) -> str:
    """A number of questions as shown: "3", or "3-5" when it is not known yet."""
    return str(low) if low == high else f"{low}-{high}"


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
