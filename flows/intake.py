"""Intake of closed one-stop cases: validate, store, and decide whether to survey the citizen.

The HTTP API (bot.intake) and the bulk import (`sipas cases import`) both call `submit_cases`,
so a case gets the same outcome whichever way it arrives. Everything here is synchronous
database work inside the caller's transaction; each case runs in its own savepoint, so one bad
or conflicting case never undoes the others.

Decisions, in order, for a valid case of a known agency (docs/intake.md explains them to
integrators):

1. the case_id is already stored          -> `duplicate` (the original survey id, nothing new)
2. the phone / Zalo user refused surveys  -> `opted_out` (case stored, no survey)
3. the phone is a staff number of the agency -> `staff_number`
4. closed more than MAX_CASE_AGE ago      -> `not_sampled`, reason `closed_too_long_ago`
5. the deterministic sampling draw fails  -> `not_sampled`, reason `sample_draw`
6. the same citizen has a survey under way or created within the agency's frequency cap
                                          -> `frequency_capped`
7. otherwise                              -> `scheduled`: Survey + first-message Timer

Every case except rejected ones and duplicates is stored, because scores count closed cases
(on-time rate, rate_766) whether or not their citizen is asked.

Sampling, the frequency cap, the channel, the first-message delay, the send window and holidays
are the agency's rules (flows.rules), read once per agency per batch.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
)
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.settings import Settings
from flows.channel_policy import choose_start
from flows.phones import InvalidPhoneError, normalize_phone
from flows.rules import RuleBook
from flows.versions import live_version
from storage.agencies import get_by_code, is_staff_phone
from storage.crypto import PhoneVault
from storage.models import (
    Agency,
    Case,
    Channel,
    OnTime,
    OptOut,
    Route,
    Survey,
    SurveyStatus,
    Timer,
    TimerKind,
)

__all__ = [
    "MAX_CASE_AGE",
    "CaseIn",
    "CaseValidationError",
    "FieldError",
    "NotSampledReason",
    "Outcome",
    "OutcomeKind",
    "ValidCase",
    "count_outcomes",
    "derive_on_time",
    "is_sampled",
    "sampling_draw",
    "submit_cases",
    "validate_case",
]

# A citizen asked about a case closed days ago remembers it poorly and may not connect the message
# to it; such cases (typically back-filled by a bulk import) are stored for the scores only.
MAX_CASE_AGE = timedelta(hours=72)
# Clocks of the one-stop system and ours differ a little; a case "closed" further ahead is an error.
CLOCK_SKEW = timedelta(minutes=10)
_EXAMPLE_TIME = "2026-11-20T16:30:00+07:00"


class OutcomeKind(enum.StrEnum):
    SCHEDULED = "scheduled"
    NOT_SAMPLED = "not_sampled"
    DUPLICATE = "duplicate"
    OPTED_OUT = "opted_out"
    FREQUENCY_CAPPED = "frequency_capped"
    STAFF_NUMBER = "staff_number"
    REJECTED = "rejected"


class NotSampledReason(enum.StrEnum):
    CLOSED_TOO_LONG_AGO = "closed_too_long_ago"
    SAMPLE_DRAW = "sample_draw"


@dataclass(frozen=True)
class FieldError:
    """What is wrong with one field, in plain English for the integrator who reads the response."""

    field: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass(frozen=True)
class Outcome:
    """What happened to one submitted case (one item of the API's `results`)."""

    case_id: str | None
    outcome: OutcomeKind
    survey_id: int | None = None
    errors: tuple[FieldError, ...] = ()
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "case_id": self.case_id,
            "outcome": self.outcome.value,
            "survey_id": self.survey_id,
        }
        if self.reason is not None:
            data["reason"] = self.reason
        if self.errors:
            data["errors"] = [error.as_json() for error in self.errors]
        return data


