"""KannelSender without Kannel: parsing of Kannel's callbacks and the reply codes that a real
Kannel cannot be made to produce on demand (500, 429, a hang). Everything Kannel does produce
(202, 403, 400, the exact MT texts, DLRs) is tested against real Kannel in test_real_kannel.py."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.channels.kannel import KannelSender, dlr_token, parse_delivery_report, parse_inbound
from bot.channels.outgoing import Outgoing, SendError, Sent
from bot.channels.sms import InboundRequestError
from config.settings import Settings
from storage.models import Route
from storage.outbox import Delivery
from tests.support.services import free_port

SMS = Outgoing(42, None, Route.SMS, "+84912345678", "Cam on ban")


async def _send(settings: Settings, message: Outgoing = SMS, timeout: float | None = None) -> Sent:
    sender = KannelSender(settings, timeout=timeout)
    try:
        return await sender.send(message)
    finally:
        await sender.aclose()


class _StatusHandler(BaseHTTPRequestHandler):
    """Answers every request with the server's configured status and body, recording the query."""

    server: _StubKannel

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        body = self.server.body.encode("utf-8")
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _StubKannel(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StatusHandler)
        self.status = 202
        self.body = "0: Accepted for delivery"
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/cgi-bin/sendsms"


@pytest.fixture
def stub() -> Iterator[_StubKannel]:
    server = _StubKannel()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _settings(settings: Settings, url: str) -> Settings:
    return settings.model_copy(
        update={"KANNEL_SENDSMS_URL": url, "SIPAS_PUBLIC_URL": "https://sipas.example.vn"}
    )


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (429, True), (408, True), (404, False), (401, False)],
)
async def test_reply_codes_map_to_retryable_or_permanent(
    settings: Settings, stub: _StubKannel, status: int, retryable: bool
) -> None:
    # A stub stands in for Kannel here: real Kannel answers these only when it is broken.
    stub.status, stub.body = status, "Temporal failure, try again later."
    with pytest.raises(SendError) as raised:
        await _send(_settings(settings, stub.url))
    assert raised.value.retryable is retryable
    assert str(status) in str(raised.value)


async def test_queued_for_later_delivery_is_accepted(settings: Settings, stub: _StubKannel) -> None:
    stub.body = "3: Queued for later delivery"  # Kannel's answer while the SMSC link is down
    result = await _send(_settings(settings, stub.url))
    assert (result.segments, result.coding) == (1, "gsm7")


async def test_request_carries_coding_charset_and_a_plain_ascii_dlr_url(
    settings: Settings, stub: _StubKannel
) -> None:
    result = await _send(
        _settings(settings, stub.url), Outgoing(42, None, Route.SMS, "+84912345678", "Cảm ơn")
    )
    query = {key: values[0] for key, values in parse_qs(urlsplit(stub.requests[0]).query).items()}
    assert query["to"] == "84912345678"
    assert query["from"] == settings.SMS_SENDER
    assert (query["text"], query["charset"], query["coding"], query["dlr-mask"]) == (
        "Cảm ơn",
        "UTF-8",
        "2",
        "31",
    )
    dlr = query["dlr-url"]
    assert dlr.startswith("https://sipas.example.vn/webhooks/sms/kannel/dlr?")
    assert dlr.isascii()
    # The only % in the dlr-url are Kannel's own escapes.
    assert dlr.count("%") == 2
    assert dlr.endswith("&status=%d&ts=%T")
    dlr_query = parse_qs(urlsplit(dlr).query)
    assert dlr_query["ref"] == ["42"]
    assert dlr_query["msg"] == [result.provider_id]
    assert dlr_query["token"] == [dlr_token(settings.KANNEL_MO_TOKEN, "42")]


async def test_text_is_sent_composed(settings: Settings, stub: _StubKannel) -> None:
    decomposed = "Re\u0302\u0301t to\u0302\u0301t"  # "Rết tốt" as some phones and systems write it
    await _send(_settings(settings, stub.url), Outgoing(7, None, Route.SMS, "+84912345678", decomposed))
    query = parse_qs(urlsplit(stub.requests[0]).query)
    assert query["text"] == ["Rết tốt"]


async def test_timeout_after_the_request_is_ambiguous(settings: Settings) -> None:
    # A socket that listens but never answers: the connection opens, the reply never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/cgi-bin/sendsms"
        with pytest.raises(SendError) as raised:
            await _send(_settings(settings, url), timeout=0.5)
    # Kannel may have taken it: the outbox must not resend it by itself (storage.outbox).
    assert raised.value.ambiguous
    assert "answer was lost" in str(raised.value)


async def test_connection_refused_is_retryable(settings: Settings) -> None:
    url = f"http://127.0.0.1:{free_port()}/cgi-bin/sendsms"  # nothing listens there
    with pytest.raises(SendError) as raised:
        await _send(_settings(settings, url))
    assert raised.value.retryable
    assert not raised.value.ambiguous  # nothing went out: safe to try again


