"""The nightly digest end to end: the nightly job on seeded answers, a real RQ worker, the e-mail
captured on a real local SMTP server (aiosmtpd), the Zalo digest through the Zalo simulator."""

from __future__ import annotations

import asyncio
import email
import io
import re
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from PIL import Image
from redis import Redis
from rq import SimpleWorker
from sqlalchemy import select

from bot.channels.zalo.simulator import SimConfig
from bot.channels.zalo.simulator.threaded import ThreadedSimulator
from bot.channels.zalo.token_store import DatabaseTokenStore
from bot.channels.zalo.tokens import OATokens
from bot.web.i18n import english, translator
from config.settings import PROJECT_ROOT, get_settings
from flows.scores.flags import FLAG_NAMES
from flows.scores.render import flag_text
from storage.db import session_factory, transaction
from storage.models import Agency, Comment, Digest, Survey, UserRole
from storage.users import add_user
from tests.conftest import SECRET_KEY
from tests.digest.smtp import CapturingHandler
from tests.scores.test_report_db import seed_tree
from workers.cli import cli
from workers.digest.content import windows_for
from workers.digest.send import send_nightly_digests
from workers.queues import ALL_QUEUES, SCORES_QUEUE, queue
from workers.runtime import get_runtime
from workers.scores.tasks import nightly_scores

PUBLIC_URL = "https://sipas.hanoi.example.gov.vn"
OA_USER = "4411223344556677"
OA_USER_EN = "4411223344550000"
PASSWORD = "mat-khau-giam-sat-2026"
COMMENT = "Chi can bo goi lai so 0912345678 giup em, em cam on"


@pytest.fixture
def smtp_server() -> Iterator[tuple[CapturingHandler, int]]:
    handler = CapturingHandler(refuse={"hong@example.vn"})
    with socket.socket() as probe:  # a free port (aiosmtpd's readiness check needs a real one)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def zalo() -> Iterator[ThreadedSimulator]:
    with ThreadedSimulator(SimConfig(long_poll_cap=0)) as simulator:
        yield simulator


@pytest.fixture
def env(
    db_url: str,
    redis_url: str,
    redis: Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    smtp_server: tuple[CapturingHandler, int],
    zalo: ThreadedSimulator,
) -> Iterator[str]:
    """Process settings as the worker reads them: SMTP at aiosmtpd, Zalo at the simulator."""
    config = SimConfig(long_poll_cap=0)
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SIPAS_SECRET_KEY": SECRET_KEY,
        "SIPAS_MIN_RESPONSES": "5",
        "SIPAS_SEND_WINDOW": "00:00-24:00",
        "SIPAS_PUBLIC_URL": PUBLIC_URL,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server[1]),
        "SMTP_STARTTLS": "false",
        "SMTP_FROM": "sipas@hanoi.example.gov.vn",
        "ZALO_OA_APP_ID": config.app_id,
        "ZALO_OA_SECRET_KEY": config.oa_secret_key,
        "ZALO_APP_SECRET": config.app_secret,
        "ZALO_OA_API_BASE": zalo.sim.base_url,
        "ZALO_OAUTH_BASE": zalo.sim.base_url,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    get_runtime.cache_clear()
    yield db_url
    get_settings.cache_clear()
    get_runtime.cache_clear()


def seed(url: str, zalo: ThreadedSimulator) -> None:
    """The tree of test_report_db (W1 answered on 2026-11-20), a comment with a phone number,
    and accounts: two supervisors who get digests, and three who must not."""
    seed_tree(url)
    with transaction(url) as s:
        agencies = {a.code: a for a in s.scalars(select(Agency))}
        survey = s.scalars(select(Survey).where(Survey.agency_id == agencies["W1"].id)).first()
        assert survey is not None
        s.add(Comment(survey_id=survey.id, question_key="comment", text=COMMENT))
        for username, role, code, address, zalo_id in (
            ("giamsat-quan", UserRole.SUPERVISOR, "D", "quan@example.vn", OA_USER),
            ("giamsat-tinh", UserRole.SUPERVISOR, "P", "tinh@example.vn", None),
            ("giamsat-hong", UserRole.SUPERVISOR, "S", "hong@example.vn", None),  # SMTP refuses it
            ("canbo", UserRole.STAFF, "D", "canbo@example.vn", None),  # not a supervisor
        ):
            add_user(
                s,
                actor="test",
                username=username,
                role=role,
                agency=agencies[code],
                password=PASSWORD,
                email=address,
                zalo_user_id=zalo_id,
            )
    runtime = get_runtime()
    access, refresh = zalo.sim.issue_tokens()
    store = DatabaseTokenStore(
        runtime.sessions, runtime.vault, runtime.redis, runtime.settings.ZALO_OA_APP_ID
    )
    asyncio.run(store.save(OATokens(access, refresh, datetime.now(UTC) + timedelta(hours=25))))


