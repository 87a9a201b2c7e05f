"""The service's tables. All timestamps are stored in UTC; personal identifiers only encrypted.

Naming: `*_enc` columns hold Fernet ciphertext (see storage.crypto), `*_hash` columns the
keyed look-up hash of the same value.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend (SQLite drops the offset; we store UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        int: Integer(),
    }


def _enum(cls: type[enum.Enum]) -> Enum:
    """Enums stored as their string values (portable, readable in SQL)."""
    return Enum(cls, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])


class AgencyLevel(enum.StrEnum):
    PROVINCE = "province"
    DEPARTMENT = "department"
    DISTRICT = "district"
    COMMUNE = "commune"


class OnTime(enum.StrEnum):
    EARLY = "early"
    ON_TIME = "on_time"
    LATE = "late"


class Channel(enum.StrEnum):
    SMS = "sms"
    ZALO = "zalo"


class Route(enum.StrEnum):
    """Which API carries a message (Channel says which family it belongs to, for scores)."""

    SMS = "sms"  # the SMS gateway (Kannel), to the case's phone
    ZALO_OA = "zalo_oa"  # Official Account customer-service message, to the OA user id
    ZALO_BOT = "zalo_bot"  # Zalo Bot Platform sendMessage, to the chat that wrote to the bot
    ZNS = "zns"  # ZNS template by phone: first contact only, it cannot carry a conversation


class SurveyStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for its first message time
    ACTIVE = "active"  # opening sent, waiting for answers
    COMPLETED = "completed"
    EXPIRED = "expired"
    OPTED_OUT = "opted_out"
    FAILED = "failed"  # could not be delivered on any channel


class OutboxStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    # The gateway may or may not have taken it (worker died mid-send, the answer was lost): never
    # resent by itself; a delivery report or `sipas outbox resolve` settles it (storage.outbox).
    UNKNOWN = "unknown"


class TimerKind(enum.StrEnum):
    FIRST_MESSAGE = "first_message"
    REMINDER = "reminder"
    EXPIRE = "expire"


class Agency(Base):
    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    level: Mapped[AgencyLevel] = mapped_column(_enum(AgencyLevel))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Chance that one of its closed cases is surveyed (0 <= p <= 1; 0 pauses surveys); None = 1.0.
    sampling_probability: Mapped[float | None] = mapped_column(Float)
    # Local days the unit exists (None: open-ended); a merged unit names the unit that took it over.
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    successor_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))

    parent: Mapped[Agency | None] = relationship(remote_side=[id], foreign_keys=[parent_id])


class StaffPhone(Base):
    """Numbers of an agency's own staff: never surveyed about that agency. The hash is what intake
    matches; the encrypted number lets staff see the list (masked) and remove one. Rows registered
    before 0014 hold only the hash."""

    __tablename__ = "staff_phones"
    __table_args__ = (UniqueConstraint("agency_id", "phone_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    phone_hash: Mapped[str] = mapped_column(String(64))
    phone_enc: Mapped[str | None] = mapped_column(Text)


class OptOut(Base):
    """A refusal, honoured at once and kept (also after the contact data is purged)."""

    __tablename__ = "opt_outs"

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the citizen asked to opt back in (DK); the refusal is lifted only when they confirm
    # within flows.opt_in.CONFIRM_WITHIN (a second DK, or CO).
    rejoin_requested_at: Mapped[datetime | None]


class Case(Base):
    """A closed one-stop case as received; kept whether or not it was sampled."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[str] = mapped_column(String(64), unique=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    procedure_code: Mapped[str] = mapped_column(String(64))
    procedure_name: Mapped[str | None] = mapped_column(String(512))
    phone_enc: Mapped[str | None] = mapped_column(Text)
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    zalo_user_id_enc: Mapped[str | None] = mapped_column(Text)
    zalo_user_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    closed_at: Mapped[datetime] = mapped_column(index=True)
    received_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    on_time: Mapped[OnTime | None] = mapped_column(_enum(OnTime))
    apology_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    channel_pref: Mapped[Channel | None] = mapped_column(_enum(Channel))
    language: Mapped[str] = mapped_column(String(8), default="vi")
    outcome: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    agency: Mapped[Agency] = relationship()


