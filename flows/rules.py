"""Survey rules per agency, with inheritance: what they are, how a unit gets its value, and where
that value came from ("set here", "inherited from X", "default").

Every rule is optional on every unit. A unit without its own value takes its nearest ancestor's
(parent, grandparent, ... to the province), then the service default: the settings
(SIPAS_SEND_WINDOW, SIPAS_FIRST_MESSAGE_DELAY, ...) and, for the channel rule, the channels file
(SIPAS_CHANNELS_FILE, kept as the deployment's default layer and as an import format). The
registry's `sampling_probability` column counts as a `sampling` rate set on that unit.

Intake, the survey steps and the timers read rules only through `RuleBook` (one per unit of work:
a batch, a job). It reads each unit's rule rows once and keeps them for that unit of work only,
so a change made by staff applies to the next batch or job (seconds later, always within a
minute) and never to half of a message: a step decides with one reading. docs/rules.md explains
this to staff.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings, parse_send_window
from flows.channel_policy import (
    MAX_OA_WINDOW_HOURS,
    ChannelPolicy,
    Fallback,
    Strategy,
    load_rules,
    policy_for,
)
from flows.definition import ZALO_LIMIT
from flows.schedule import in_send_window, next_send_time
from flows.templates import (
    MessageTooLongError,
    TemplateError,
    fit_sms,
    is_gsm7,
    render_template,
    template_fields,
)
from storage import audit
from storage.models import Agency, AgencyRule, Case, Survey, SurveyStatus
from storage.rules import rules_of, set_rule, unset_rule

__all__ = [
    "DEFAULT_INBOX_REPLY",
    "DEFAULT_INBOX_REPLY_ZALO",
    "RULES",
    "AgencyRules",
    "Resolved",
    "RuleBook",
    "RuleSpec",
    "RuleValueError",
    "Sampling",
    "answer_reach",
    "auto_probability",
    "change_rule",
    "holiday_day",
    "plan_import",
    "resolve",
    "rule_spec",
]

MAX_DURATION = 30 * 86400
MAX_HOLIDAYS = 400
# Auto sampling: the response rate is observed over this window, once this many were asked.
RESPONSE_WINDOW = timedelta(days=90)
MIN_ASKED_FOR_RATE = 30
# Auto sampling without an expected number of cases uses the cases closed over this window.
CASES_WINDOW = timedelta(days=30)

DEFAULT_INBOX_REPLY = (
    "So nay chi nhan tra loi khao sat. Cau hoi ve ho so xin gui {agency} "
    "qua Cong Dich vu cong hoac Bo phan Mot cua. Tran trong."
)
# The same answer on Zalo, which is not SMS: Vietnamese with its diacritics, one Zalo message.
DEFAULT_INBOX_REPLY_ZALO = (
    "Tài khoản này chỉ nhận trả lời khảo sát mức độ hài lòng. Câu hỏi về hồ sơ xin gửi {agency} "
    "qua Cổng Dịch vụ công hoặc Bộ phận Một cửa. Trân trọng."
)


class RuleValueError(ValueError):
    """A rule value that cannot be used; the message says what is expected."""


# -- values: text (CLI, forms) or JSON (files, the database) -> the stored JSON value ------------


def _text(raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise RuleValueError("expected a single value")
    return str(raw).strip()


def _choice(options: tuple[str, ...]) -> Callable[[Any], Any]:
    def parse(raw: Any) -> Any:
        value = _text(raw)
        if value not in options:
            raise RuleValueError(f"must be one of: {', '.join(options)}")
        return value

    return parse


def _integer(low: int, high: int) -> Callable[[Any], Any]:
    def parse(raw: Any) -> Any:
        try:
            value = int(_text(raw))
        except ValueError:
            raise RuleValueError("must be a whole number") from None
        if not low <= value <= high:
            raise RuleValueError(f"must be from {low} to {high}")
        return value

    return parse


_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(low: int) -> Callable[[Any], Any]:
    """Seconds, written as `3600`, `90m`, `24h` or `3d`."""

    def parse(raw: Any) -> Any:
        match = _DURATION.match(_text(raw).lower())
        if not match:
            raise RuleValueError("must be a duration such as 3600 (seconds), 90m, 24h or 3d")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
        if not low <= seconds <= MAX_DURATION:
            raise RuleValueError(f"must be from {low} seconds to 30 days")
        return seconds

    return parse


def _show_duration(value: Any) -> str:
    seconds = int(value)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _window(raw: Any) -> Any:
    value = _text(raw)
    try:
        parse_send_window(value)
    except ValueError as exc:
        raise RuleValueError(str(exc)) from None
    return value


_HOLIDAY = re.compile(r"(?<![\w-])(\d{4}-\d{2}-\d{2})(?![\w-])")
_SEPARATORS = " \t\r\n,;"
MAX_HOLIDAY_NAME = 80


def holiday_day(entry: str) -> date:
    """The day of a stored holiday entry (`2026-09-02` or `2026-09-02 Quốc khánh`)."""
    return date.fromisoformat(entry[:10])


def _holidays(raw: Any) -> Any:
    """Days `YYYY-MM-DD`, each optionally followed by its name (`2026-09-02 Quốc khánh`),
    separated by commas, semicolons or new lines (dates alone also by spaces); in a file a list of
    such entries or a mapping of day to name. Stored sorted as `YYYY-MM-DD[ name]` strings."""
    if isinstance(raw, Mapping):
        raw = [f"{day} {name or ''}" for day, name in raw.items()]
    text = "\n".join(str(item) for item in raw) if isinstance(raw, list) else _text(raw)
    parts = _HOLIDAY.split(unicodedata.normalize("NFC", text))
    lead = parts[0].strip(_SEPARATORS)
    if lead:
        raise RuleValueError(f"{lead.split()[0]!r} is not a date written YYYY-MM-DD")
    days: dict[str, str] = {}
    for day, after in zip(parts[1::2], parts[2::2], strict=True):
        try:
            key = date.fromisoformat(day).isoformat()
        except ValueError:
            raise RuleValueError(f"{day!r} is not a date written YYYY-MM-DD") from None
        name = " ".join(after.strip(_SEPARATORS).split())
        if re.match(r"\d{4}-|\d+$", name):
            raise RuleValueError(f"{name.split()[0]!r} is not a date written YYYY-MM-DD")
        if len(name) > MAX_HOLIDAY_NAME:
            raise RuleValueError(f"a holiday's name has at most {MAX_HOLIDAY_NAME} characters")
        days[key] = name or days.get(key, "")
    if len(days) > MAX_HOLIDAYS:
        raise RuleValueError(f"at most {MAX_HOLIDAYS} holidays")
    return [f"{day} {name}" if name else day for day, name in sorted(days.items())]


def _flow_name(raw: Any) -> Any:
    value = _text(raw)
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", value):
        raise RuleValueError("must be a flow name (lower-case letters, digits, - and _)")
    return value


_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


def _email(raw: Any) -> Any:
    value = _text(raw)
    if len(value) > 254 or not _EMAIL.match(value):
        raise RuleValueError("must be an e-mail address")
    return value


def _reply_text(raw: Any) -> Any:
    """The inbox's automatic SMS: unaccented GSM-7, one SMS even with a long agency name."""
    value = " ".join(_text(raw).split())
    if not value:
        raise RuleValueError("must not be empty")
    if not value.isascii() or not is_gsm7(value):
        raise RuleValueError("an SMS must be unaccented (GSM-7 characters only)")
    try:
        if any(name != "agency" for name in template_fields(value)):
            raise RuleValueError("the only placeholder is {agency}")
        fit_sms(value, {"agency": "x" * 255})
    except (TemplateError, MessageTooLongError) as exc:
        raise RuleValueError(str(exc)) from None
    return value