def _iso_text(value: object) -> object:
    """Only ISO 8601 text is a time here: numbers would be silently read as Unix seconds."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string")
    return value


IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class CaseIn(BaseModel):
    """A case object exactly as contract.md describes it. Unknown fields are ignored (the one-stop
    system may send more than we need); empty strings and nulls in optional fields mean absent."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    case_id: Code
    agency_code: Code
    procedure_code: Code
    phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    zalo_user_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    closed_at: IsoTime
    received_at: IsoTime | None = None
    due_at: IsoTime | None = None
    apology_sent: bool = False
    channel: Literal["sms", "zalo"] | None = None
    language: Literal["vi", "en"] = "vi"
    agency_name: Annotated[str, StringConstraints(max_length=255)] | None = None
    procedure_name: Annotated[str, StringConstraints(max_length=512)] | None = None


_OPTIONAL = frozenset(name for name, info in CaseIn.model_fields.items() if not info.is_required())


@dataclass(frozen=True)
class ValidCase:
    """A case that passed validation, with its phone in canonical E.164 form."""

    data: CaseIn
    phone: str | None  # E.164

    @property
    def case_id(self) -> str:
        return self.data.case_id


class CaseValidationError(ValueError):
    """The case cannot be accepted; `errors` lists every field problem found."""

    def __init__(self, case_id: str | None, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.case_id = case_id
        self.errors = tuple(errors)


def _message(error: Mapping[str, Any]) -> str:
    """Pydantic's error, said for an integrator (and without echoing the value, which may be a phone)."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "string_type":
        return "must be a string"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "timezone_aware":
        return f"must include a UTC offset, e.g. {_EXAMPLE_TIME}"
    if kind.startswith(("datetime", "date")) or kind == "value_error":
        return f"must be an ISO 8601 date-time with offset, e.g. {_EXAMPLE_TIME}"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    return str(error["msg"])


def _given_case_id(raw: object) -> str | None:
    """The case_id to echo in a rejection, when the caller sent a usable one."""
    if isinstance(raw, Mapping):
        value = raw.get("case_id")
        if isinstance(value, str) and value.strip():
            return value.strip()[:64]
    return None


def validate_case(raw: object, now: datetime) -> ValidCase:
    """Check one case object against the contract; raises CaseValidationError listing every problem."""
    if not isinstance(raw, Mapping):
        raise CaseValidationError(None, [FieldError("", "a case must be a JSON object")])
    cleaned = {
        key: value
        for key, value in raw.items()
        if not (key in _OPTIONAL and (value is None or (isinstance(value, str) and not value.strip())))
    }
    errors: list[FieldError] = []
    try:
        data = CaseIn.model_validate(cleaned)
    except ValidationError as exc:
        errors = [
            FieldError(".".join(str(part) for part in err["loc"]), _message(err))
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise CaseValidationError(_given_case_id(raw), errors) from None
    phone: str | None = None
    if data.phone is not None:
        try:
            phone = normalize_phone(data.phone)
        except InvalidPhoneError as exc:
            errors.append(FieldError("phone", str(exc)))
    elif data.zalo_user_id is None:
        errors.append(FieldError("phone", "is required unless zalo_user_id is given"))
    if data.closed_at > now + CLOCK_SKEW:
        errors.append(FieldError("closed_at", "is in the future"))
    if data.received_at is not None and data.received_at > data.closed_at:
        errors.append(FieldError("received_at", "must not be after closed_at"))
    if errors:
        raise CaseValidationError(data.case_id, errors)
    return ValidCase(data=data, phone=phone)


def derive_on_time(closed_at: datetime, due_at: datetime | None, tz: ZoneInfo) -> OnTime | None:
    """early / on_time / late, the one-stop system's own categories (trước hạn, đúng hạn, quá hạn):
    late when closed after the due instant; early when closed on a local calendar day before the due
    day; on_time otherwise (on the due day, by the due time). None when there was no due date."""
    if due_at is None:
        return None
    if closed_at > due_at:
        return OnTime.LATE
    if closed_at.astimezone(tz).date() < due_at.astimezone(tz).date():
        return OnTime.EARLY
    return OnTime.ON_TIME


def sampling_draw(secret: str, case_id: str) -> float:
    """A number in [0, 1) fixed by the case id and the service secret: a resent case gets the same
    draw (and so the same decision), and the one-stop system cannot predict which cases are asked."""
    digest = hmac.new(
        secret.encode("utf-8"), b"sipas-sampling\x00" + case_id.encode("utf-8"), hashlib.sha256
    ).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_sampled(secret: str, case_id: str, probability: float) -> bool:
    return sampling_draw(secret, case_id) < probability


def count_outcomes(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """Outcome -> number of cases, for logs and CLI summaries."""
    return dict(Counter(outcome.outcome.value for outcome in outcomes))


@dataclass
class _Batch:
    """What one call of submit_cases shares between its cases."""

    session: Session
    vault: PhoneVault
    settings: Settings
    now: datetime
    rules: RuleBook
    agencies: dict[str, Agency | None] = field(default_factory=dict)

    def agency(self, code: str) -> Agency | None:
        if code not in self.agencies:
            self.agencies[code] = get_by_code(self.session, code)
        return self.agencies[code]


def submit_cases(
    session: Session, vault: PhoneVault, settings: Settings, cases: Sequence[object], now: datetime
) -> list[Outcome]:
    """Store and decide each case (see the module docstring); one Outcome per case, in order.
    Runs inside the caller's transaction: nothing is committed here."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    batch = _Batch(
        session=session,
        vault=vault,
        settings=settings,
        now=now.astimezone(UTC),
        rules=RuleBook(session, settings),
    )
    return [_submit_one(batch, raw) for raw in cases]


