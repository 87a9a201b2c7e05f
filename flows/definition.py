"""Survey flows as data: typed models of the YAML in config/flows/ and their loader.

A flow is checked completely when it is loaded (every language present, placeholders known,
criterion codes valid, SMS texts unaccented and within one SMS even with the longest agency name
and case number), so a flow that loads can never produce an unsendable message at 3 a.m.
docs/flows.md documents the format. Questions are asked in list order for now; branching
(`next`) comes with published, versioned flows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from config.settings import PROJECT_ROOT
from flows.templates import (
    SMS_LIMIT,
    MessageTooLongError,
    TemplateError,
    fit_sms,
    is_gsm7,
    is_unaccented,
    render_template,
    template_fields,
)
from flows.understanding import ReplyKind
from storage.models import Channel

__all__ = [
    "ELEMENT_CODES",
    "FLOWS_DIR",
    "Flow",
    "FlowError",
    "Messages",
    "Question",
    "default_flow",
    "load_flow",
]

FLOWS_DIR = PROJECT_ROOT / "config" / "flows"
# The five SIPAS elements (docs: shared spec sipas-method.md); a criterion is `overall`, an
# element code, or `<element>.<criterion>`.
ELEMENT_CODES = ("tiep_can", "thu_tuc", "cong_chuc", "ket_qua", "phan_anh")
_CRITERION = re.compile(rf"^(overall|({'|'.join(ELEMENT_CODES)})(\.[a-z][a-z0-9_]*)?)$")
_NAME = r"^[a-z][a-z0-9_-]{0,63}$"
_KEY = r"^[a-z][a-z0-9_]{0,63}$"
# What the longest possible substitutions look like (Agency.name is 255, case_id 64 by contract):
# an SMS flow must fit in one SMS even with these, after the agency name is shortened.
_WORST_CASE = {
    "agency": ("Trung tam Phuc vu hanh chinh cong Thanh pho Ho Chi Minh " * 5)[:255],
    "case_id": "000.00.20.H29-250715-0001" + "9" * 39,
}

LocalText = dict[str, str]


class FlowError(ValueError):
    """A flow file that cannot be used; the message says which file and what is wrong."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Question(_Model):
    """One question: what it expects (`kind`), what it measures (`criterion`), how it reads."""

    key: str = Field(pattern=_KEY)
    kind: ReplyKind
    criterion: str | None = None
    text: LocalText
    reprompt: LocalText | None = None  # falls back to messages.reprompt
    max_reprompts: int | None = Field(default=None, ge=0, le=3)  # falls back to the flow's


class Messages(_Model):
    """The flow's fixed messages, each per language."""

    opening: LocalText
    reprompt: LocalText
    help: LocalText
    reminder: LocalText
    opt_out: LocalText
    thanks: LocalText