def _zalo_reply_text(raw: Any) -> Any:
    """The inbox's automatic Zalo message: any Vietnamese text (NFC), one Zalo message even with a
    255-character agency name."""
    value = unicodedata.normalize("NFC", " ".join(_text(raw).split()))
    if not value:
        raise RuleValueError("must not be empty")
    try:
        if any(name != "agency" for name in template_fields(value)):
            raise RuleValueError("the only placeholder is {agency}")
        rendered = render_template(value, {"agency": "x" * 255})
    except TemplateError as exc:
        raise RuleValueError(str(exc)) from None
    if len(rendered) > ZALO_LIMIT:
        raise RuleValueError(f"a Zalo message holds at most {ZALO_LIMIT} characters")
    return value


@dataclass(frozen=True)
class Sampling:
    """A fixed rate, or automatic: enough cases for a margin of error `margin` at 95% (Yamane's
    n = N / (1 + N e^2)) given the unit's expected closed cases N and its observed response rate."""

    rate: float | None = None
    margin: float = 0.05
    expected_cases: int | None = None

    @property
    def automatic(self) -> bool:
        return self.rate is None

    def as_json(self) -> dict[str, Any]:
        if self.rate is not None:
            return {"rate": self.rate}
        auto: dict[str, Any] = {"margin": self.margin}
        if self.expected_cases is not None:
            auto["expected_cases"] = self.expected_cases
        return {"auto": auto}

    @classmethod
    def from_json(cls, value: Any) -> Sampling:
        if isinstance(value, Mapping) and "rate" in value:
            return cls(rate=float(value["rate"]))
        auto = (value.get("auto") or {}) if isinstance(value, Mapping) else {}
        return cls(margin=float(auto.get("margin", 0.05)), expected_cases=auto.get("expected_cases"))

    def describe(self) -> str:
        if self.rate is not None:
            return f"{self.rate:g}"
        cases = f" cases={self.expected_cases}" if self.expected_cases is not None else ""
        return f"auto margin={self.margin:g}{cases}"


