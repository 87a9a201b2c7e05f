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
  unaccented GSM-7; every message of every path (each answer class of each branching question,
  and no answer) rendered as the engine renders it, with its question number and `{total}`
  range, the longest agency name and case number: SMS within 160 GSM-7 characters (after the
  agency name is shortened, flows.templates.fit_sms), Zalo within 2,000.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from flows.definition import (
    CHANNELS,
    CRITERION_ELEMENT,
    CRITERION_INTEGRITY,
    END,
    LANGUAGES,
    ZALO_LIMIT,
    Condition,
    Conditions,
    Flow,
    FlowError,
    Question,
    QuestionKind,
    Text,
    answer_values,
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

# The longest substitutions possible (Agency.name is 255 characters, case_id 64 by contract):
# every message must fit with these, on every path (the numbers are those of the path).
WORST_CASE = {
    "agency": ("Trung tam Phuc vu hanh chinh cong Thanh pho Ho Chi Minh " * 5)[:255],
    "case_id": "000.00.20.H29-250715-0001" + "9" * 39,
}


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
    possible = answer_values(target)
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
    if not _graph_ok(flow):
        return  # the graph below needs unique keys and known targets
    yield from _graph_issues(flow)


def _can_hold(flow: Flow, when: Conditions | None) -> bool:
    for condition in conditions_of(when):
        if not flow.has_question(condition.question):
            return False
        target = flow.question(condition.question)
        if target.kind is QuestionKind.TEXT or not any(condition.accepts(v) for v in answer_values(target)):
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
    broken = False  # lengths are measured only when every text can be rendered
    for path, text, question in texts_of(flow):
        shape = list(_shape_issues(flow, path, text))
        if shape:
            broken = True
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
        if not placeholders_ok:
            broken = True
    if not broken and _graph_ok(flow):
        yield from _path_issues(flow)


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


# More conversation states than this is no survey a citizen can answer; it is reported, not walked.
MAX_STATES = 5000


@dataclass(frozen=True)
class _Stop:
    """A point of a conversation where messages are sent: asking `question` (or the end, when
    `question` is None) after asking `path`, with the answers that steer the branches."""

    question: Question | None
    answers: Mapping[str, int]
    path: tuple[str, ...]


def _stops(flow: Flow) -> Iterator[_Stop]:
    """Every point every path of the flow goes through, once per distinct numbering: each answer
    class of each question that conditions name (Flow.outcomes), and no answer at all."""
    first = flow.start()
    if first is None:
        return
    pending = [_Stop(first, {}, (first.key,))]
    seen: set[tuple[object, ...]] = set()
    while pending:
        stop = pending.pop()
        key = (stop.question.key if stop.question else None, tuple(sorted(stop.answers.items())), stop.path)
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > MAX_STATES:
            raise _TooManyPathsError
        yield stop
        asked = stop.question
        if asked is None:
            continue
        for value in flow.outcomes(asked):
            answers = dict(stop.answers) if value is None else {**stop.answers, asked.key: value}
            following = flow.next_asked(asked, answers, stop.path)
            if following is None:
                pending.append(_Stop(None, answers, stop.path))
            else:
                pending.append(_Stop(following, answers, (*stop.path, following.key)))


class _TooManyPathsError(Exception):
    """The flow has more than MAX_STATES points to check."""


def _messages(flow: Flow, stop: _Stop) -> Iterator[tuple[Path, Text, Question]]:
    """The texts sent at `stop`, with their place in the file and the question they render at."""
    asked = stop.question
    if asked is None:  # the end: thanks, and the refusal after the end
        last = flow.question(stop.path[-1])
        yield ("messages", "thanks"), flow.messages.thanks, last
        yield ("messages", "opt_out"), flow.messages.opt_out, flow.first
        return
    index = flow.position(asked.key)
    if len(stop.path) == 1:
        yield ("messages", "opening"), flow.messages.opening, asked
    yield ("questions", index, "text"), asked.text, asked
    if asked.reprompt is not None:
        yield ("questions", index, "reprompt"), asked.reprompt, asked
    else:
        yield ("messages", "reprompt"), flow.messages.reprompt, asked
    for name in ("help", "reminder", "opt_out"):
        yield ("messages", name), getattr(flow.messages, name), asked


def _path_issues(flow: Flow) -> Iterable[Issue]:
    """Every message of every path, on every channel and in every language, rendered as the
    engine renders it (its number and `{total}` range on that path) with the longest agency name
    and case number: SMS within 160 GSM-7 characters (after the agency name is shortened,
    flows.templates.fit_sms), Zalo within 2,000. One issue per text, channel and language."""
    reported: set[Path] = set()
    try:
        stops = list(_stops(flow))
    except _TooManyPathsError:
        yield Issue(
            ("questions",), f"more than {MAX_STATES} points on the flow's paths: simplify the branching"
        )
        return
    for stop in stops:
        for path, text, asked in _messages(flow, stop):
            at_end = stop.question is None
            number, total = flow.progress(asked, stop.answers, stop.path, asking=not at_end)
            for channel in flow.runs_on:
                for language in flow.languages:
                    where = (*path, channel.value, language) if is_per_channel(text) else (*path, language)
                    if where in reported:
                        continue
                    problem = _too_long(flow, text, channel, language, asked, number, total)
                    if problem is not None:
                        reported.add(where)
                        yield Issue(where, f"{problem} ({_on_path(flow, stop)})")


def _too_long(
    flow: Flow,
    text: Text,
    channel: Channel,
    language: str,
    asked: Question,
    number: int,
    total: tuple[int, int],
) -> str | None:
    try:
        rendered = flow.render(
            text,
            channel=channel,
            language=language,
            values=WORST_CASE,
            question=asked,
            number=number,
            total=total,
        )
    except MessageTooLongError as exc:
        return f"SMS too long even with the agency name shortened (limit {SMS_LIMIT} GSM-7 characters): {exc}"
    except (TemplateError, FlowError) as exc:
        return str(exc)
    if channel is Channel.ZALO and len(rendered) > ZALO_LIMIT:
        return f"Zalo text of {len(rendered)} characters, limit {ZALO_LIMIT}"
    return None


def _on_path(flow: Flow, stop: _Stop) -> str:
    steps = " -> ".join(stop.path)
    answered = ", ".join(f"{key}={value}" for key, value in sorted(stop.answers.items()))
    where = f"at question {stop.question.key!r}" if stop.question is not None else "at the end"
    return f"{where}, on the path {steps}" + (f" with {answered}" if answered else "")


def _graph_ok(flow: Flow) -> bool:
    keys = [q.key for q in flow.questions]
    return len(set(keys)) == len(keys) and not any(
        rule.goto != END and not flow.has_question(rule.goto) for q in flow.questions for rule in q.next or ()
    )
