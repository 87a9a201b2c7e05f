"""The outbox rules that keep a message from being sent twice (issue 10 item 2), on SQLite and
PostgreSQL: capped attempts for every claim, `unknown` settled only by a delivery report or an
operator, settlements conditional on the claim token, and the lease longer than the timeout."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings, get_settings
from storage import outbox
from storage.crypto import PhoneVault
from storage.db import session_factory
from storage.models import Channel, OutboundMessage, OutboxStatus
from tests.conftest import SECRET_KEY
from workers.cli import cli
from workers.runtime import Runtime, get_runtime
from workers.sending import deliver

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def _add(sessions: sessionmaker[Session], vault: PhoneVault, key: str = "m:1") -> int:
    with sessions() as session, session.begin():
        row = outbox.add_message(
            session,
            dedupe_key=key,
            channel=Channel.SMS,
            recipient_enc=vault.encrypt("+84912345678"),
            text="Cau 1",
            not_before=NOW,
        )
        session.flush()
        return row.id


def _claim(sessions: sessionmaker[Session], message_id: int, now: datetime = NOW) -> outbox.Claim | None:
    with sessions() as session, session.begin():
        claims = outbox.claim_due(session, now, 10, ids=[message_id])
    return claims[0] if claims else None


def _row(sessions: sessionmaker[Session], message_id: int) -> OutboundMessage:
    with sessions() as session:
        row = session.get(OutboundMessage, message_id)
        assert row is not None
        return row


def _sent(sessions: sessionmaker[Session], message_id: int, token: str) -> bool:
    with sessions() as session, session.begin():
        settled = outbox.mark_sent(session, token, [outbox.SentRow(message_id, "p", 1, "gsm7")], NOW)
        return settled == [message_id]


def _fail(sessions: sessionmaker[Session], message_id: int, token: str, **kw: bool) -> outbox.Failure:
    with sessions() as session, session.begin():
        return outbox.mark_attempt_failed(
            session, message_id, token, error="boom", now=NOW, retryable=kw.get("retryable", True),
            ambiguous=kw.get("ambiguous", False),
        )  # fmt: skip


@pytest.fixture
def sessions_any(any_db_url: str) -> sessionmaker[Session]:
    return session_factory(any_db_url)


def test_attempts_are_capped_for_every_claim(sessions_any: sessionmaker[Session], vault: PhoneVault) -> None:
    message_id = _add(sessions_any, vault)
    later = NOW
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        claim = _claim(sessions_any, message_id, later)
        assert claim is not None
        assert claim.attempts == attempt
        failure = _fail(sessions_any, message_id, claim.token)
        later = failure.retry_at or later
    assert failure.outcome == "failed"
    # Even put back in the queue by hand, a row out of attempts is never claimed again.
    with sessions_any() as session, session.begin():
        row = session.get(OutboundMessage, message_id)
        assert row is not None
        row.status = OutboxStatus.QUEUED
    assert _claim(sessions_any, message_id, later + timedelta(hours=1)) is None


def test_an_expired_claim_whose_request_never_left_is_queued_again(
    sessions_any: sessionmaker[Session], vault: PhoneVault
) -> None:
    """Claimed, then the worker stopped before marking the request in flight: nothing reached the
    gateway, so the sweep queues it again; the lost claims count, and past the cap it fails."""
    message_id = _add(sessions_any, vault)
    lease = timedelta(seconds=60)
    now = NOW
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        claim = _claim(sessions_any, message_id, now)
        assert claim is not None
        assert claim.attempts == attempt
        now += lease + timedelta(seconds=1)
        with sessions_any() as session, session.begin():
            expired = outbox.expire_claims(session, now, lease)
        if attempt < outbox.MAX_ATTEMPTS:
            assert expired == outbox.Expired([], [message_id], [])
            row = _row(sessions_any, message_id)
            assert (row.status, row.claim_token, row.next_attempt_at) == (OutboxStatus.QUEUED, None, now)
            # The stopped worker's settlement, arriving late, changes nothing.
            assert not _sent(sessions_any, message_id, claim.token)
    assert expired == outbox.Expired([], [], [message_id])
    assert _row(sessions_any, message_id).status is OutboxStatus.FAILED
    assert _claim(sessions_any, message_id, now + timedelta(hours=1)) is None


def test_an_expired_claim_becomes_unknown_and_is_not_claimed_again(
    sessions_any: sessionmaker[Session], vault: PhoneVault
) -> None:
    message_id = _add(sessions_any, vault)
    claim = _claim(sessions_any, message_id)
    assert claim is not None
    with sessions_any() as session, session.begin():
        outbox.mark_requested(session, claim.token, [message_id], NOW)  # the request is leaving
    with sessions_any() as session, session.begin():
        assert outbox.expire_claims(session, NOW + timedelta(seconds=30), timedelta(seconds=60)) == (
            outbox.Expired([], [], [])
        )
        assert outbox.expire_claims(session, NOW + timedelta(seconds=61), timedelta(seconds=60)) == (
            outbox.Expired([message_id], [], [])
        )
        assert outbox.overdue(session, NOW + timedelta(hours=1), timedelta(seconds=30)) == []
    assert _row(sessions_any, message_id).status is OutboxStatus.UNKNOWN
    assert _claim(sessions_any, message_id, NOW + timedelta(hours=1)) is None
    # The late worker comes back: its own claim, so the gateway's "accepted" settles the row.
    assert _sent(sessions_any, message_id, claim.token)
    assert _row(sessions_any, message_id).status is OutboxStatus.SENT


def test_a_late_mark_sent_never_overwrites_a_delivery_report(
    sessions_any: sessionmaker[Session], vault: PhoneVault
) -> None:
    message_id = _add(sessions_any, vault)
    claim = _claim(sessions_any, message_id)
    assert claim is not None
    with sessions_any() as session, session.begin():
        assert outbox.apply_delivery_reports(
            session, [outbox.Report(message_id, outbox.Delivery.DELIVERED)], NOW
        ) == [True]
    assert _sent(sessions_any, message_id, claim.token)
    row = _row(sessions_any, message_id)
    assert (row.status, row.provider_id) == (OutboxStatus.DELIVERED, "p")


def test_a_settlement_from_an_old_claim_changes_nothing(
    sessions_any: sessionmaker[Session], vault: PhoneVault
) -> None:
    message_id = _add(sessions_any, vault)
    old = _claim(sessions_any, message_id)
    assert old is not None
    assert _fail(sessions_any, message_id, old.token, ambiguous=True).outcome == "unknown"
    with sessions_any() as session, session.begin():
        outbox.resolve(session, message_id, sent=False, now=NOW)
    new = _claim(sessions_any, message_id)
    assert new is not None
    assert new.token != old.token
    assert not _sent(sessions_any, message_id, old.token)
    assert _fail(sessions_any, message_id, old.token).outcome == "stale"
    row = _row(sessions_any, message_id)
    assert (row.status, row.claim_token) == (OutboxStatus.SENDING, new.token)


def test_delivery_reports_settle_an_unknown_message(
    sessions_any: sessionmaker[Session], vault: PhoneVault
) -> None:
    accepted, rejected = _add(sessions_any, vault, "m:a"), _add(sessions_any, vault, "m:r")
    for message_id in (accepted, rejected):
        claim = _claim(sessions_any, message_id)
        assert claim is not None
        assert _fail(sessions_any, message_id, claim.token, ambiguous=True).outcome == "unknown"
    with sessions_any() as session, session.begin():
        outbox.apply_delivery_reports(session, [outbox.Report(accepted, outbox.Delivery.ACCEPTED)], NOW)
        outbox.apply_delivery_reports(
            session, [outbox.Report(rejected, outbox.Delivery.FAILED, "kannel 16 smsc_rejected")], NOW
        )
    assert _row(sessions_any, accepted).status is OutboxStatus.SENT
    assert _row(sessions_any, rejected).status is OutboxStatus.FAILED


def test_an_operator_resend_allows_one_more_attempt_only(
    sessions_any: sessionmaker[Session], vault: PhoneVault
) -> None:
    message_id = _add(sessions_any, vault)
    with sessions_any() as session, session.begin():
        with pytest.raises(outbox.NotResolvableError, match="queued, not unknown"):
            outbox.resolve(session, message_id, sent=True, now=NOW)
        row = session.get(OutboundMessage, message_id)
        assert row is not None
        row.status, row.attempts = OutboxStatus.UNKNOWN, outbox.MAX_ATTEMPTS
    with sessions_any() as session, session.begin():
        outbox.resolve(session, message_id, sent=False, now=NOW)
    claim = _claim(sessions_any, message_id)
    assert claim is not None
    assert claim.attempts == outbox.MAX_ATTEMPTS
    assert _fail(sessions_any, message_id, claim.token).outcome == "failed"


def test_the_lease_must_outlast_the_send_timeout() -> None:
    with pytest.raises(ValidationError, match="SIPAS_SEND_LEASE"):
        Settings(_env_file=None, SIPAS_SEND_LEASE=15, SIPAS_SEND_TIMEOUT=15)  # type: ignore[call-arg]
    assert Settings(_env_file=None, SIPAS_SEND_LEASE=16, SIPAS_SEND_TIMEOUT=15)  # type: ignore[call-arg]


def test_a_lost_answer_leaves_the_message_unknown_not_resent(settings: Settings, redis: Redis) -> None:
    # A gateway that takes the request and never answers: Kannel may have the message.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        runtime = Runtime.build(
            settings.model_copy(
                update={
                    "KANNEL_SENDSMS_URL": f"http://127.0.0.1:{silent.getsockname()[1]}/cgi-bin/sendsms",
                    "SIPAS_SEND_TIMEOUT": 1,
                }
            )
        )
        message_id = _add(runtime.sessions, runtime.vault)
        assert deliver(runtime, message_id) == "unknown"
        assert deliver(runtime, message_id) == "skipped"
    row = _row(runtime.sessions, message_id)
    assert (row.status, row.attempts) == (OutboxStatus.UNKNOWN, 1)
    assert row.last_error is not None
    assert "answer was lost" in row.last_error


@pytest.fixture
def cli_env(db_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SIPAS_SECRET_KEY": SECRET_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    get_runtime.cache_clear()
    yield
    get_settings.cache_clear()
    get_runtime.cache_clear()


def test_sipas_outbox_lists_and_resolves_unknown_messages(
    cli_env: None, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> None:
    sent, resend = _add(sessions, vault, "m:s"), _add(sessions, vault, "m:r")
    for message_id in (sent, resend):
        claim = _claim(sessions, message_id)
        assert claim is not None
        _fail(sessions, message_id, claim.token, ambiguous=True)
    listed = CliRunner().invoke(cli, ["outbox", "list"])
    assert listed.exit_code == 0, listed.output
    assert "2 unknown message(s)" in listed.output
    assert "+84912345678" not in listed.output
    assert CliRunner().invoke(cli, ["outbox", "resolve", str(sent), "--sent"]).exit_code == 0
    assert CliRunner().invoke(cli, ["outbox", "resolve", str(resend), "--resend"]).exit_code == 0
    assert _row(sessions, sent).status is OutboxStatus.SENT
    assert _row(sessions, resend).status is OutboxStatus.QUEUED
    again = CliRunner().invoke(cli, ["outbox", "resolve", str(sent), "--resend"])
    assert again.exit_code == 1
    assert "sent, not unknown" in again.output