def _sampling(raw: Any) -> Any:
    """`0.25` (a rate), or `auto [margin=0.05] [cases=1200]`; in a file also {rate: ..} / {auto: ..}."""
    if isinstance(raw, Mapping):
        text = Sampling.from_json(raw).describe() if ("rate" in raw or "auto" in raw) else ""
        if not text:
            raise RuleValueError("use {rate: 0.25} or {auto: {margin: 0.05, expected_cases: N}}")
        raw = text
    words = _text(raw).lower().split()
    if not words:
        raise RuleValueError("must be a rate from 0 to 1, or auto")
    if words[0] != "auto":
        try:
            rate = float(words[0])
        except ValueError:
            raise RuleValueError("must be a rate from 0 to 1, or auto") from None
        if len(words) > 1 or not 0.0 <= rate <= 1.0:
            raise RuleValueError("a rate is one number from 0 to 1 (0 pauses surveys)")
        return Sampling(rate=rate).as_json()
    options: dict[str, str] = {}
    for word in words[1:]:
        key, _, value = word.partition("=")
        if key not in ("margin", "cases") or not value:
            raise RuleValueError("auto takes margin=E (0.01 to 0.2) and cases=N")
        options[key] = value
    try:
        margin = float(options.get("margin", "0.05"))
        cases = int(options["cases"]) if "cases" in options else None
    except ValueError:
        raise RuleValueError("auto takes margin=E (0.01 to 0.2) and cases=N (a whole number)") from None
    if not 0.01 <= margin <= 0.2 or (cases is not None and cases < 1):
        raise RuleValueError("margin must be from 0.01 to 0.2 and cases at least 1")
    return Sampling(margin=margin, expected_cases=cases).as_json()


def auto_probability(expected_cases: int, response_rate: float, margin: float) -> float:
    """Each case's chance of being asked so that N cases give n = N/(1+N e^2) answers at the
    observed response rate: p = n / (N r), at most 1."""
    if expected_cases <= 0 or response_rate <= 0:
        return 1.0
    target = expected_cases / (1 + expected_cases * margin * margin)
    return min(1.0, target / (expected_cases * response_rate))


# -- the rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSpec:
    """One rule: its name, labels for pages, how text becomes its value and back. The hint (the
    expected form, shown in the page's input box) is Vietnamese where it has words: the pages
    translate it like their own texts (bot/web/en.json)."""

    name: str
    label_vi: str
    label_en: str
    parse: Callable[[Any], Any]
    show: Callable[[Any], str] = str
    hint: str = ""

    def label(self, lang: str) -> str:
        return self.label_en if lang == "en" else self.label_vi


