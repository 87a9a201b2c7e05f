"""What a flow must mean to be used: every problem found, each with its place in the file.

flows.definition gives a flow its structure; this module checks its sense, and reports every
problem rather than the first, so staff fix a flow in one round (`sipas flows validate`):

- criterion codes: a scale question measures `overall`, an element (`cong_chuc`) or one of its
  criteria (`cong_chuc.lich_su`, `cong_chuc.chung` for the element's general question); a yes/no
  question may count as an integrity rate (`integrity.<name>`); choice and text questions are not
  scored. A criterion measured twice in a flow would count one citizen twice.
- branching: conditions name an earlier question that has a value and can hold; `goto` names a
  question or `end`; every question can be reached; no loop without a way out.
- texts: every language and every channel the flow runs on; only known placeholders; SMS texts
  unaccented GSM-7 and within 160 characters even with the longest agency name and case number
  (after the agency name is shortened, flows.templates.fit_sms); Zalo texts within 2,000.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from flows.definition import (
    CHANNELS,
    CRITERION_ELEMENT,
    CRITERION_INTEGRITY,
    END,
    LANGUAGES,
    MAX_QUESTIONS,
    ZALO_LIMIT,
    Condition,
    Conditions,
    Flow,
    FlowError,
    Question,
    QuestionKind,
    Text,
    conditions_of,
    is_per_channel,
    texts_of,
)
from flows.templates import (
    SMS_LIMIT,
    MessageTooLongError,
    TemplateError,
    is_gsm7,
    is_unaccented,
    template_fields,
)
from storage.models import Channel

__all__ = ["WORST_CASE", "Issue", "Path", "flow_issues"]

Path = tuple[str | int, ...]

# The longest substitutions possible (Agency.name is 255 characters, case_id 64 by contract), and
# the largest question numbers: every message must fit with these.
WORST_CASE = {
    "agency": ("Trung tam Phuc vu hanh chinh cong Thanh pho Ho Chi Minh " * 5)[:255],
    "case_id": "000.00.20.H29-250715-0001" + "9" * 39,
}
_WORST_NUMBER = MAX_QUESTIONS


@dataclass(frozen=True)
class Issue:
    """One problem: where it is (a path into the flow's data) and what is wrong."""

    path: Path
    message: str

    @property
    def where(self) -> str:
        return ".".join(str(part) for part in self.path)


def flow_issues(flow: Flow) -> list[Issue]:
    """Every problem of meaning in `flow` (empty when the flow can be used)."""
    issues: list[Issue] = []
    issues += _header_issues(flow)
    issues += _question_issues(flow)
    issues += _branching_issues(flow)
    issues += _text_issues(flow)
    return issues


# -- header -----------------------------------------------------------------------------------


def _header_issues(flow: Flow) -> Iterable[Issue]:
    if len(set(flow.languages)) != len(flow.languages):
        yield Issue(("languages",), "a language is listed twice")
    if flow.default_language not in flow.languages:
        yield Issue(("default_language",), f"{flow.default_language!r} is not in languages")
    if flow.channels is not None:
        if len(set(flow.channels)) != len(flow.channels):
            yield Issue(("channels",), "a channel is listed twice")
        if flow.channel not in flow.channels:
            yield Issue(("channels",), f"the flow's channel {flow.channel.value!r} must be in channels")


# -- questions --------------------------------------------------------------------------------


def _question_issues(flow: Flow) -> Iterable[Issue]:
    seen: dict[str, int] = {}
    measured: dict[str, str] = {}
    for index, question in enumerate(flow.questions):
        at: Path = ("questions", index)
        if question.key == END:
            yield Issue((*at, "key"), f"{END!r} is reserved for `goto: {END}`")
        if question.key in seen:
            yield Issue((*at, "key"), f"question key {question.key!r} is used twice")
        seen.setdefault(question.key, index)
        yield from _criterion_issues(question, at)
        if question.criterion is not None:
            if question.criterion in measured:
                yield Issue(
                    (*at, "criterion"),
                    f"criterion {question.criterion!r} is already measured by question "
                    f"{measured[question.criterion]!r} (one citizen would count twice)",
                )
            measured.setdefault(question.criterion, question.key)
        yield from _kind_issues(question, at)


def _criterion_issues(question: Question, at: Path) -> Iterable[Issue]:
    code, kind = question.criterion, question.kind
    where = (*at, "criterion")
    if kind is QuestionKind.SCALE5:
        if code is None:
            yield Issue(at, f"question {question.key!r}: a scale5 question needs a criterion")
        elif code != "overall" and not CRITERION_ELEMENT.match(code):
            yield Issue(
                where,
                f"unknown criterion {code!r}: a scale5 question measures overall, an element "
                "(tiep_can, thu_tuc, cong_chuc, ket_qua, phan_anh) or <element>.<criterion>",
            )
    elif kind is QuestionKind.YESNO:
        if code is not None and not CRITERION_INTEGRITY.match(code):
            yield Issue(
                where,
                f"unknown criterion {code!r}: a yes/no question counts only as an integrity rate "
                "(integrity.<name>, yes = 1) or is not scored (leave criterion out)",
            )
    elif code is not None:
        yield Issue(where, f"a {kind.value} question is not scored: remove criterion {code!r}")


def _kind_issues(question: Question, at: Path) -> Iterable[Issue]:
    kind = question.kind
    if kind is QuestionKind.CHOICE and question.options is None:
        yield Issue(at, f"question {question.key!r}: a choice question needs options (1 to 5)")
    if kind is not QuestionKind.CHOICE and question.options is not None:
        yield Issue((*at, "options"), f"only choice questions have options (this one is {kind.value})")
    if question.optional and kind is not QuestionKind.TEXT:
        yield Issue((*at, "optional"), "only text questions can be optional")
    if kind is not QuestionKind.YESNO:
        if question.yes_digit is not None:
            yield Issue((*at, "yes_digit"), "yes_digit is for yesno questions")
        if question.yes_is_good is not None:
            yield Issue((*at, "yes_is_good"), "yes_is_good is for yesno questions")
    if kind is QuestionKind.TEXT and question.max_answers > 1:
        yield Issue((*at, "max_answers"), "a text reply answers one question")


# -- branching --------------------------------------------------------------------------------


def _values(question: Question) -> range:
    if question.kind is QuestionKind.CHOICE:
        return range(1, len(question.options or ()) + 1)
    return question.kind.values


def _condition_issues(
    flow: Flow, when: Conditions | None, at: Path, asked_at: int, *, same_ok: bool
) -> Iterable[Issue]:
    """Conditions must name a question asked before (or, in `next`, the question itself) whose
    answer is a number, with bounds that some answer can meet."""
    conditions = conditions_of(when)
    for n, condition in enumerate(conditions):
        where = (*at, n) if isinstance(when, tuple) else at
        if not flow.has_question(condition.question):
            yield Issue((*where, "question"), f"condition on unknown question {condition.question!r}")
            continue
        target = flow.question(condition.question)
        position = flow.position(target.key)
        if position > asked_at or (position == asked_at and not same_ok):
            yield Issue(
                (*where, "question"),
                f"condition on {target.key!r}, which is not asked before this point",
            )
            continue
        if target.kind is QuestionKind.TEXT:
            yield Issue((*where, "question"), f"condition on text question {target.key!r} (no number)")
            continue
        yield from _bound_issues(condition, target, where)


def _bound_issues(condition: Condition, target: Question, where: Path) -> Iterable[Issue]:
    possible = _values(target)
    for name, bound in (("min", condition.min), ("max", condition.max)):
        if bound is not None and bound not in possible:
            yield Issue(
                (*where, name), f"{name} {bound} is outside the answers of {target.key!r} (1..{possible[-1]})"
            )
    for value in condition.in_ or ():
        if value not in possible:
            yield Issue((*where, "in"), f"{value} is not an answer of {target.key!r} (1..{possible[-1]})")
    if not any(condition.accepts(value) for value in possible):
        yield Issue(where, f"the condition on {target.key!r} can never hold")


def _branching_issues(flow: Flow) -> Iterable[Issue]:
    for index, question in enumerate(flow.questions):
        at: Path = ("questions", index)
        if question.when is not None:
            yield from _condition_issues(flow, question.when, (*at, "when"), index, same_ok=False)
        rules = question.next or ()
        for n, rule in enumerate(rules):
            where = (*at, "next", n)
            if rule.when is not None:
                yield from _condition_issues(flow, rule.when, (*where, "when"), index, same_ok=True)
            elif n < len(rules) - 1:
                yield Issue(where, "a rule without `when` always applies: the rules after it are never used")
            if rule.goto != END and not flow.has_question(rule.goto):
                yield Issue((*where, "goto"), f"goto unknown question {rule.goto!r} (or `{END}`)")
    keys = [q.key for q in flow.questions]
    if len(set(keys)) != len(keys) or any(
        rule.goto != END and not flow.has_question(rule.goto) for q in flow.questions for rule in q.next or ()
    ):
        return  # the graph below needs unique keys and known targets
    yield from _graph_issues(flow)


def _can_hold(flow: Flow, when: Conditions | None) -> bool:
    for condition in conditions_of(when):
        if not flow.has_question(condition.question):
            return False
        target = flow.question(condition.question)
        if target.kind is QuestionKind.TEXT or not any(condition.accepts(v) for v in _values(target)):
            return False
    return True


def _entering(flow: Flow, question: Question | None) -> set[str]:
    """The questions that may be asked when `question` is entered (its `when` may skip it)."""
    found: set[str] = set()
    while question is not None:
        if _can_hold(flow, question.when):
            found.add(question.key)
        if question.when is None:
            return found
        question = flow.listed_after(question)
    return found | {END}


def _successors(flow: Flow, question: Question) -> set[str]:
    """Every question (or END) that may be asked after `question`."""
    found: set[str] = set()
    for rule in question.next or ():
        if not _can_hold(flow, rule.when):
            continue
        found |= {END} if rule.goto == END else _entering(flow, flow.question(rule.goto))
        if rule.when is None:
            return found
    return found | _entering(flow, flow.listed_after(question))


def _graph_issues(flow: Flow) -> Iterable[Issue]:
    edges = {q.key: _successors(flow, q) for q in flow.questions}
    start = _entering(flow, flow.first)
    reachable: set[str] = set()
    pending = [key for key in start if key != END]
    while pending:
        key = pending.pop()
        if key in reachable:
            continue
        reachable.add(key)
        pending += [k for k in edges[key] if k != END and k not in reachable]
    for index, question in enumerate(flow.questions):
        if question.key not in reachable:
            yield Issue(
                ("questions", index),
                f"question {question.key!r} is never asked (unreachable: no path from the first "
                "question leads to it)",
            )
    for component in _cycles({k: edges[k] for k in reachable}):
        exits = {target for key in component for target in edges[key]} - set(component)
        if not exits:
            ordered = sorted(component, key=flow.position)
            loop = " -> ".join([*ordered, ordered[0]])
            yield Issue(
                ("questions", flow.position(ordered[0])),
                f"loop without exit: {loop} (no answer leads out of it to another question or `end`)",
            )


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components that contain a cycle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in edges:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges[node]:
                found.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


# -- texts ------------------------------------------------------------------------------------


def _text_issues(flow: Flow) -> Iterable[Issue]:
    runs_on = flow.runs_on
    for path, text, question in texts_of(flow):
        shape = list(_shape_issues(flow, path, text))
        if shape:
            yield from shape
            continue
        placeholders_ok = True
        for channel in runs_on:
            for language in flow.languages:
                where = (*path, channel.value, language) if is_per_channel(text) else (*path, language)
                template = _get(text, channel, language)
                try:
                    used = template_fields(template)
                except TemplateError as exc:
                    placeholders_ok = False
                    yield Issue(where, str(exc))
                    continue
                if used and (path[0] == "scales" or "options" in path):
                    placeholders_ok = False
                    yield Issue(where, "legends and options cannot use placeholders")
                    continue
                if "scale" in used:
                    for asked in [question] if question is not None else flow.questions:
                        if not flow.legend(asked, channel, language):
                            placeholders_ok = False
                            yield Issue(
                                where,
                                f"{{scale}} used for question {asked.key!r}, but scales."
                                f"{asked.kind.value} (its answer legend) is missing",
                            )
                            break
                if channel is Channel.SMS:
                    if not is_unaccented(template):
                        yield Issue(where, f"SMS text must be unaccented (no diacritics): {template!r}")
                    elif not is_gsm7(template):
                        yield Issue(where, f"SMS text has characters outside GSM-7: {template!r}")
        if placeholders_ok:
            yield from _length_issues(flow, path, text, question)


def _shape_issues(flow: Flow, path: Path, text: Text) -> Iterable[Issue]:
    """Languages, channels and translations present; nothing mixed or unknown."""
    keys = set(text)
    channel_keys = keys & set(CHANNELS)
    if channel_keys and keys - channel_keys:
        yield Issue(path, "a text is either per language (vi, en) or per channel (sms, zalo), not both")
        return
    if channel_keys:
        for key in sorted(channel_keys - {c.value for c in flow.runs_on}):
            yield Issue((*path, key), f"a {key} text, but the flow does not run on {key} (channels)")
        for channel in flow.runs_on:
            per_language = text.get(channel.value)
            if per_language is None:
                yield Issue(path, f"missing the {channel.value} text (the flow runs on {channel.value})")
            elif not isinstance(per_language, dict):
                yield Issue((*path, channel.value), "must be texts per language (vi, en)")
            else:
                yield from _language_issues(flow, (*path, channel.value), per_language)
        return
    yield from _language_issues(flow, path, text)


def _language_issues(flow: Flow, path: Path, texts: Mapping[str, object]) -> Iterable[Issue]:
    for key in sorted(set(texts) - set(LANGUAGES)):
        yield Issue((*path, key), f"unknown language or channel {key!r} (languages: vi, en)")
    for key in sorted((set(texts) & set(LANGUAGES)) - set(flow.languages)):
        yield Issue((*path, key), f"a {key} text, but {key} is not in the flow's languages")
    for language in flow.languages:
        value = texts.get(language)
        if value is None or (isinstance(value, str) and not value.strip()):
            yield Issue(path, f"missing translation: no {language} text")
        elif not isinstance(value, str):
            yield Issue((*path, language), "must be a text")


def _get(text: Text, channel: Channel, language: str) -> str:
    chosen = text.get(channel.value) if is_per_channel(text) else text
    assert isinstance(chosen, dict)
    value = chosen[language]
    assert isinstance(value, str)
    return value


def _length_issues(flow: Flow, path: Path, text: Text, question: Question | None) -> Iterable[Issue]:
    """Render with the worst-case values for every question the text can be shown at."""
    contexts: Sequence[Question] = [question] if question is not None else flow.questions
    if path[0] == "scales" or "options" in path:
        return  # measured inside the question texts that show them
    for channel in flow.runs_on:
        for language in flow.languages:
            where = (*path, channel.value, language) if is_per_channel(text) else (*path, language)
            for asked in contexts:
                try:
                    rendered = flow.render(
                        text,
                        channel=channel,
                        language=language,
                        values=WORST_CASE,
                        question=asked,
                        number=_WORST_NUMBER,
                        total=_WORST_NUMBER,
                    )
                except MessageTooLongError as exc:
                    yield Issue(
                        where,
                        f"SMS too long even with the agency name shortened (limit {SMS_LIMIT} GSM-7 "
                        f"characters{_at(question, asked)}): {exc}",
                    )
                    break
                except (TemplateError, FlowError) as exc:
                    yield Issue(where, str(exc))
                    break
                if channel is Channel.ZALO and len(rendered) > ZALO_LIMIT:
                    yield Issue(
                        where,
                        f"Zalo text of {len(rendered)} characters{_at(question, asked)}, limit {ZALO_LIMIT}",
                    )
                    break


def _at(question: Question | None, asked: Question) -> str:
    return "" if question is not None else f", at question {asked.key!r}"