def run_worker(redis: Redis) -> None:
    SimpleWorker([queue(redis, name) for name in ALL_QUEUES], connection=redis).work(burst=True)


def _parts(raw: bytes) -> tuple[EmailMessage, str, str, bytes, str]:
    message = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    text = html = ""
    png = b""
    png_cid = ""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "text/plain":
            text = part.get_content()
        elif kind == "text/html":
            html = part.get_content()
        elif kind == "image/png":
            png = part.get_content()
            png_cid = part["Content-ID"].strip("<>")
    return message, text, html, png, png_cid


def test_nightly_job_sends_each_supervisor_one_digest(
    env: str, redis: Redis, smtp_server: tuple[CapturingHandler, int], zalo: ThreadedSimulator
) -> None:
    handler, _port = smtp_server
    seed(env, zalo)
    nightly_scores("2026-11-21T01:00:00+07:00")  # scores of 11-17..11-20, then the digests of the 20th
    run_worker(redis)

    delivered = {rcpt: raw for rcpt, raw in handler.messages}
    assert sorted(delivered) == ["quan@example.vn", "tinh@example.vn"]  # not staff, not refused
    message, text, html, png, cid = _parts(delivered["quan@example.vn"])
    assert message["Subject"] == "SIPAS Quận Thanh Xuân ngày 20/11/2026: chỉ số 75,00%"
    # D on the 20th: only W1 answered, 3 of 4 satisfied -> 75 %, Wilson [30.06, 95.44];
    # the 7 days 11-14..11-20 add W2's 2 of 6 on the 16th: (10·75 + 30·33.33)/40 = 43.75
    assert "Hôm qua (20/11/2026): chỉ số SIPAS 75,00% (KTC 95%: 30,06–95,44)" in text
    assert "7 ngày qua (14/11–20/11/2026): chỉ số SIPAS 43,75%" in text
    assert "Cao nhất: Phường Thanh Xuân 33,33% (hạng 1)" in text  # W1 is suppressed: unranked
    assert (
        "Phiếu khảo sát hôm qua (tất cả kênh): Đã gửi 4, Đã nhận 4, Bắt đầu trả lời 4, Hoàn thành 4" in text
    )
    # the comment is there, masked, in both parts
    assert "[SĐT]" in text
    assert "0912345678" not in text
    assert "0912345678" not in html
    assert "Chi can bo goi lai so [SĐT] giup em" in html
    # the chart: a PNG referenced by Content-ID that decodes
    assert f'src="cid:{cid}"' in html
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == (800, 560)
    assert f"{PUBLIC_URL}/?agency=D&amp;period=2026-11-20" in html

    # the refused address: failed, kept, retried later by the job itself
    with session_factory(env)() as s:
        rows = {(d.username, d.channel): d for d in s.scalars(select(Digest))}
    assert rows["giamsat-hong", "email"].status == "failed"
    assert "550" in (rows["giamsat-hong", "email"].last_error or "")
    assert rows["giamsat-quan", "email"].status == "sent"
    assert "Quận Thanh Xuân" in rows["giamsat-quan", "email"].html  # the archive keeps the message
    assert "digest-2026-11-20-2" in queue(redis, SCORES_QUEUE).scheduled_job_registry.get_job_ids()

    # Zalo: three lines and the link, through the OA (an outbox message sent by the worker)
    [zalo_message] = zalo.sim.oa_sent
    assert zalo_message["user_id"] == OA_USER
    lines = zalo_message["text"].split("\n")
    assert lines[0] == "SIPAS Quận Thanh Xuân 20/11: chỉ số 75,00% (KTC 30,06–95,44), 4 phiếu."
    assert lines[3] == f"Xem: {PUBLIC_URL}/?agency=D&period=2026-11-20"
    assert len(lines) == 4

    # a second run sends nothing to those who have it; the refused one is tried again
    handler.messages.clear()
    again = send_nightly_digests("2026-11-20", attempt=2)
    run_worker(redis)
    assert (again["sent"], again["already_sent"], again["failed"]) == (0, 3, 1)
    assert handler.messages == []
    assert len(zalo.sim.oa_sent) == 1