def _show_list(value: Any) -> str:
    return ", ".join(value)


RULES: tuple[RuleSpec, ...] = (
    RuleSpec("sampling", "Tỷ lệ chọn mẫu", "Sampling", _sampling,
             lambda v: Sampling.from_json(v).describe(), "0.25 | auto margin=0.05 [cases=N]"),
    RuleSpec("send_window", "Khung giờ gửi", "Send window", _window, hint="07:30-21:00"),
    RuleSpec("holidays", "Ngày nghỉ (không gửi)", "Holidays (no sends)", _holidays, _show_list,
             "2026-09-01, 2026-09-02 Quốc khánh"),
    RuleSpec("first_message_delay", "Gửi tin đầu sau", "First message after", _duration(0),
             _show_duration, "0 | 30m | 2h"),
    RuleSpec("reminder_after", "Nhắc lại sau", "Reminder after", _duration(60), _show_duration, "24h"),
    RuleSpec("expiry", "Hết hạn khảo sát sau", "Survey expires after", _duration(60), _show_duration,
             "3d"),
    RuleSpec("frequency_cap_days", "Không hỏi lại trong (ngày)", "Frequency cap (days)",
             _integer(0, 365), hint="30"),
    RuleSpec("channel.strategy", "Kênh hỏi trước", "Channel first", _choice(tuple(Strategy)),
             hint="sms_first | zalo_first"),
    RuleSpec("channel.fallback", "Khi Zalo lỗi", "When Zalo fails", _choice(tuple(Fallback)),
             hint="sms | none"),
    RuleSpec("channel.oa_window_hours", "Cửa sổ OA (giờ)", "OA window (hours)",
             _integer(1, MAX_OA_WINDOW_HOURS), hint="48 | 168"),
    RuleSpec("channel.sms_flow", "Kịch bản SMS", "SMS flow", _flow_name, hint="sipas-sms"),
    RuleSpec("channel.zalo_flow", "Kịch bản Zalo", "Zalo flow", _flow_name, hint="sipas-zalo"),
    RuleSpec("desk_email", "Thư điện tử bộ phận Phản ánh kiến nghị", "Complaints desk e-mail",
             _email, hint="pakn@example.gov.vn"),
    RuleSpec("inbox_reply", "Tin trả lời tự động (hộp thư)", "Inbox automatic reply", _reply_text,
             hint="không dấu; có thể dùng {agency}"),
    RuleSpec("inbox_reply_zalo", "Tin trả lời tự động trên Zalo (hộp thư)", "Inbox automatic reply on Zalo",
             _zalo_reply_text, hint="có dấu; có thể dùng {agency}"),
)  # fmt: skip
_BY_NAME = {spec.name: spec for spec in RULES}


def rule_spec(name: str) -> RuleSpec:
    """The rule called `name`; RuleValueError names the known ones otherwise."""
    spec = _BY_NAME.get(name)
    if spec is None:
        raise RuleValueError(f"unknown rule {name!r} (rules: {', '.join(_BY_NAME)})")
    return spec


