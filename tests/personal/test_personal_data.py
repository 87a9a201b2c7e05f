"""Personal data: the retention purge leaves no number, Zalo id or raw request behind (checked by
decrypting everything left); a citizen's data can be exported and erased; the secret key can be
rotated with the old one readable until done."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import get_settings
from storage.crypto import DecryptionError, PhoneVault
from storage.models import (
    Answer,
    Case,
    Comment,
    InboundEvent,
    InboxMessage,
    OptOut,
    OutboundMessage,
    OutboxStatus,
    StaffPhone,
    Survey,
)
from tests.conftest import SECRET_KEY
from tests.personal.world import ALICE, BOB, ago, leftovers, refuse, seed, staff
from workers.cli import cli
from workers.cli.keys import ENCRYPTED, rotate
from workers.cli.subject import erase_subject, export_subject
from workers.retention import purge

NOW = datetime.now(UTC)
NEW_KEY = "the-new-secret-key-0123456789"


def test_purge_leaves_nothing_readable_about_the_citizen(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    with sessions() as session, session.begin():
        seed(session, vault, ALICE, ago(NOW, 100))
        assert leftovers(session, vault, ALICE)  # the scan does find the data before the purge
    with sessions() as session, session.begin():
        counts = purge(session, ago(NOW, 90))
    assert counts["cases"] == 1
    assert counts["messages_without_survey"] == 2  # the Zalo greeting and the opt-in answer
    assert counts["inbox"] == 1
    with sessions() as session:
        assert leftovers(session, vault, ALICE) == []
        # What the citizen wrote stays only where staff read it; the survey's state keeps none.
        assert set(leftovers(session, vault, ALICE, free_text=True)) == {
            "answers.raw_text", "comments.text", "inbox_messages.text",
        }  # fmt: skip
        # answers and comments stay for the scores
        assert session.scalar(select(func.count()).select_from(Answer)) == 1
        assert session.scalar(select(func.count()).select_from(Comment)) == 1


def test_purge_keeps_recent_data_and_unsent_messages(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    with sessions() as session, session.begin():
        seed(session, vault, BOB, ago(NOW, 10))
        old = seed(session, vault, ALICE, ago(NOW, 100))
        pending = session.scalars(select(OutboundMessage).where(OutboundMessage.survey_id.is_(None))).all()
        for message in pending:
            if message.dedupe_key == "optin-a":
                message.status = OutboxStatus.QUEUED  # not sent yet: it still needs its recipient
    with sessions() as session, session.begin():
        purge(session, ago(NOW, 90))
    with sessions() as session:
        assert set(leftovers(session, vault, BOB)) == {
            "cases.phone_enc",
            "cases.zalo_user_id_enc",
            "surveys.zalo_chat_enc",
            "surveys.state",
            "outbound_messages.recipient_enc",
            "inbound_events.payload_enc",
            "inbox_messages.sender_enc",
        }
        assert leftovers(session, vault, ALICE) == ["outbound_messages.recipient_enc"]
        queued = session.scalar(select(OutboundMessage).where(OutboundMessage.dedupe_key == "optin-a"))
        assert queued is not None
        assert vault.decrypt(queued.recipient_enc) == ALICE.phone
        assert session.get(Survey, old) is not None


def test_export_holds_everything_about_the_citizen_only(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    with sessions() as session, session.begin():
        seed(session, vault, ALICE, ago(NOW, 3))
        seed(session, vault, BOB, ago(NOW, 3))
        refuse(session, vault, ALICE, ago(NOW, 1))
    with sessions() as session:
        data = export_subject(session, vault, ALICE.phone)
    text = json.dumps(data, ensure_ascii=False)
    assert BOB.phone[3:] not in text
    assert BOB.chat_id not in text
    assert [case["case_id"] for case in data["cases"]] == ["HS-a"]
    assert data["cases"][0]["phone"] == ALICE.phone
    assert data["cases"][0]["zalo_user_id"] == ALICE.zalo_id
    assert data["surveys"][0]["zalo_chat_id"] == ALICE.chat_id
    assert [answer["value"] for answer in data["answers"]] == [4]
    assert [comment["text"] for comment in data["comments"]] == ["can bo nhiet tinh a"]
    assert sorted(message["to"] for message in data["messages_sent"]) == sorted(
        [ALICE.phone, ALICE.phone, ALICE.chat_id]
    )
    assert {event["provider"] for event in data["messages_received"]} == {"kannel", "zalo_bot"}
    assert [row["text"] for row in data["inbox"]] == ["xin chao a"]
    assert data["opt_out"]["source"] == "sms"


def test_erase_removes_contact_data_and_free_text_keeps_anonymous_answers(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    with sessions() as session, session.begin():
        alice = seed(session, vault, ALICE, ago(NOW, 3))
        seed(session, vault, BOB, ago(NOW, 3))
        refuse(session, vault, ALICE, ago(NOW, 1))
    with sessions() as session, session.begin():
        counts = erase_subject(session, vault, ALICE.phone, actor="test")
    assert counts["messages_sent"] == 3
    assert counts["messages_received"] == 2
    assert counts["comments"] == 1
    with sessions() as session:
        assert leftovers(session, vault, ALICE, free_text=True) == []
        # someone else's data is untouched
        assert set(leftovers(session, vault, BOB, free_text=True)) >= {"surveys.state", "comments.text"}
        answer = session.scalar(select(Answer).where(Answer.survey_id == alice))
        assert answer is not None
        assert (answer.value, answer.raw_text, answer.text_value) == (4, None, None)
        survey = session.get(Survey, alice)
        assert survey is not None
        # The state keeps where the conversation was and its number answers, nothing else.
        assert survey.state == {
            "status": "done", "question": None, "reprompts": 0, "version": 4,
            "answers": {"overall": 4}, "path": ["overall", "comment"], "events": [1, 2],
        }  # fmt: skip
        assert (
            session.scalar(select(func.count()).select_from(Comment).where(Comment.survey_id == alice)) == 0
        )
        assert session.get(OptOut, vault.lookup_hash(ALICE.phone)) is not None  # the refusal is honoured
        data = export_subject(session, vault, ALICE.phone)
    assert data["cases"] == []
    assert data["messages_received"] == []


@pytest.fixture
def cli_env(db_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SIPAS_SECRET_KEY", SECRET_KEY)
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_env")
def test_subject_commands(sessions: sessionmaker[Session], vault: PhoneVault) -> None:
    with sessions() as session, session.begin():
        seed(session, vault, ALICE, ago(NOW, 3))
    runner = CliRunner()
    exported = runner.invoke(cli, ["subject", "export", "0912 345 678"])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["cases"][0]["phone"] == ALICE.phone
    erased = runner.invoke(cli, ["subject", "erase", "0912345678", "--yes"])
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.output)["erased"]["cases"] == 1
    with sessions() as session:
        assert leftovers(session, vault, ALICE) == []
    bad = runner.invoke(cli, ["subject", "export", "12"])
    assert bad.exit_code == 2
    get_settings.cache_clear()


# --- key rotation -----------------------------------------------------------------------------


def _all_current(session: Session, new_only: PhoneVault) -> list[str]:
    """Encrypted values the new key alone cannot read."""
    stale = []
    for column in ENCRYPTED:
        for value in session.scalars(select(column)):
            if value:
                try:
                    new_only.decrypt(value)
                except DecryptionError:
                    stale.append(f"{column}")
    return stale


def test_rotation_reencrypts_and_rekeys_everything(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    old = vault
    with sessions() as session, session.begin():
        seed(session, old, ALICE, ago(NOW, 3))
        seed(session, old, BOB, ago(NOW, 3))
        refuse(session, old, ALICE, ago(NOW, 1))
        staff(session, old, BOB.phone)
        staff(session, old, "+84911111111")  # a number held nowhere: its hash cannot be re-keyed
        staff(session, old, "+84922222222", encrypted=True)  # held encrypted: re-keyed from itself
    rotating = PhoneVault(NEW_KEY, [SECRET_KEY])
    assert rotating.decrypt(old.encrypt("x")) == "x"  # the old key stays readable meanwhile
    steps: list[int] = []
    result = rotate(sessions, rotating, steps.append)
    assert sum(steps) > 0
    # Per citizen: phone and Zalo id of the case, the chat, 3 outbox rows, 2 requests, 1 inbox
    # sender; and the staff number held encrypted.
    assert result.reencrypted == 2 * 9 + 1
    new_only = PhoneVault(NEW_KEY)
    with sessions() as session:
        assert _all_current(session, new_only) == []
        case = session.scalar(select(Case).where(Case.case_id == "HS-a"))
        assert case is not None
        assert case.phone_hash == new_only.lookup_hash(ALICE.phone)
        assert case.zalo_user_hash == new_only.lookup_hash(ALICE.zalo_id)
        survey = session.scalar(select(Survey).where(Survey.case_pk == case.id))
        assert survey is not None
        assert survey.phone_hash == new_only.lookup_hash(ALICE.phone)
        assert survey.zalo_chat_hash == new_only.lookup_hash(ALICE.chat_id)
        senders = set(session.scalars(select(InboundEvent.sender_hash)))
        assert senders == {
            new_only.lookup_hash(v) for v in (ALICE.phone, ALICE.chat_id, BOB.phone, BOB.chat_id)
        }
        assert set(session.scalars(select(InboxMessage.sender_hash))) == {
            new_only.lookup_hash(ALICE.chat_id),
            new_only.lookup_hash(BOB.chat_id),
        }
        assert session.get(OptOut, new_only.lookup_hash(ALICE.phone)) is not None
        assert session.get(OptOut, old.lookup_hash(ALICE.phone)) is None
        staff_hashes = set(session.scalars(select(StaffPhone.phone_hash)))
        assert new_only.lookup_hash(BOB.phone) in staff_hashes
        assert new_only.lookup_hash("+84922222222") in staff_hashes
    assert result.not_rekeyable == 1
    again = rotate(sessions, rotating)
    assert (again.reencrypted, again.rehashed, again.not_rekeyable) == (0, 0, 1)


@pytest.mark.usefixtures("cli_env")
def test_keys_rotate_command(
    sessions: sessionmaker[Session], vault: PhoneVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sessions() as session, session.begin():
        seed(session, vault, ALICE, ago(NOW, 3))
    runner = CliRunner()
    missing_old = runner.invoke(cli, ["keys", "rotate"])
    assert missing_old.exit_code != 0
    monkeypatch.setenv("SIPAS_SECRET_KEY", NEW_KEY)
    monkeypatch.setenv("SIPAS_OLD_SECRET_KEYS", SECRET_KEY)
    get_settings.cache_clear()
    # The hashes would follow the new key: refused, so that no refusal is silently forgotten.
    unpinned = runner.invoke(cli, ["keys", "rotate"])
    assert unpinned.exit_code == 1
    assert "SIPAS_HASH_KEY is not set" in unpinned.output
    # A hash key other than the one the hashes were made with: refused, nothing changed.
    monkeypatch.setenv("SIPAS_HASH_KEY", "not-the-hash-key-0123456789")
    get_settings.cache_clear()
    wrong = runner.invoke(cli, ["keys", "rotate"])
    assert wrong.exit_code == 1
    assert "does not give the stored look-up hashes" in wrong.output
    with sessions() as session:
        assert _all_current(session, PhoneVault(NEW_KEY)) != []
    monkeypatch.setenv("SIPAS_HASH_KEY", SECRET_KEY)
    get_settings.cache_clear()
    done = runner.invoke(cli, ["keys", "rotate"])
    assert done.exit_code == 0, done.output
    assert '"reencrypted": 9' in done.output
    assert '"rehashed": 0' in done.output
    with sessions() as session:
        assert _all_current(session, PhoneVault(NEW_KEY)) == []
    get_settings.cache_clear()


def test_rotation_with_a_hash_key_keeps_every_hash_and_every_refusal(
    sessions: sessionmaker[Session], vault: PhoneVault
) -> None:
    """The hashes are keyed by SIPAS_HASH_KEY (here the key they were made with): the rotation
    re-encrypts and leaves every hash as it is, so the refusal of a number purged long ago (a hash
    nothing else holds) is still recognised under the new key alone."""
    purged = "+84933333333"
    with sessions() as session, session.begin():
        seed(session, vault, ALICE, ago(NOW, 3))
        seed(session, vault, BOB, ago(NOW, 3))
        session.add(OptOut(phone_hash=vault.lookup_hash(purged), source="sms", created_at=ago(NOW, 400)))
        hashes_before = sorted(str(h) for h in session.scalars(select(InboundEvent.sender_hash)))
    rotating = PhoneVault(NEW_KEY, [SECRET_KEY], hash_secret=SECRET_KEY)
    result = rotate(sessions, rotating)
    assert (result.reencrypted, result.rehashed, result.not_rekeyable) == (2 * 9, 0, 0)
    new_only = PhoneVault(NEW_KEY, hash_secret=SECRET_KEY)
    with sessions() as session:
        assert _all_current(session, new_only) == []
        assert session.get(OptOut, new_only.lookup_hash(purged)) is not None
        assert session.get(OptOut, new_only.lookup_hash(ALICE.phone)) is None  # never refused
        case = session.scalar(select(Case).where(Case.case_id == "HS-a"))
        assert case is not None
        assert case.phone_hash == new_only.lookup_hash(ALICE.phone)
        assert sorted(str(h) for h in session.scalars(select(InboundEvent.sender_hash))) == hashes_before
    assert rotate(sessions, rotating).reencrypted == 0
