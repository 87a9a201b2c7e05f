"""Sending the nightly digests: one e-mail and one Zalo message per supervisor and day.

- Who: accounts with role supervisor, not disabled, attached to an agency; the e-mail goes to
  those with an address, the Zalo message (through the OA, as an outbox row) to those with a
  Zalo user id. Supervisors of the same agency share one gathering of figures and one chart per
  language; each gets the digest in the account's language (`users.language`: vi or en).
- Once: a digest row (storage.models.Digest) per day, supervisor and channel keeps the rendered
  message (the archive the pages list) and its state; a day already sent to a supervisor is not
  sent again unless `force`.
- Failures: each supervisor is handled on its own, so one failure (SMTP refused an address, a
  figure could not be gathered) never blocks the others. A failed e-mail stays `failed` with its
  error; the nightly job re-enqueues itself with growing delays until every e-mail has gone or
  MAX_ATTEMPTS is reached. A Zalo digest is an outbox message and is retried like any other.
"""

from __future__ import annotations

import smtplib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.mail import Mailer, SmtpMailer
from bot.web.i18n import LANGUAGES
from flows.scores.periods import yesterday
from flows.scores.report import UnknownAgencyError
from storage import outbox
from storage.agencies import get_by_code
from storage.models import Agency, Channel, Digest, Route, User, UserRole
from storage.users import subtree_ids
from workers.digest.content import DigestContent, gather
from workers.digest.message import RenderedDigest, email_message, render, zalo_text
from workers.queues import SCORES_QUEUE, queue
from workers.runtime import Runtime, get_runtime
from workers.sending import enqueue_sends

log = structlog.get_logger(__name__)

EMAIL, ZALO = "email", "zalo"
SENT, QUEUED, FAILED = "sent", "queued", "failed"
MAX_ATTEMPTS = 5
RETRY_DELAYS = (timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=3))


@dataclass
class DigestRun:
    """What one run did, per channel and outcome; `written` are the dry-run files."""

    day: date
    sent: int = 0
    queued_zalo: int = 0
    already_sent: int = 0
    failed: int = 0
    no_smtp: int = 0
    written: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "sent": self.sent,
            "queued_zalo": self.queued_zalo,
            "already_sent": self.already_sent,
            "failed": self.failed,
            "no_smtp": self.no_smtp,
            "written": [str(path) for path in self.written],
        }


def supervisors(session: Session, agency_code: str | None) -> list[User]:
    """Active supervisors (attached to an agency), of `agency_code`'s subtree when given."""
    query = select(User).where(
        User.role == UserRole.SUPERVISOR, User.disabled.is_(False), User.agency_id.is_not(None)
    )
    users = list(session.scalars(query.order_by(User.username)))
    if agency_code is None:
        return users
    root = get_by_code(session, agency_code)
    if root is None:
        raise UnknownAgencyError(f"no agency with code {agency_code!r}")
    scope = subtree_ids(session, root.id) or set()
    return [user for user in users if user.agency_id in scope]


def _language(user: User) -> str:
    """The account's language for its digest (Vietnamese unless it reads English)."""
    return user.language if user.language in LANGUAGES else "vi"


def send_digests(
    runtime: Runtime,
    day: date,
    *,
    agency_code: str | None = None,
    dry_run: Path | None = None,
    force: bool = False,
    mailer: Mailer | None = None,
) -> DigestRun:
    """Every supervisor's digest of `day` (see the module docstring)."""
    from workers.digest.chart import chart_png  # matplotlib loads in ~1 s: only when digests are made

    settings = runtime.settings
    run = DigestRun(day)
    if mailer is None and settings.SMTP_HOST:
        mailer = SmtpMailer(settings)
    with runtime.sessions() as session:
        users = supervisors(session, agency_code)
        by_agency: defaultdict[int, list[tuple[str, str | None, str | None, str]]] = defaultdict(list)
        for user in users:
            assert user.agency_id is not None
            by_agency[user.agency_id].append((user.username, user.email, user.zalo_user_id, _language(user)))
        codes = {a.id: a.code for a in session.scalars(select(Agency).where(Agency.id.in_(by_agency)))}
    for agency_id, people in sorted(by_agency.items()):
        try:
            with runtime.sessions() as session:
                content = gather(session, day, codes[agency_id], settings)
            charts = {lang: chart_png(content, lang) for lang in sorted({person[3] for person in people})}
        except Exception:  # one unit's failure must not stop the others' digests
            log.exception("digest_gather_failed", agency=codes[agency_id], day=day.isoformat())
            run.failed += len(people)
            continue
        for username, email, zalo_user_id, lang in people:
            try:
                _one(
                    runtime,
                    run,
                    content,
                    charts[lang],
                    (username, email, zalo_user_id, lang),
                    dry_run,
                    force,
                    mailer,
                )
            except Exception:
                log.exception("digest_failed", user=username, day=day.isoformat())
                run.failed += 1
    log.info("digests", **run.as_dict())
    return run