# -- resolution --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """A rule's value for one unit and where it came from: `source` is the unit that set it
    (the unit itself: "set here"; an ancestor: "inherited"), None for the default."""

    name: str
    value: Any
    source: Agency | None
    here: bool
    default_from: str = ""

    def origin(self, lang: str = "vi") -> str:
        if self.here:
            return "set here" if lang == "en" else "đặt tại đây"
        if self.source is not None:
            prefix = "inherited from" if lang == "en" else "kế thừa từ"
            return f"{prefix} {self.source.name} ({self.source.code})"
        prefix = "default" if lang == "en" else "mặc định"
        return f"{prefix}: {self.default_from}" if self.default_from else prefix

    def shown(self) -> str:
        if self.value is None:
            return "—"
        return rule_spec(self.name).show(self.value)


def _chain(agency: Agency) -> list[Agency]:
    """The unit, its parent, ... up to its root (a cycle in bad data stops the walk)."""
    chain: list[Agency] = []
    current: Agency | None = agency
    while current is not None and all(current.id != seen.id for seen in chain):
        chain.append(current)
        current = current.parent
    return chain


def _defaults(settings: Settings, agency: Agency) -> Iterator[tuple[str, Any, str]]:
    yield "sampling", {"rate": 1.0}, "1"
    yield "send_window", settings.SIPAS_SEND_WINDOW, "SIPAS_SEND_WINDOW"
    yield "holidays", [], ""
    yield "first_message_delay", settings.SIPAS_FIRST_MESSAGE_DELAY, "SIPAS_FIRST_MESSAGE_DELAY"
    yield "reminder_after", settings.SIPAS_REMINDER_AFTER, "SIPAS_REMINDER_AFTER"
    yield "expiry", settings.SIPAS_SURVEY_TTL, "SIPAS_SURVEY_TTL"
    yield "frequency_cap_days", settings.SIPAS_FREQUENCY_CAP_DAYS, "SIPAS_FREQUENCY_CAP_DAYS"
    policy = policy_for(load_rules(settings.SIPAS_CHANNELS_FILE), agency)
    for key, value in policy.model_dump(mode="json").items():
        yield f"channel.{key}", value, settings.SIPAS_CHANNELS_FILE.name
    yield "desk_email", None, ""
    yield "inbox_reply", DEFAULT_INBOX_REPLY, ""
    yield "inbox_reply_zalo", DEFAULT_INBOX_REPLY_ZALO, ""


def resolve(
    agency: Agency, settings: Settings, own_rules: Mapping[int, Mapping[str, Any]]
) -> dict[str, Resolved]:
    """Every rule's value for `agency`, nearest unit first, with its origin. `own_rules` holds the
    rule rows of the unit's chain (storage.rules.rules_of)."""
    chain = _chain(agency)
    resolved: dict[str, Resolved] = {}
    for name, default, default_from in _defaults(settings, agency):
        resolved[name] = Resolved(name, default, None, False, default_from)
        for unit in chain:
            own = own_rules.get(unit.id, {})
            value = own.get(name)
            if value is None and name == "sampling" and unit.sampling_probability is not None:
                value = {"rate": unit.sampling_probability}
            if value is not None:
                resolved[name] = Resolved(name, value, unit, unit.id == agency.id)
                break
    return resolved


@dataclass(frozen=True)
class AgencyRules:
    """The rules one unit runs with, as typed values (resolved by RuleBook)."""

    agency_id: int
    tz: ZoneInfo
    channel: ChannelPolicy
    sampling: Sampling
    send_window: tuple[time, time | None]
    holidays: frozenset[date]
    first_message_delay: timedelta
    reminder_after: timedelta
    expiry: timedelta
    frequency_cap_days: int
    desk_email: str | None
    inbox_reply: str
    inbox_reply_zalo: str

    def in_send_window(self, at: datetime) -> bool:
        return in_send_window(at, self.send_window, self.tz, self.holidays)

    def next_send_time(self, at: datetime) -> datetime:
        return next_send_time(at, self.send_window, self.tz, self.holidays)

    @classmethod
    def build(cls, agency_id: int, tz: ZoneInfo, values: Mapping[str, Resolved]) -> AgencyRules:
        def v(name: str) -> Any:
            return values[name].value

        policy = ChannelPolicy.model_validate(
            {key.removeprefix("channel."): r.value for key, r in values.items() if key.startswith("channel.")}
        )
        return cls(
            agency_id=agency_id,
            tz=tz,
            channel=policy,
            sampling=Sampling.from_json(v("sampling")),
            send_window=parse_send_window(v("send_window")),
            holidays=frozenset(holiday_day(entry) for entry in v("holidays")),
            first_message_delay=timedelta(seconds=v("first_message_delay")),
            reminder_after=timedelta(seconds=v("reminder_after")),
            expiry=timedelta(seconds=v("expiry")),
            frequency_cap_days=int(v("frequency_cap_days")),
            desk_email=v("desk_email"),
            inbox_reply=v("inbox_reply"),
            inbox_reply_zalo=v("inbox_reply_zalo"),
        )