def _submit_one(batch: _Batch, raw: object) -> Outcome:
    try:
        case = validate_case(raw, batch.now)
    except CaseValidationError as exc:
        return Outcome(exc.case_id, OutcomeKind.REJECTED, errors=exc.errors)
    original = _stored_case(batch.session, case.case_id)
    if original is not None:
        return _duplicate(batch.session, original)
    agency = batch.agency(case.data.agency_code)
    if agency is None:
        error = FieldError("agency_code", "is not in the agency registry")
        return Outcome(case.case_id, OutcomeKind.REJECTED, errors=(error,))
    try:
        with batch.session.begin_nested():
            return _store(batch, case, agency)
    except IntegrityError:
        # A concurrent request stored the same case_id between our check and our insert.
        original = _stored_case(batch.session, case.case_id)
        if original is None:
            raise
        return _duplicate(batch.session, original)


def _stored_case(session: Session, case_id: str) -> Case | None:
    return session.scalar(select(Case).where(Case.case_id == case_id))


def _duplicate(session: Session, original: Case) -> Outcome:
    survey_id = session.scalar(select(Survey.id).where(Survey.case_pk == original.id))
    return Outcome(original.case_id, OutcomeKind.DUPLICATE, survey_id=survey_id)


def _channel(batch: _Batch, agency: Agency, case: ValidCase) -> tuple[Channel, Route | None, str]:
    """(channel, Zalo route, flow name) by the agency's channel rule (flows.channel_policy): Zalo
    only where we can reach the citizen there (their OA user id, or a ZNS template by phone for
    `zalo_first` agencies); everyone else is asked by SMS."""
    policy = batch.rules.for_agency(agency).channel
    channel, route = choose_start(
        policy,
        has_phone=case.phone is not None,
        has_oa_user=case.data.zalo_user_id is not None,
        preference=Channel(case.data.channel) if case.data.channel is not None else None,
        zns_ready=bool(batch.settings.ZNS_RATING_TEMPLATE_ID),
    )
    return channel, route, policy.flow_for(channel)


def _decide(
    batch: _Batch, case: ValidCase, agency: Agency, phone_hash: str | None, zalo_hash: str | None
) -> tuple[OutcomeKind, str | None, float]:
    """(outcome, not-sampled reason, inclusion probability) for a new case."""
    session, data = batch.session, case.data
    probability = batch.rules.sampling_probability(agency, batch.now)
    identities = [h for h in (phone_hash, zalo_hash) if h is not None]
    opted_out = select(OptOut.phone_hash).where(OptOut.phone_hash.in_(identities)).limit(1)
    if session.scalar(opted_out) is not None:
        return OutcomeKind.OPTED_OUT, None, probability
    if phone_hash is not None and is_staff_phone(session, agency.id, phone_hash):
        return OutcomeKind.STAFF_NUMBER, None, probability
    if data.closed_at < batch.now - MAX_CASE_AGE:
        return OutcomeKind.NOT_SAMPLED, NotSampledReason.CLOSED_TOO_LONG_AGO, probability
    if not is_sampled(batch.settings.SIPAS_SECRET_KEY, data.case_id, probability):
        return OutcomeKind.NOT_SAMPLED, NotSampledReason.SAMPLE_DRAW, probability
    if _recently_surveyed(batch, agency, phone_hash, zalo_hash):
        return OutcomeKind.FREQUENCY_CAPPED, None, probability
    return OutcomeKind.SCHEDULED, None, probability