def _one(
    runtime: Runtime,
    run: DigestRun,
    content: DigestContent,
    chart: bytes,
    person: tuple[str, str | None, str | None, str],
    dry_run: Path | None,
    force: bool,
    mailer: Mailer | None,
) -> None:
    """One supervisor's digest: (username, e-mail, Zalo user id, language)."""
    settings = runtime.settings
    username, email, zalo_user_id, lang = person
    rendered = render(
        content,
        username=username,
        public_url=settings.public_url,
        minimum=settings.SIPAS_MIN_RESPONSES,
        lang=lang,
    )
    sender = settings.SMTP_FROM or f"sipas@{settings.HOST}"
    if dry_run is not None:
        if email:
            path = dry_run / f"digest-{content.day.isoformat()}-{username}.eml"
            path.write_bytes(email_message(rendered, chart, sender=sender, recipient=email).as_bytes())
            run.written.append(path)
        return
    if email:
        if mailer is None:
            run.no_smtp += 1
        else:
            _email(runtime, run, username, content, rendered, chart, email, sender, force, mailer)
    if zalo_user_id:
        _zalo(runtime, run, content, username, rendered, zalo_user_id, force, lang)


def _archive(
    session: Session,
    day: date,
    username: str,
    agency_code: str,
    channel: str,
    rendered: RenderedDigest,
    text: str,
) -> Digest:
    row = session.scalar(
        select(Digest).where(Digest.day == day, Digest.username == username, Digest.channel == channel)
    )
    agency = get_by_code(session, agency_code)
    assert agency is not None
    if row is None:
        row = Digest(
            day=day, username=username, channel=channel, agency_id=agency.id, status=QUEUED, attempts=0
        )
        session.add(row)
    row.subject, row.html, row.text, row.agency_id = rendered.subject, rendered.html, text, agency.id
    return row


def _already(session: Session, day: date, username: str, channel: str, done: tuple[str, ...]) -> bool:
    status = session.scalar(
        select(Digest.status).where(Digest.day == day, Digest.username == username, Digest.channel == channel)
    )
    return status in done


def _email(
    runtime: Runtime,
    run: DigestRun,
    username: str,
    content: DigestContent,
    rendered: RenderedDigest,
    chart: bytes,
    email: str,
    sender: str,
    force: bool,
    mailer: Mailer,
) -> None:
    day = content.day
    with runtime.sessions() as session, session.begin():
        if not force and _already(session, day, username, EMAIL, (SENT,)):
            run.already_sent += 1
            return
        row = _archive(session, day, username, content.agency_code, EMAIL, rendered, rendered.text)
        session.flush()
        row_id = row.id
    message = email_message(rendered, chart, sender=sender, recipient=email)
    try:
        mailer.send(message)
        error = None
    except (smtplib.SMTPException, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    with runtime.sessions() as session, session.begin():
        row = session.get_one(Digest, row_id)
        row.attempts += 1
        if error is None:
            row.status, row.sent_at, row.last_error = SENT, datetime.now(UTC), None
            run.sent += 1
        else:
            row.status, row.last_error = FAILED, error
            run.failed += 1
            log.warning("digest_email_failed", user=username, day=day.isoformat(), error=error)


def _zalo(
    runtime: Runtime,
    run: DigestRun,
    content: DigestContent,
    username: str,
    rendered: RenderedDigest,
    zalo_user_id: str,
    force: bool,
    lang: str,
) -> None:
    text = zalo_text(content, runtime.settings.public_url, lang)
    with runtime.sessions() as session, session.begin():
        if not force and _already(session, content.day, username, ZALO, (QUEUED, SENT)):
            run.already_sent += 1
            return
        row = _archive(session, content.day, username, content.agency_code, ZALO, rendered, text)
        row.attempts += 1
        row.status = QUEUED
        session.flush()
        message = outbox.add_message(
            session,
            dedupe_key=f"digest:{row.id}:{row.attempts}",
            channel=Channel.ZALO,
            route=Route.ZALO_OA,
            recipient_enc=runtime.vault.encrypt(zalo_user_id),
            text=text,
        )
        session.flush()
        message_id = message.id
    enqueue_sends(runtime, [message_id])
    run.queued_zalo += 1


def send_nightly_digests(day_iso: str | None = None, attempt: int = 1) -> dict[str, Any]:
    """RQ job after the nightly scores: every digest of the day (default yesterday); e-mails that
    failed are tried again by the same job later, with growing delays, up to MAX_ATTEMPTS runs."""
    runtime = get_runtime()
    day = date.fromisoformat(day_iso) if day_iso else yesterday(runtime.settings.tz)
    run = send_digests(runtime, day)
    if run.failed and attempt < MAX_ATTEMPTS:
        delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]
        queue(runtime.redis, SCORES_QUEUE).enqueue_in(
            delay, send_nightly_digests, day.isoformat(), attempt + 1, job_id=f"digest-{day}-{attempt + 1}"
        )
    return {**run.as_dict(), "attempt": attempt}