async def test_an_unsendable_number_fails_permanently_without_a_request(
    settings: Settings, stub: _StubKannel
) -> None:
    with pytest.raises(SendError) as raised:
        await _send(_settings(settings, stub.url), Outgoing(42, None, Route.SMS, "0912 345 678", "x"))
    assert not raised.value.retryable
    assert "international" in str(raised.value)
    assert stub.requests == []


def test_public_url_with_percent_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="SIPAS_PUBLIC_URL"):
        KannelSender(settings.model_copy(update={"SIPAS_PUBLIC_URL": "https://x.vn/s%41pas"}))


def test_missing_credentials_stop_the_gateway_with_the_setting_name(settings: Settings) -> None:
    with pytest.raises(RuntimeError, match="KANNEL_PASSWORD"):
        KannelSender(settings.model_copy(update={"KANNEL_PASSWORD": ""}))


# --- parsing Kannel's callbacks ------------------------------------------------------------


def test_parse_mo() -> None:
    sms = parse_inbound(
        {
            "token": "t",
            "from": "84912345678",
            "to": "8040",
            "text": "Ra\u0302\u0301t ha\u0300i lo\u0300ng",  # NFD, as some phones send it
            "id": "2baa987e-dbba-496f-9d3d-dc94719a4cc3",
            "ts": "2026-11-22 02:55:49",
        }
    )
    assert sms.provider_id == "2baa987e-dbba-496f-9d3d-dc94719a4cc3"
    assert sms.sender == "+84912345678"
    assert sms.receiver == "8040"
    assert sms.text == "Rất hài lòng"
    assert sms.sent_at == datetime(2026, 11, 22, 2, 55, 49, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "sender"),
    [
        ("0912345678", "+84912345678"),
        ("+84 912 345 678", "+84912345678"),
        ("841693456789", "+84393456789"),  # an old 11-digit Viettel number, renumbered in 2018
        ("VIETTEL", "VIETTEL"),  # not a phone: kept as given
        ("12345", "12345"),
    ],
)
def test_mo_sender_normalised_when_possible(raw: str, sender: str) -> None:
    sms = parse_inbound({"from": raw, "text": "5", "id": "a"})
    assert sms.sender == sender


def test_mo_time_and_receiver_are_optional_and_nul_is_dropped() -> None:
    sms = parse_inbound({"from": "0912345678", "text": "5\x00", "id": "a", "ts": "yesterday"})
    assert (sms.sent_at, sms.receiver, sms.text) == (None, "", "5")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"from": "0912345678", "text": "5"}, "missing_field"),
        ({"from": "0912345678", "text": "5", "id": " "}, "missing_field"),
        ({"text": "5", "id": "a"}, "missing_field"),
        ({"from": "", "text": "5", "id": "a"}, "missing_field"),
        ({"from": "0912345678", "id": "a"}, "missing_field"),
        ({"from": "0912345678", "text": "5", "id": "x" * 129}, "invalid_field"),
    ],
)
def test_mo_refused_without_what_we_need(params: dict[str, str], error: str) -> None:
    with pytest.raises(InboundRequestError) as raised:
        parse_inbound(params)
    assert raised.value.error == error


def test_parse_dlr() -> None:
    report = parse_delivery_report(
        {"ref": "42", "msg": "abc", "token": "t", "status": "1", "ts": "1795316137"}
    )
    assert (report.ref, report.status, report.detail, report.attempt_id) == (
        "42",
        Delivery.DELIVERED,
        "kannel 1 delivered",
        "abc",
    )
    assert report.reported_at == datetime.fromtimestamp(1795316137, tz=UTC)


@pytest.mark.parametrize(
    ("code", "status", "name"),
    [
        ("1", Delivery.DELIVERED, "delivered"),
        ("2", Delivery.FAILED, "failed"),
        ("4", Delivery.ACCEPTED, "buffered"),
        ("8", Delivery.ACCEPTED, "smsc_accepted"),
        ("16", Delivery.FAILED, "smsc_rejected"),
        ("3", Delivery.ACCEPTED, "unknown"),  # any report at all means Kannel took the message
    ],
)
def test_dlr_codes_map_onto_the_neutral_status(code: str, status: Delivery, name: str) -> None:
    report = parse_delivery_report({"ref": "1", "status": code})
    assert (report.status, report.detail) == (status, f"kannel {code} {name}")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"status": "1"}, "missing_field"),
        ({"ref": "1"}, "missing_field"),
        ({"ref": "1", "status": "%d"}, "invalid_field"),  # an unexpanded escape: not from Kannel
        ({"ref": "1", "status": "-1"}, "invalid_field"),
        ({"ref": "1 OR 1=1", "status": "1"}, "invalid_field"),
    ],
)
def test_dlr_refused_without_what_we_need(params: dict[str, str], error: str) -> None:
    with pytest.raises(InboundRequestError) as raised:
        parse_delivery_report(params)
    assert raised.value.error == error


def test_dlr_token_is_per_message() -> None:
    assert dlr_token("secret", "1") != dlr_token("secret", "2")
    assert dlr_token("secret", "1") != dlr_token("other", "1")
    assert dlr_token("secret", "1") == dlr_token("secret", "1")