def _recently_surveyed(batch: _Batch, agency: Agency, phone_hash: str | None, zalo_hash: str | None) -> bool:
    """The same citizen (by phone or Zalo id, any agency) has a survey still under way, or one
    created within the frequency cap of this case's agency: nobody is asked twice in a short time."""
    same_person = []
    if phone_hash is not None:
        same_person.append(Case.phone_hash == phone_hash)
    if zalo_hash is not None:
        same_person.append(Case.zalo_user_hash == zalo_hash)
    since = batch.now - timedelta(days=batch.rules.for_agency(agency).frequency_cap_days)
    found = batch.session.scalar(
        select(Survey.id)
        .join(Case, Survey.case_pk == Case.id)
        .where(
            or_(*same_person),
            or_(
                Survey.created_at >= since,
                Survey.status.in_([SurveyStatus.SCHEDULED, SurveyStatus.ACTIVE]),
            ),
        )
        .limit(1)
    )
    return found is not None


def _store(batch: _Batch, case: ValidCase, agency: Agency) -> Outcome:
    data, vault, settings = case.data, batch.vault, batch.settings
    phone_hash = vault.lookup_hash(case.phone) if case.phone is not None else None
    zalo_hash = vault.lookup_hash(data.zalo_user_id) if data.zalo_user_id is not None else None
    outcome, reason, probability = _decide(batch, case, agency, phone_hash, zalo_hash)
    record = Case(
        case_id=data.case_id,
        agency_id=agency.id,
        procedure_code=data.procedure_code,
        procedure_name=data.procedure_name,
        phone_enc=vault.encrypt(case.phone) if case.phone is not None else None,
        phone_hash=phone_hash,
        zalo_user_id_enc=vault.encrypt(data.zalo_user_id) if data.zalo_user_id is not None else None,
        zalo_user_hash=zalo_hash,
        closed_at=data.closed_at,
        received_at=data.received_at,
        due_at=data.due_at,
        on_time=derive_on_time(data.closed_at, data.due_at, settings.tz),
        apology_sent=data.apology_sent,
        channel_pref=Channel(data.channel) if data.channel is not None else None,
        language=data.language,
        outcome=outcome.value,
        created_at=batch.now,
    )
    batch.session.add(record)
    batch.session.flush()
    if outcome is not OutcomeKind.SCHEDULED:
        return Outcome(data.case_id, outcome, reason=reason)
    channel, route, flow_name = _channel(batch, agency, case)
    # The survey keeps the flow version live now, whatever is published later (flows.versions).
    flow = live_version(batch.session, agency.id, channel, batch.now, configured_name=flow_name)
    survey = Survey(
        case_pk=record.id,
        agency_id=agency.id,
        flow_name=flow.name,
        flow_version=flow.version,
        channel=channel,
        zalo_route=route,
        language=data.language,
        status=SurveyStatus.SCHEDULED,
        inclusion_probability=probability,
        phone_hash=phone_hash,
        state={},
        created_at=batch.now,
    )
    batch.session.add(survey)
    batch.session.flush()
    batch.session.add(
        Timer(
            survey_id=survey.id,
            kind=TimerKind.FIRST_MESSAGE,
            due_at=_first_message_at(batch, agency, data),
        )
    )
    batch.session.flush()
    return Outcome(data.case_id, OutcomeKind.SCHEDULED, survey_id=survey.id)


def _first_message_at(batch: _Batch, agency: Agency, data: CaseIn) -> datetime:
    """closed_at + the agency's delay, but never in the past (a late-arriving case is asked now),
    moved to the next opening of its send window when it falls in the citizen's quiet hours or
    on one of its holidays."""
    rules = batch.rules.for_agency(agency)
    wanted = max(data.closed_at + rules.first_message_delay, batch.now)
    return rules.next_send_time(wanted.astimezone(UTC))