@dataclass
class RuleBook:
    """The rules of the units one unit of work meets: each unit's rule rows are read once, the
    first time it is asked for, and kept for this unit of work only (module docstring)."""

    session: Session
    settings: Settings
    _resolved: dict[int, dict[str, Resolved]] = field(default_factory=dict)
    _rules: dict[int, AgencyRules] = field(default_factory=dict)
    _probabilities: dict[int, float] = field(default_factory=dict)

    def resolved(self, agency: Agency) -> dict[str, Resolved]:
        if agency.id not in self._resolved:
            own = rules_of(self.session, (unit.id for unit in _chain(agency)))
            self._resolved[agency.id] = resolve(agency, self.settings, own)
        return self._resolved[agency.id]

    def inherited(self, agency: Agency) -> dict[str, Resolved]:
        """What every rule of `agency` would be without the rules set on the unit itself: what it
        inherits (a unit's own holiday list replaces its parent's; pages show both)."""
        own = rules_of(self.session, (unit.id for unit in _chain(agency)))
        own.pop(agency.id, None)
        return resolve(agency, self.settings, own)

    def for_agency(self, agency: Agency) -> AgencyRules:
        if agency.id not in self._rules:
            self._rules[agency.id] = AgencyRules.build(agency.id, self.settings.tz, self.resolved(agency))
        return self._rules[agency.id]

    def for_agency_id(self, agency_id: int) -> AgencyRules:
        agency = self.session.get(Agency, agency_id)
        if agency is None:
            raise LookupError(f"no agency with id {agency_id}")
        return self.for_agency(agency)

    def sampling_probability(self, agency: Agency, now: datetime) -> float:
        """The chance that one of the unit's closed cases is asked now (automatic sampling reads
        the unit's own recent cases and response rate, once per unit of work)."""
        sampling = self.for_agency(agency).sampling
        if sampling.rate is not None:
            return sampling.rate
        if agency.id not in self._probabilities:
            expected = sampling.expected_cases or _recent_cases(self.session, agency.id, now)
            rate = _response_rate(self.session, agency.id, now)
            probability = 1.0 if rate is None else auto_probability(expected, rate, sampling.margin)
            self._probabilities[agency.id] = probability
        return self._probabilities[agency.id]


def _recent_cases(session: Session, agency_id: int, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count(Case.id)).where(
                Case.agency_id == agency_id, Case.closed_at >= now - CASES_WINDOW
            )
        )
        or 0
    )


def _response_rate(session: Session, agency_id: int, now: datetime) -> float | None:
    """Completed / asked among the unit's surveys started in the last 90 days; None below 30 asked
    (too few to know: every case is asked until then)."""
    rows = session.execute(
        select(Survey.status, func.count(Survey.id))
        .where(
            Survey.agency_id == agency_id,
            Survey.started_at.is_not(None),
            Survey.started_at >= now - RESPONSE_WINDOW,
        )
        .group_by(Survey.status)
    ).all()
    counts = {status: int(n) for status, n in rows}
    asked = sum(counts.values())
    if asked < MIN_ASKED_FOR_RATE:
        return None
    return counts.get(SurveyStatus.COMPLETED, 0) / asked


# -- changes (CLI and pages): validated, stored and audited in the caller's transaction --------


def change_rule(
    session: Session, agency: Agency, name: str, value: Any | None, *, actor: str, now: datetime
) -> tuple[Any, Any]:
    """Set rule `name` on `agency` to `value` (text or file JSON; None removes the unit's own value
    so it inherits again). Appends the change to the audit log. Returns (before, after) as stored
    on this unit (None: not set here). RuleValueError when the value cannot be used."""
    spec = rule_spec(name)
    after = None if value is None else spec.parse(value)
    if after is None:
        before = unset_rule(session, agency.id, name)
    else:
        before = set_rule(session, agency.id, name, after, by=actor, now=now)
    if before != after:
        audit.append(
            session,
            actor,
            "rules.unset" if after is None else "rules.set",
            f"agency:{agency.code}:{name}",
            None if before is None else {name: before},
            None if after is None else {name: after},
            agency_id=agency.id,
        )
    return before, after