class Survey(Base):
    """One survey per sampled case: which flow, which channel, where the conversation is."""

    __tablename__ = "surveys"
    __table_args__ = (Index("ix_surveys_phone_status", "phone_hash", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_pk: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    flow_name: Mapped[str] = mapped_column(String(64))
    flow_version: Mapped[int] = mapped_column(Integer, default=1)
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    language: Mapped[str] = mapped_column(String(8), default="vi")
    status: Mapped[SurveyStatus] = mapped_column(_enum(SurveyStatus), index=True)
    inclusion_probability: Mapped[float] = mapped_column(Float, default=1.0)
    phone_hash: Mapped[str | None] = mapped_column(String(64))
    # Where the conversation is: its one record, read and written under the row lock (flows.survey).
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state_version: Mapped[int] = mapped_column(Integer, default=0)
    fallback_reason: Mapped[str | None] = mapped_column(String(255))
    # Zalo surveys: the API the conversation uses (None on SMS), the bot/OA chat linked by a
    # start code (encrypted, plus its look-up hash) and that code (flows.routes, docs/zalo.md).
    zalo_route: Mapped[Route | None] = mapped_column(_enum(Route))
    zalo_chat_enc: Mapped[str | None] = mapped_column(Text)
    zalo_chat_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    start_code: Mapped[str | None] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    last_activity_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    case: Mapped[Case] = relationship()


class OutboundMessage(Base):
    """The outbox: a message is stored here before any attempt to send it."""

    __tablename__ = "outbound_messages"
    __table_args__ = (Index("ix_outbound_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stable key of what this message is (e.g. "survey:12:q1:0"): a retried job never adds a twin.
    dedupe_key: Mapped[str] = mapped_column(String(128), unique=True)
    survey_id: Mapped[int | None] = mapped_column(ForeignKey("surveys.id"), index=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    # The API that sends it; None means the channel's usual one (SMS: Kannel, Zalo: the OA).
    route: Mapped[Route | None] = mapped_column(_enum(Route))
    recipient_enc: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    # Structured content the route needs besides the text (ZNS: the template data).
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(128), index=True)
    segments: Mapped[int] = mapped_column(Integer, default=1)
    coding: Mapped[str | None] = mapped_column(String(8))
    last_error: Mapped[str | None] = mapped_column(Text)
    dlr_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    # Who holds the current claim: a settlement from an older claim (a late worker) changes nothing.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    # When the current claim's request was about to leave (committed before the HTTP call): an
    # expired claim without it never reached the gateway and is sent again (storage.outbox).
    requested_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]


class InboundEvent(Base):
    """Anything a provider sent us (MO, delivery report, Zalo event), stored before the 2xx."""

    __tablename__ = "inbound_events"
    __table_args__ = (UniqueConstraint("provider", "provider_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    provider_id: Mapped[str] = mapped_column(String(128))
    sender_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # The raw request (query/body), encrypted: it holds the sender's number in clear.
    payload_enc: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str | None] = mapped_column(String(255))
    # Set when processing failed too often (storage.inbound.MAX_EVENT_ATTEMPTS): the event is set
    # aside, never retried by itself (`sipas dead-letters list|retry|drop`).
    dead_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class Answer(Base):
    """The first understood answer per (survey, question): what scores count."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("survey_id", "question_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    flow_name: Mapped[str] = mapped_column(String(64))
    flow_version: Mapped[int] = mapped_column(Integer)
    question_key: Mapped[str] = mapped_column(String(64))
    criterion_code: Mapped[str | None] = mapped_column(String(64), index=True)
    value: Mapped[int | None] = mapped_column(Integer)
    text_value: Mapped[str | None] = mapped_column(Text)
    raw_text: Mapped[str | None] = mapped_column(Text)
    inbound_event_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_events.id"))
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)


class Comment(Base):
    """Free text a citizen wrote that is not a recorded value (kept NFC; masked when shown)."""

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    question_key: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    inbound_event_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_events.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Timer(Base):
    """Something that must happen to a survey at a time; the cron sweep turns due ones into jobs."""

    __tablename__ = "timers"
    __table_args__ = (
        UniqueConstraint("survey_id", "kind"),
        Index("ix_timers_due", "fired_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"))
    kind: Mapped[TimerKind] = mapped_column(_enum(TimerKind))
    due_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]


class _Counts:
    """The columns a row of counts carries, whatever its key (DailyCount, DailyProcedureCount)."""

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    day: Mapped[date] = mapped_column(Date, index=True)
    channel: Mapped[str] = mapped_column(String(8))
    metric: Mapped[str] = mapped_column(String(64))
    n: Mapped[int] = mapped_column(Integer, default=0)
    k: Mapped[int] = mapped_column(Integer, default=0)
    # Criterion rows: design weights (1/p) of the n answers, of the k answers, and their squares.
    w: Mapped[float] = mapped_column(Float, default=0.0)
    wk: Mapped[float] = mapped_column(Float, default=0.0)
    w2: Mapped[float] = mapped_column(Float, default=0.0)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class DailyCount(_Counts, Base):
    """Per agency, local day and channel: the counts every score is computed from.

    `channel` is "sms", "zalo" or "all". `metric` is a criterion code (n = valid answers,
    k = satisfied answers) or a case/survey counter such as "cases_closed" (n only).
    Rows for a day are replaced as a whole by the nightly job, so recomputing is idempotent.
    """

    __tablename__ = "daily_counts"
    __table_args__ = (UniqueConstraint("agency_id", "day", "channel", "metric"),)


class DailyProcedureCount(_Counts, Base):
    """The same counts split by the case's procedure (thủ tục hành chính): for each procedure the
    rows of the cases of that procedure alone, so the rows of all procedures add up to DailyCount.

    Kept apart from DailyCount so that the views of every procedure (the usual ones) read no more
    rows than before; the key leads with the procedure, which is what a filtered view asks for.
    """

    __tablename__ = "daily_procedure_counts"
    __table_args__ = (
        UniqueConstraint(
            "procedure_code", "day", "agency_id", "channel", "metric", name="uq_daily_procedure_counts_key"
        ),
    )

    procedure_code: Mapped[str] = mapped_column(String(64))


class MonthlyCount(_Counts, Base):
    """DailyCount rows summed per calendar month: `day` is the month's first day. Written by the
    same transaction as the daily rows (flows.scores.counts.roll_up_months), so a view of months
    (a quarter, a year, a 12-month trend) sums a few thousand rows instead of a year of days."""

    __tablename__ = "monthly_counts"
    __table_args__ = (
        UniqueConstraint("agency_id", "day", "channel", "metric", name="uq_monthly_counts_key"),
    )


class MonthlyProcedureCount(_Counts, Base):
    """DailyProcedureCount rows summed per calendar month (`day`: the month's first day)."""

    __tablename__ = "monthly_procedure_counts"
    __table_args__ = (
        UniqueConstraint(
            "procedure_code", "day", "agency_id", "channel", "metric", name="uq_monthly_procedure_counts_key"
        ),
    )

    procedure_code: Mapped[str] = mapped_column(String(64))


class UnitPoint(Base):
    """A unit's own SIPAS index and overall satisfaction (its direct cases only, not rolled up) for
    one local day or one calendar month (`span`; `day` is then the month's first day), per channel
    and procedure ("" = every procedure), with its closed cases (the weight of the roll-up).

    The trend charts combine these along the tree (flows.scores.trend): a province's 30-day trend
    reads one row per unit and day instead of every criterion's counts. Written from the counts,
    in the same transaction, by flows.scores.rollup; derived data like the counts themselves.
    """

    __tablename__ = "unit_points"
    __table_args__ = (
        UniqueConstraint("procedure_code", "span", "channel", "day", "agency_id", name="uq_unit_points_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    procedure_code: Mapped[str] = mapped_column(String(64))
    span: Mapped[str] = mapped_column(String(8))  # "day" or "month"
    day: Mapped[date] = mapped_column(Date, index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    channel: Mapped[str] = mapped_column(String(8))
    cases: Mapped[int] = mapped_column(Integer)
    sipas: Mapped[float | None] = mapped_column(Float)
    sipas_n: Mapped[int] = mapped_column(Integer)
    sipas_n_eff: Mapped[float] = mapped_column(Float)
    overall: Mapped[float | None] = mapped_column(Float)
    overall_n: Mapped[int] = mapped_column(Integer)
    overall_n_eff: Mapped[float] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Procedure(Base):
    """An administrative procedure seen in closed cases, with the latest name the one-stop system
    gave it: what the pages offer in their procedure filter (written by the nightly counts)."""

    __tablename__ = "procedures"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(512))


class AnomalyFlag(Base):
    """Something odd in an agency's data of one local day, for supervisors to look at
    (flows.scores.anomalies): recomputed with the day's counts, so rows of a day are replaced."""

    __tablename__ = "anomaly_flags"
    __table_args__ = (UniqueConstraint("agency_id", "day", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    day: Mapped[date] = mapped_column(Date, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token of the scores API, scoped to an agency's subtree; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Digest(Base):
    """A supervisor's digest of one local day on one channel (email, zalo): the rendered message
    is kept (the archive the pages list) and the row says whether and when it was sent."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("day", "username", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    username: Mapped[str] = mapped_column(String(64))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    channel: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued, sent, failed
    subject: Mapped[str] = mapped_column(String(255))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class ZaloOAToken(Base):
    """The OA's current OAuth pair, one row per Zalo app, both tokens encrypted.

    Zalo's refresh token is single-use: the row is replaced at every refresh, before the new access
    token is used, under a Redis lock so only one process refreshes (bot.channels.zalo.token_store).
    """

    __tablename__ = "zalo_oa_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64), unique=True)
    access_token_enc: Mapped[str] = mapped_column(Text)
    refresh_token_enc: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime]
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)
    generation: Mapped[int] = mapped_column(Integer, default=1)


class FlowVersion(Base):
    """A published survey flow: immutable, numbered per flow name (`sipas flows publish`).

    `definition` is the checked flow as JSON (what surveys run), `source` the file as staff wrote
    it (comments included), `checksum` the SHA-256 of the definition without its version: the same
    content published twice is stored once.
    """

    __tablename__ = "flow_versions"
    __table_args__ = (UniqueConstraint("name", "version"), UniqueConstraint("name", "checksum"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str | None] = mapped_column(String(128))


class FlowAssignment(Base):
    """Which flow version is live for new surveys of an agency (None: every agency without its
    own) on a channel. Append-only: the latest row of a scope is the live one, earlier rows are
    the history of what was live when."""

    __tablename__ = "flow_assignments"
    __table_args__ = (Index("ix_flow_assignments_scope", "agency_id", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    flow_version_id: Mapped[int] = mapped_column(ForeignKey("flow_versions.id"))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
    assigned_by: Mapped[str | None] = mapped_column(String(128))

    flow_version: Mapped[FlowVersion] = relationship()
    agency: Mapped[Agency | None] = relationship()


class UserRole(enum.StrEnum):
    """What an account may do within its agency's subtree (docs/pages.md)."""

    ADMIN = "admin"  # everything, everywhere
    STAFF = "staff"  # configure and read their subtree
    SUPERVISOR = "supervisor"  # read their subtree


class User(Base):
    """A person who logs in to the pages (and receives digests): staff, supervisors, admins.

    The password is kept only as an argon2 hash (storage.users). `failed_logins` counts wrong
    passwords since the last good one; `locked_until` is set when they reach the lock-out limit.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[UserRole] = mapped_column(_enum(UserRole))
    # The root of what the account sees; None only for an admin of the whole registry.
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    email: Mapped[str | None] = mapped_column(String(255))
    zalo_user_id: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="vi")
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    agency: Mapped[Agency | None] = relationship()


class AuditEntry(Base):
    """One change to configuration, in a hash chain (storage.audit): each row's `hash` covers its
    content and the previous row's hash, so an edited, inserted or deleted row breaks the chain.
    `prev_hash` is unique: two writers can never both extend the same row."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(255))
    # The agency the change concerns (staff see the entries of their subtree); None = global.
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AgencyRule(Base):
    """One survey rule set on one agency (flows.rules names them and resolves inheritance: a unit
    without its own value takes its nearest ancestor's, then the service default)."""

    __tablename__ = "agency_rules"
    __table_args__ = (UniqueConstraint("agency_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    name: Mapped[str] = mapped_column(String(40))
    # JSON so one table holds every kind of rule: a number, a string, a list of dates, a mapping.
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(128))


class InboxStatus(enum.StrEnum):
    NEW = "new"
    READ = "read"
    HANDLED = "handled"
    FORWARDED = "forwarded"


class InboxMessage(Base):
    """A citizen's message that arrived outside any survey: kept for the staff of the unit that
    handled the phone's latest case (None: no case known for the number), sender encrypted."""

    __tablename__ = "inbox_messages"
    __table_args__ = (Index("ix_inbox_agency_status", "agency_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    inbound_event_id: Mapped[int] = mapped_column(ForeignKey("inbound_events.id"), unique=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    sender_enc: Mapped[str] = mapped_column(Text)
    sender_hash: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[InboxStatus] = mapped_column(_enum(InboxStatus), default=InboxStatus.NEW)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The automatic "this number only collects survey answers" reply, when one was queued for it.
    auto_reply_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_messages.id"))
    handled_at: Mapped[datetime | None]
    handled_by: Mapped[str | None] = mapped_column(String(128))
    forwarded_to: Mapped[str | None] = mapped_column(String(255))

    agency: Mapped[Agency | None] = relationship()


class ReadinessProbe(Base):
    """Always empty: `/readyz` inserts a row here and rolls back, proving the database takes
    writes (a read-only database or standby answers SELECT but refuses this)."""

    __tablename__ = "readiness_probes"

    id: Mapped[int] = mapped_column(primary_key=True)
    probed_at: Mapped[datetime] = mapped_column(default=utcnow)