def test_dry_run_writes_eml_files_and_sends_nothing(
    env: str, redis: Redis, smtp_server: tuple[CapturingHandler, int], zalo: ThreadedSimulator, tmp_path: Path
) -> None:
    handler, _port = smtp_server
    seed(env, zalo)
    out = tmp_path / "eml"
    result = CliRunner().invoke(cli, ["digest", "send", "--date", "2026-11-20", "--dry-run", str(out)])
    assert result.exit_code == 0, result.output
    files = sorted(path.name for path in out.iterdir())
    assert files == [
        "digest-2026-11-20-giamsat-hong.eml",
        "digest-2026-11-20-giamsat-quan.eml",
        "digest-2026-11-20-giamsat-tinh.eml",
    ]
    _message, text, _html, png, _cid = _parts((out / files[2]).read_bytes())
    assert "Thành phố Hà Nội" in text
    assert Image.open(io.BytesIO(png)).format == "PNG"
    assert handler.messages == []
    with session_factory(env)() as s:
        assert s.scalars(select(Digest)).all() == []
    run_worker(redis)
    assert zalo.sim.oa_sent == []

    narrowed = CliRunner().invoke(
        cli, ["digest", "send", "--date", "2026-11-20", "--agency", "D", "--dry-run", str(tmp_path / "d")]
    )
    assert narrowed.exit_code == 0, narrowed.output
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["digest-2026-11-20-giamsat-quan.eml"]


def test_cli_send_and_force(
    env: str, redis: Redis, smtp_server: tuple[CapturingHandler, int], zalo: ThreadedSimulator
) -> None:
    handler, _port = smtp_server
    seed(env, zalo)
    CliRunner().invoke(cli, ["scores", "compute", "--from", "2026-11-14", "--to", "2026-11-20"])
    first = CliRunner().invoke(cli, ["digest", "send", "--date", "2026-11-20", "--agency", "P"])
    assert first.exit_code == 1  # the refused address is reported
    assert re.search(r"2 e-mail đã gửi, 1 tin Zalo đã xếp hàng, 0 đã gửi trước đó, 1 lỗi", first.output)
    handler.messages.clear()
    second = CliRunner().invoke(cli, ["digest", "send", "--date", "2026-11-20", "--agency", "D"])
    assert "0 e-mail đã gửi" in second.output
    forced = CliRunner().invoke(cli, ["digest", "send", "--date", "2026-11-20", "--agency", "D", "--force"])
    assert forced.exit_code == 0, forced.output
    assert [rcpt for rcpt, _ in handler.messages] == ["quan@example.vn"]
    bad = CliRunner().invoke(cli, ["digest", "send", "--agency", "NOPE"])
    assert bad.exit_code == 2
    assert "no agency with code 'NOPE'" in bad.output