_CHANNEL_FIELDS = frozenset(ChannelPolicy.model_fields)


def plan_import(
    data: Any, codes: Mapping[str, Agency], roots: list[Agency]
) -> tuple[list[tuple[Agency, str, Any]], list[str]]:
    """What a rules file sets, checked as a whole: (agency, rule, stored value) triples and every
    problem found. Two shapes are read:

    - a rules file: `rules: {CODE: {rule: value, ...}, ...}` (names as in RULES);
    - a channels file (config/agencies/channels.yaml): `agencies: {CODE: {strategy: ...}}` sets
      the `channel.*` rules, and its `default:` section is set on every root unit.
    """
    changes: list[tuple[Agency, str, Any]] = []
    errors: list[str] = []
    if not isinstance(data, Mapping) or not ({"rules", "agencies", "default"} & set(data)):
        return [], ["expected a mapping with `rules:` (or a channels file with `default:`/`agencies:`)"]
    wanted: list[tuple[str, str, Any]] = []
    for section, prefix in (("rules", ""), ("agencies", "channel.")):
        entries = data.get(section) or {}
        if not isinstance(entries, Mapping):
            errors.append(f"{section}: must map agency codes to their rules")
            continue
        for code, rules in entries.items():
            if not isinstance(rules, Mapping):
                errors.append(f"{section}.{code}: must be a mapping of rule: value")
                continue
            wanted += [(str(code), f"{prefix}{name}", value) for name, value in rules.items()]
    default = data.get("default") or {}
    if not isinstance(default, Mapping):
        errors.append("default: must be a mapping of channel fields")
    else:
        wanted += [
            (root.code, f"channel.{field}", value) for root in roots for field, value in default.items()
        ]
    for code, name, value in wanted:
        agency = codes.get(code)
        if agency is None:
            errors.append(f"{code}: not in the agency registry")
            continue
        if name.startswith("channel.") and name.removeprefix("channel.") not in _CHANNEL_FIELDS:
            errors.append(f"{code}: unknown channel field {name.removeprefix('channel.')!r}")
            continue
        try:
            changes.append((agency, name, rule_spec(name).parse(value)))
        except RuleValueError as exc:
            errors.append(f"{code}: {name}: {exc}")
    return changes, errors


# -- how long after a case closes its answers can still come (the nightly recount) -------------

_DAY = 86400


def answer_reach(session: Session, settings: Settings) -> timedelta:
    """The longest time from a case's close to its last possible answer under any unit's rules:
    the longest first-message delay, plus the longest quiet night of any send window, plus the
    longest run of consecutive holidays, plus the longest expiry. The nightly scores recount that
    many past days, so a unit with a longer expiry or a holiday week is not left stale."""
    values: dict[str, list[Any]] = {}
    for name, value in session.execute(select(AgencyRule.name, AgencyRule.value)).all():
        values.setdefault(name, []).append(value)
    delay = max([settings.SIPAS_FIRST_MESSAGE_DELAY, *values.get("first_message_delay", [])])
    expiry = max([settings.SIPAS_SURVEY_TTL, *values.get("expiry", [])])
    quiet = max(_quiet_seconds(w) for w in [settings.SIPAS_SEND_WINDOW, *values.get("send_window", [])])
    run = max([0, *(_longest_run(days) for days in values.get("holidays", []))])
    return timedelta(seconds=int(delay) + quiet + run * _DAY + int(expiry))


def _quiet_seconds(window: str) -> int:
    start, end = parse_send_window(window)
    close = end.hour * 3600 + end.minute * 60 if end is not None else _DAY
    return _DAY - (close - (start.hour * 3600 + start.minute * 60))


def _longest_run(days: list[str]) -> int:
    ordered = sorted(holiday_day(entry) for entry in days)
    longest = current = 0
    for index, day in enumerate(ordered):
        current = current + 1 if index and (day - ordered[index - 1]).days == 1 else 1
        longest = max(longest, current)
    return longest
