"""Storage basics on both backends: migrations, UTC round-trips, encrypted phones, uniqueness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from storage.crypto import DecryptionError, PhoneVault
from storage.db import transaction
from storage.models import Agency, AgencyLevel, Case, InboundEvent


def test_vault_round_trip_and_keyed_hash(vault: PhoneVault) -> None:
    token = vault.encrypt("0912345678")
    assert "0912345678" not in token
    assert vault.decrypt(token) == "0912345678"
    assert vault.lookup_hash("0912345678") == vault.lookup_hash("0912345678")
    assert vault.lookup_hash("0912345678") != vault.lookup_hash("0912345679")
    other = PhoneVault("another-secret-key-xxxxxxxx")
    assert other.lookup_hash("0912345678") != vault.lookup_hash("0912345678")
    with pytest.raises(DecryptionError):
        other.decrypt(token)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        PhoneVault("short")


def test_datetimes_come_back_aware_in_utc(any_db_url: str, vault: PhoneVault) -> None:
    closed = datetime(2026, 11, 20, 16, 30, tzinfo=timezone(timedelta(hours=7)))
    with transaction(any_db_url) as session:
        agency = Agency(code="TX", name="Quận Thanh Xuân", level=AgencyLevel.DISTRICT)
        session.add(agency)
        session.flush()
        session.add(
            Case(
                case_id="H01.01-261120-0001",
                agency_id=agency.id,
                procedure_code="1.001612",
                phone_enc=vault.encrypt("0912345678"),
                phone_hash=vault.lookup_hash("0912345678"),
                closed_at=closed,
                outcome="scheduled",
            )
        )
    with transaction(any_db_url) as session:
        case = session.scalars(select(Case)).one()
        assert case.closed_at == closed
        assert case.closed_at.tzinfo is not None
        assert case.closed_at.utcoffset() == timedelta(0)
        assert case.agency.name == "Quận Thanh Xuân"
        assert vault.decrypt(case.phone_enc or "") == "0912345678"


def test_naive_datetimes_are_refused(any_db_url: str) -> None:
    with pytest.raises(Exception, match="naive datetime"), transaction(any_db_url) as session:
        session.add(Agency(code="X", name="X", level=AgencyLevel.PROVINCE, created_at=datetime(2026, 1, 1)))
        session.flush()


def test_inbound_provider_id_is_unique(any_db_url: str) -> None:
    with transaction(any_db_url) as session:
        session.add(InboundEvent(provider="kannel", kind="mo", provider_id="abc", payload_enc="x"))
    with pytest.raises(IntegrityError), transaction(any_db_url) as session:
        session.add(InboundEvent(provider="kannel", kind="mo", provider_id="abc", payload_enc="y"))
    with transaction(any_db_url) as session:
        assert len(session.scalars(select(InboundEvent)).all()) == 1
        session.add(
            InboundEvent(
                provider="zalo_bot",
                kind="mo",
                provider_id="abc",
                payload_enc="z",
                received_at=datetime.now(UTC),
            )
        )
