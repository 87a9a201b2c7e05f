"""Accounts and the audit log on both databases: argon2 hashes, lock-out, disable, the hash chain,
and the `sipas users` / `sipas audit verify` commands."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text, update

from config.settings import get_settings
from storage import audit
from storage.agencies import AgencyRow, upsert_agency
from storage.db import session_factory
from storage.models import AgencyLevel, AuditEntry, User, UserRole
from storage.users import (
    LOCKOUT_AFTER,
    LoginOutcome,
    UserError,
    add_user,
    authenticate,
    disable_user,
    set_password,
    subtree_ids,
)
from tests.conftest import SECRET_KEY
from workers.cli import cli

PASSWORD = "mat-khau-rat-dai-1"


def _tree(url: str) -> None:
    with session_factory(url)() as s, s.begin():
        province, _ = upsert_agency(s, AgencyRow("HN", "Thành phố Hà Nội", AgencyLevel.PROVINCE, None), None)
        upsert_agency(s, AgencyRow("HN-BD", "Phường Ba Đình", AgencyLevel.COMMUNE, "HN"), province)
        upsert_agency(s, AgencyRow("HN-HK", "Phường Hoàn Kiếm", AgencyLevel.COMMUNE, "HN"), province)


def _add(url: str, username: str, role: UserRole = UserRole.SUPERVISOR, agency: str | None = "HN-BD") -> None:
    with session_factory(url)() as s, s.begin():
        from storage.agencies import get_by_code

        add_user(
            s,
            actor="test",
            username=username,
            role=role,
            agency=get_by_code(s, agency) if agency else None,
            password=PASSWORD,
            email=f"{username}@example.gov.vn",
        )


def test_password_is_an_argon2_hash_and_login_works(any_db_url: str) -> None:
    _tree(any_db_url)
    _add(any_db_url, "Lan.Nguyen")
    with session_factory(any_db_url)() as s, s.begin():
        user = s.scalar(select(User))
        assert user is not None
        assert user.username == "lan.nguyen"
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        result = authenticate(s, "LAN.nguyen ", PASSWORD)
        assert result.outcome is LoginOutcome.OK
        assert result.user is user
        assert user.last_login_at is not None
        assert authenticate(s, "lan.nguyen", "wrong-password-x").outcome is LoginOutcome.WRONG
        assert authenticate(s, "nobody", PASSWORD).outcome is LoginOutcome.WRONG


def test_lockout_after_repeated_wrong_passwords(any_db_url: str) -> None:
    _tree(any_db_url)
    _add(any_db_url, "lan")
    sessions = session_factory(any_db_url)
    now = datetime.now(UTC)
    for attempt in range(1, LOCKOUT_AFTER + 1):
        with sessions() as s, s.begin():
            outcome = authenticate(s, "lan", "sai-mat-khau-00", now).outcome
        assert outcome is (LoginOutcome.LOCKED if attempt == LOCKOUT_AFTER else LoginOutcome.WRONG)
    with sessions() as s, s.begin():
        # Locked: even the right password is refused until the lock ends.
        assert authenticate(s, "lan", PASSWORD, now + timedelta(minutes=1)).outcome is LoginOutcome.LOCKED
    with sessions() as s, s.begin():
        assert authenticate(s, "lan", PASSWORD, now + timedelta(minutes=16)).outcome is LoginOutcome.OK
    with sessions() as s, s.begin():
        for _ in range(LOCKOUT_AFTER):
            authenticate(s, "lan", "sai-mat-khau-00", now + timedelta(minutes=17))
        set_password(s, actor="admin", username="lan", password="mat-khau-moi-12")
    with sessions() as s, s.begin():
        assert (
            authenticate(s, "lan", "mat-khau-moi-12", now + timedelta(minutes=18)).outcome is LoginOutcome.OK
        )


def test_disabled_account_cannot_log_in(any_db_url: str) -> None:
    _tree(any_db_url)
    _add(any_db_url, "lan")
    with session_factory(any_db_url)() as s, s.begin():
        disable_user(s, actor="admin", username="lan")
        assert authenticate(s, "lan", PASSWORD).outcome is LoginOutcome.DISABLED


def test_account_rules(any_db_url: str) -> None:
    _tree(any_db_url)
    _add(any_db_url, "lan")
    with pytest.raises(UserError, match="already exists"):
        _add(any_db_url, "lan")
    with pytest.raises(UserError, match="needs an agency"):
        _add(any_db_url, "minh", UserRole.STAFF, agency=None)
    with pytest.raises(UserError, match="at least 10"), session_factory(any_db_url)() as s, s.begin():
        set_password(s, actor="admin", username="lan", password="short")
    with pytest.raises(UserError, match="username"):
        _add(any_db_url, "<script>")
    _add(any_db_url, "root", UserRole.ADMIN, agency=None)


def test_subtree(any_db_url: str) -> None:
    _tree(any_db_url)
    with session_factory(any_db_url)() as s:
        ids = {row[0]: row[1] for row in s.execute(text("SELECT code, id FROM agencies"))}
        assert subtree_ids(s, ids["HN"]) == {ids["HN"], ids["HN-BD"], ids["HN-HK"]}
        assert subtree_ids(s, ids["HN-BD"]) == {ids["HN-BD"]}
        assert subtree_ids(s, None) is None


def test_audit_chain_detects_an_edit_a_deletion_and_an_insertion(any_db_url: str) -> None:
    _tree(any_db_url)
    sessions = session_factory(any_db_url)
    _add(any_db_url, "lan")
    with sessions() as s, s.begin():
        disable_user(s, actor="admin", username="lan")
        audit.append(s, "cli:root", "flows.publish", "flow:sipas-sms", {"version": 1}, {"version": 2})
        audit.append(
            s, "cli:root", "agencies.update", "agency:HN", {"name": "Hà Nội"}, {"name": "Thành phố Hà Nội"}
        )
    with sessions() as s:
        entries = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [e.action for e in entries] == [
            "users.add",
            "users.disable",
            "flows.publish",
            "agencies.update",
        ]
        assert entries[0].after is not None
        assert entries[0].after["role"] == "supervisor"
        assert "password" not in str(entries[0].after)
        assert entries[1].before == {**entries[0].after, "disabled": False}
        assert entries[3].after == {"name": "Thành phố Hà Nội"}
        assert audit.verify(s) is None
        ids = [e.id for e in entries]

    with sessions() as s, s.begin():
        s.execute(update(AuditEntry).where(AuditEntry.id == ids[1]).values(actor="someone-else"))
    with sessions() as s:
        broken = audit.verify(s)
    assert broken is not None
    assert broken.id == ids[1]
    assert "edited" in broken.reason

    with sessions() as s, s.begin():
        s.execute(update(AuditEntry).where(AuditEntry.id == ids[1]).values(actor="admin"))
        assert audit.verify(s) is None  # the edit undone: intact again
        s.execute(AuditEntry.__table__.delete().where(AuditEntry.id == ids[2]))
    with sessions() as s:
        broken = audit.verify(s)
    assert broken is not None
    assert broken.id == ids[3]
    assert "removed" in broken.reason


@pytest.fixture
def env(any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", any_db_url)
    monkeypatch.setenv("SIPAS_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("USER", "operator")
    get_settings.cache_clear()
    yield any_db_url
    get_settings.cache_clear()


def test_users_commands_and_audit_verify(env: str) -> None:
    _tree(env)
    runner = CliRunner()
    added = runner.invoke(
        cli,
        ["users", "add", "--username", "lan", "--role", "supervisor", "--agency", "HN-BD",
         "--email", "lan@hanoi.gov.vn", "--zalo-user-id", "84123", "--lang", "en", "--password-stdin"],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "lan (supervisor, HN-BD)" in added.stdout
    prompted = runner.invoke(
        cli,
        ["users", "add", "--username", "admin", "--role", "admin"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert prompted.exit_code == 0, prompted.output
    unknown = runner.invoke(
        cli, ["users", "add", "--username", "x1", "--role", "staff", "--agency", "NOPE", "--password-stdin"],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert unknown.exit_code == 2
    assert "no agency with code 'NOPE'" in unknown.output
    short = runner.invoke(
        cli, ["users", "add", "--username", "x2", "--role", "admin", "--password-stdin"], input="short\n"
    )
    assert short.exit_code == 1
    assert "at least 10" in short.output

    assert runner.invoke(cli, ["users", "disable", "lan"]).exit_code == 0
    changed = runner.invoke(
        cli, ["users", "set-password", "admin", "--password-stdin"], input="another-pass-99\n"
    )
    assert changed.exit_code == 0, changed.output
    listed = runner.invoke(cli, ["users", "list"])
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["admin", "admin", "*"]
    assert lines[1].split() == ["lan", "supervisor", "HN-BD", "lan@hanoi.gov.vn", "en", "disabled"]

    with session_factory(env)() as s:
        entries = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(e.actor, e.action, e.target) for e in entries] == [
            ("cli:operator", "users.add", "user:lan"),
            ("cli:operator", "users.add", "user:admin"),
            ("cli:operator", "users.disable", "user:lan"),
            ("cli:operator", "users.set_password", "user:admin"),
        ]
        admin = s.scalar(select(User).where(User.username == "admin"))
        assert admin is not None
        assert "another-pass-99" not in admin.password_hash
        third = entries[2].id

    intact = runner.invoke(cli, ["audit", "verify"])
    assert intact.exit_code == 0
    assert "intact" in intact.stdout
    with session_factory(env)() as s, s.begin():
        s.execute(update(AuditEntry).where(AuditEntry.id == third).values(target="user:admin"))
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"audit row {third} is broken" in broken.stderr