class Flow(_Model):
    """A survey flow; `id` is the name surveys refer to (`Survey.flow_name`)."""

    id: str = Field(pattern=_NAME)
    name: str
    version: int = Field(ge=1)
    channel: Channel
    languages: tuple[str, ...] = Field(min_length=1)
    default_language: str = "vi"
    max_reprompts: int = Field(default=1, ge=0, le=3)
    scales: dict[ReplyKind, LocalText] = Field(default_factory=dict)
    messages: Messages
    questions: tuple[Question, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Flow:
        _check_flow(self)
        return self

    # -- navigation -------------------------------------------------------------------------

    @property
    def first(self) -> Question:
        return self.questions[0]

    @property
    def total(self) -> int:
        return len(self.questions)

    def question(self, key: str) -> Question:
        for question in self.questions:
            if question.key == key:
                return question
        raise FlowError(f"flow {self.id} v{self.version} has no question {key!r}")

    def number(self, key: str) -> int:
        """1-based position of question `key` (what the citizen sees as "Cau 2/3")."""
        return self.questions.index(self.question(key)) + 1

    def after(self, key: str) -> Question | None:
        """The question asked after `key`, or None when `key` is the last."""
        position = self.number(key)
        return self.questions[position] if position < self.total else None

    def reprompts_allowed(self, question: Question) -> int:
        return self.max_reprompts if question.max_reprompts is None else question.max_reprompts

    def language_for(self, language: str | None) -> str:
        """`language` when the flow has it, else the flow's default (a case may say `en`)."""
        return language if language in self.languages else self.default_language

    # -- rendering --------------------------------------------------------------------------

    def render(self, text: LocalText, language: str, values: Mapping[str, str], question: Question) -> str:
        """`text` in `language` with `values` (agency, case_id) and the position and answer
        legend of `question`; SMS flows are folded and fitted to one GSM-7 SMS."""
        merged = {
            **values,
            "number": str(self.number(question.key)),
            "total": str(self.total),
            "scale": self.scales.get(question.kind, {}).get(language, ""),
        }
        template = text[language]
        if self.channel is Channel.SMS:
            return fit_sms(template, merged, SMS_LIMIT)
        return render_template(template, merged)


def _check_flow(flow: Flow) -> None:
    """Everything that must hold for a flow to be used; raises ValueError naming the problem."""
    if flow.default_language not in flow.languages:
        raise ValueError(f"default_language {flow.default_language!r} is not in languages")
    keys = [q.key for q in flow.questions]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"question keys used twice: {', '.join(duplicates)}")
    texts: list[tuple[str, LocalText, Question | None]] = [
        (f"messages.{name}", getattr(flow.messages, name), None) for name in Messages.model_fields
    ]
    texts += [(f"scales.{kind.value}", legend, None) for kind, legend in flow.scales.items()]
    for q in flow.questions:
        if q.kind is not ReplyKind.TEXT and q.criterion is None:
            raise ValueError(f"question {q.key}: a {q.kind.value} question needs a criterion")
        if q.kind is ReplyKind.SCALE5 and q.criterion is not None and not _CRITERION.match(q.criterion):
            raise ValueError(
                f"question {q.key}: unknown criterion {q.criterion!r} "
                f"(overall, {', '.join(ELEMENT_CODES)} or <element>.<name>)"
            )
        texts.append((f"questions.{q.key}.text", q.text, q))
        if q.reprompt is not None:
            texts.append((f"questions.{q.key}.reprompt", q.reprompt, q))
    for where, text, question in texts:
        missing = [lang for lang in flow.languages if not text.get(lang, "").strip()]
        if missing:
            raise ValueError(f"{where}: missing text for {', '.join(missing)}")
        for lang in flow.languages:
            try:
                used = template_fields(text[lang])
            except TemplateError as exc:
                raise ValueError(f"{where}.{lang}: {exc}") from exc
            if "scale" in used and question is not None and question.kind not in flow.scales:
                raise ValueError(
                    f"{where}.{lang}: {{scale}} used but scales.{question.kind.value} is missing"
                )
            if flow.channel is Channel.SMS:
                _check_sms_text(f"{where}.{lang}", text[lang])
    if flow.channel is Channel.SMS:
        _check_sms_lengths(flow)


def _check_sms_text(where: str, text: str) -> None:
    if not is_unaccented(text):
        raise ValueError(f"{where}: SMS text must be unaccented (no diacritics): {text!r}")
    if not is_gsm7(text):
        raise ValueError(f"{where}: SMS text has characters outside GSM-7: {text!r}")


def _check_sms_lengths(flow: Flow) -> None:
    """Render every message for every question and language with the worst-case values."""
    for lang in flow.languages:
        for question in flow.questions:
            texts = [getattr(flow.messages, name) for name in Messages.model_fields]
            texts += [question.text] + ([question.reprompt] if question.reprompt else [])
            for text in texts:
                try:
                    flow.render(text, lang, _WORST_CASE, question)
                except MessageTooLongError as exc:
                    raise ValueError(f"{lang}: too long even with the agency name shortened: {exc}") from exc


def load_flow(path: Path) -> Flow:
    """Read and check one flow file; FlowError says what is wrong and where."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FlowError(f"{path}: cannot read flow: {exc}") from exc
    if not isinstance(data, dict):
        raise FlowError(f"{path}: a flow file must be a YAML mapping")
    try:
        return Flow.model_validate(data)
    except ValidationError as exc:
        raise FlowError(f"{path}: invalid flow: {exc}") from exc


@lru_cache(maxsize=16)
def default_flow(name: str) -> Flow:
    """The shipped flow `name` (e.g. `sipas-sms`) from config/flows/."""
    if not re.match(_NAME, name):
        raise FlowError(f"invalid flow name {name!r}")
    path = FLOWS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FlowError(f"no shipped flow named {name!r} in {FLOWS_DIR}")
    return load_flow(path)