def test_a_supervisor_reading_english_gets_the_digest_in_english(
    env: str, redis: Redis, smtp_server: tuple[CapturingHandler, int], zalo: ThreadedSimulator
) -> None:
    """users.language = en: the e-mail (both parts), its chart and the Zalo message are English
    with decimal points; a Vietnamese reader of the same unit keeps the Vietnamese digest."""
    handler, _port = smtp_server
    seed(env, zalo)
    with transaction(env) as s:
        agency = s.scalars(select(Agency).where(Agency.code == "D")).one()
        add_user(s, actor="test", username="giamsat-en", role=UserRole.SUPERVISOR, agency=agency,
                 password=PASSWORD, email="en@example.vn", zalo_user_id=OA_USER_EN,
                 language="en")  # fmt: skip
    CliRunner().invoke(cli, ["scores", "compute", "--from", "2026-11-14", "--to", "2026-11-20"])
    result = CliRunner().invoke(cli, ["digest", "send", "--date", "2026-11-20", "--agency", "D"])
    assert result.exit_code == 0, result.output
    run_worker(redis)

    delivered = {rcpt: raw for rcpt, raw in handler.messages}
    assert sorted(delivered) == ["en@example.vn", "quan@example.vn"]
    message, text, html, png, _cid = _parts(delivered["en@example.vn"])
    assert message["Subject"] == "SIPAS Quận Thanh Xuân on 20/11/2026: index 75.00%"
    assert text.splitlines()[:2] == ["Daily SIPAS report · 20/11/2026", "Quận Thanh Xuân"]
    assert "Yesterday (20/11/2026): SIPAS index 75.00% (95% CI: 30.06–95.44)" in text
    assert "Last 7 days (14/11–20/11/2026): SIPAS index 43.75%" in text
    assert "Highest: Phường Thanh Xuân 33.33% (rank 1)" in text
    assert "Yesterday's surveys (all channels): Sent 4, Delivered 4, Started 4, Completed 4" in text
    assert "Citizens' comments (phone, ID card and e-mail masked):" in text
    assert '<html lang="en">' in html
    assert "Open the dashboard" in html
    assert "the account giamsat-en supervises Quận Thanh Xuân" in html
    for vietnamese in ("chỉ số", "phiếu", "Hôm qua", "Xem bảng điều khiển", "KTC"):
        assert vietnamese not in text
        assert vietnamese not in html
    assert Image.open(io.BytesIO(png)).format == "PNG"
    # The Vietnamese reader of the same unit: unchanged.
    vietnamese_subject = _parts(delivered["quan@example.vn"])[0]["Subject"]
    assert vietnamese_subject == "SIPAS Quận Thanh Xuân ngày 20/11/2026: chỉ số 75,00%"

    on_zalo = {m["user_id"]: m["text"] for m in zalo.sim.oa_sent}
    assert on_zalo[OA_USER].startswith("SIPAS Quận Thanh Xuân 20/11: chỉ số 75,00%")
    lines = on_zalo[OA_USER_EN].split("\n")
    assert lines[0] == "SIPAS Quận Thanh Xuân 20/11: index 75.00% (CI 30.06–95.44), 4 answers."
    assert lines[1].startswith("7 days: 43.75%")
    assert lines[2] == "Anomalies: 0; new comments: 1."
    assert lines[3] == f"See: {PUBLIC_URL}/?agency=D&period=2026-11-20"


def test_every_digest_text_has_an_english_entry() -> None:
    """The digest's texts (templates, message, chart, anomaly sentences) are in the pages'
    catalogue, bot/web/en.json, with the same placeholders."""
    wrapped = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
    folder = PROJECT_ROOT / "workers" / "digest"
    texts: set[str] = set()
    for path in [*folder.rglob("*.py"), *folder.rglob("*.j2")]:
        texts |= {a or b for a, b in wrapped.findall(path.read_text(encoding="utf-8"))}
    texts |= {label for label, _period, _before in windows_for(date(2026, 11, 20))}
    texts |= set(FLAG_NAMES.values())
    assert len(texts) > 40
    assert sorted(texts - set(english())) == []
    sample = {"day": "2026-11-20", "surveys": 3, "answered": 4, "seconds": 2.0, "answers": "5,5", "phones": 1,
              "direction": "down", "baseline": 80.0, "index": 60.5}  # fmt: skip
    to_english = translator("en")
    sentences = [
        flag_text({**sample, "kind": kind}, to_english, decimal_comma=False)
        for kind in ("fast_answers", "identical_answers", "index_jump", "repeat_phone")
    ]
    assert sentences == [
        "Answers too soon after sending: 3/4 surveys answered within 2 seconds",
        "Many identical answers from few phones: 3 identical surveys (5,5) from 1 phones",
        "Index change beyond its confidence interval: down from 80.00 to 60.50",
        "One phone answered several cases in the month: 3 surveys not counted again",
    ]
    assert (
        flag_text({**sample, "kind": "index_jump"})
        == "Chỉ số thay đổi vượt khoảng tin cậy: giảm từ 80,00 xuống 60,50"
    )
