"""Every authentication check against INDEPENDENT vectors: expected values are written here (computed
with openssl) or computed here with hashlib/hmac, never with the project's own signing functions.

A deliberately broken check must fail these tests: accepting a header of only ",", trusting only
the last (or first) of two signatures during a secret rotation, refusing uppercase hex, accepting
an empty or truncated value, comparing a token by prefix.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.kannel import dlr_token
from bot.channels.zalo_oa.webhooks import _check_oa_event
from bot.errors import RefusedError
from bot.intake import _check_signature
from config.settings import Settings
from storage.crypto import PhoneVault
from tests.security.webhook_client import (
    BOT,
    BOT_SECRET,
    DLR,
    MO,
    MO_TOKEN,
    OA,
    bot_event,
    configured,
    dlr_token_vector,
    dumps,
    oa_event,
    oa_mac,
)
from tests.support.app import Client, RecordingDispatcher, app_client

INTAKE = "/api/v1/cases/closed"
ONESTOP = "onestop-vector-secret"
OLD_ONESTOP = "onestop-previous-secret"

# Computed with: printf '%s' '1764500000.{"case_id":"A-1"}' | openssl dgst -sha256 -hmac onestop-vector-secret
INTAKE_VECTOR = "ba80b54160b57e7730d8298e610d62e7ade685914a0e7981a56e2597f080cb05"
# printf '%s' 'kannel-dlr:42' | openssl dgst -sha256 -hmac mo-token-security-0123 | cut -c1-32
DLR_VECTOR = "ba560933987011266b699296164170a8"
# printf '%s' '3051234567890123456{"a":1}1764500000123oa-secret-key-security' | sha256sum
OA_VECTOR = "f4ba0302051b3d7438013b5c6f753ca9b6ed995cf0d5cbf1417fa4f2f2c4928f"


def intake_mac(secret: str, stamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def accepts(secret: str, stamp: str, header: str, body: bytes) -> bool:
    try:
        _check_signature(secret, stamp, header, body)
    except RefusedError:
        return False
    return True


# --- the intake signature -----------------------------------------------------------------------


def test_intake_fixed_vector() -> None:
    body = b'{"case_id":"A-1"}'
    assert intake_mac(ONESTOP, "1764500000", body) == INTAKE_VECTOR  # the helper agrees with openssl
    assert accepts(ONESTOP, "1764500000", f"v1={INTAKE_VECTOR}", body)
    assert accepts(ONESTOP, "1764500000", f"v1={INTAKE_VECTOR.upper()}", body)
    assert accepts(ONESTOP, "1764500000", f" v1={INTAKE_VECTOR} ", body)
    assert not accepts(ONESTOP, "1764500001", f"v1={INTAKE_VECTOR}", body)
    assert not accepts(ONESTOP, "1764500000", f"v1={INTAKE_VECTOR}", body + b" ")
    assert not accepts("onestop-vector-secreT", "1764500000", f"v1={INTAKE_VECTOR}", body)


@pytest.mark.parametrize(
    "header",
    ["", ",", " , ", ",,,", "v1=", "v1=,", "v1", "=", INTAKE_VECTOR, f"v0={INTAKE_VECTOR}",
     f"v1={INTAKE_VECTOR[:-1]}", f"v1={INTAKE_VECTOR}0", f"v1={INTAKE_VECTOR[:32]}", "v1=" + "0" * 64,
     f"v1= {INTAKE_VECTOR[1:]}", "v1=ĐĐĐ", f"v1={INTAKE_VECTOR};", f"v2={INTAKE_VECTOR},v1=00"],
)  # fmt: skip
def test_intake_malformed_or_wrong_headers_are_refused(header: str) -> None:
    assert not accepts(ONESTOP, "1764500000", header, b'{"case_id":"A-1"}')


@pytest.mark.parametrize("order", ["old_first", "new_first"])
def test_intake_rotation_either_order(order: str) -> None:
    """During a rotation the sender signs with the old and the new secret: any match is enough,
    whichever position it holds."""
    body, stamp = b'{"case_id":"A-1"}', "1764500000"
    old, new = intake_mac(OLD_ONESTOP, stamp, body), intake_mac(ONESTOP, stamp, body)
    pair = [f"v1={old}", f"v1={new}"] if order == "old_first" else [f"v1={new}", f"v1={old}"]
    assert accepts(ONESTOP, stamp, ",".join(pair), body)
    assert accepts(OLD_ONESTOP, stamp, ",".join(pair), body)
    assert not accepts("a-third-secret-entirely", stamp, ",".join(pair), body)
    assert accepts(ONESTOP, stamp, ", ".join([*pair, ","]), body)


@hsettings(max_examples=150, deadline=None)
@given(
    secret=st.text(min_size=16, max_size=40),
    body=st.binary(max_size=200),
    stamp=st.integers(min_value=0, max_value=10**11).map(str),
    noise=st.lists(st.text(alphabet="v1=,0123456789abcdefABCDEF ", max_size=70), max_size=3),
    position=st.integers(min_value=0, max_value=3),
    upper=st.booleans(),
)
@example(secret="s" * 16, body=b"", stamp="0", noise=[","], position=0, upper=False)
def test_intake_property_any_header_is_accepted_iff_it_holds_the_mac(
    secret: str, body: bytes, stamp: str, noise: list[str], position: int, upper: bool
) -> None:
    mac = intake_mac(secret, stamp, body)
    good = f"v1={mac.upper() if upper else mac}"
    assert accepts(secret, stamp, ",".join(noise), body) == any(
        p.strip().lower() == f"v1={mac}" for p in noise
    )
    with_good = [*noise]
    with_good.insert(min(position, len(noise)), good)
    assert accepts(secret, stamp, ",".join(with_good), body)


@pytest.fixture
async def web(
    settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> AsyncIterator[Client]:
    app_settings = configured(settings).model_copy(update={"ONESTOP_WEBHOOK_SECRET": ONESTOP})
    async with app_client(app_settings, sessions, vault, redis, RecordingDispatcher()) as client:
        yield client


async def test_intake_over_http_accepts_only_a_matching_signature(web: Client) -> None:
    body = b'{"cases": []}'  # refused as empty after the signature check: 400, not 401
    stamp = str(int(time.time()))
    mac = intake_mac(ONESTOP, stamp, body)
    for header, status in (
        (f"v1={mac}", 400),
        (f"v1={mac.upper()}", 400),
        (f"v1={intake_mac(OLD_ONESTOP, stamp, body)},v1={mac}", 400),
        (f"v1={mac},v1={intake_mac(OLD_ONESTOP, stamp, body)}", 400),
        (",", 401),
        ("", 401),
        (f"v1={intake_mac(OLD_ONESTOP, stamp, body)}", 401),
    ):
        response = await web.post(
            INTAKE, data=body, headers={"X-Sipas-Timestamp": stamp, "X-Sipas-Signature": header}
        )
        assert response.status == status, header


# --- the Kannel MO token and the DLR token ---------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "status"),
    [(MO_TOKEN, 200), ("", 401), (",", 403), (MO_TOKEN.upper(), 403), (MO_TOKEN[:-1], 403),
     (MO_TOKEN + "x", 403), (MO_TOKEN[:8], 403), (" " + MO_TOKEN, 403)],
)  # fmt: skip
async def test_kannel_mo_token(web: Client, token: str, status: int) -> None:
    params = {"token": token, "from": "84912345678", "to": "8040", "text": "5", "id": f"mo-{token}"}
    response = await web.get(MO, params=params)
    assert response.status == status


async def test_kannel_mo_token_first_value_wins(web: Client) -> None:
    query = f"token=wrong-token-000000000&token={MO_TOKEN}&from=84912345678&to=8040&text=5&id=mo-dup"
    assert (await web.get(f"{MO}?{query}")).status == 403


def test_dlr_token_vector() -> None:
    assert dlr_token_vector(MO_TOKEN, "42") == DLR_VECTOR
    assert dlr_token(MO_TOKEN, "42") == DLR_VECTOR


@pytest.mark.parametrize(
    ("token", "status"),
    [(DLR_VECTOR, 200), ("", 401), (",", 403), (DLR_VECTOR.upper(), 403), (DLR_VECTOR[:-1], 403),
     (dlr_token_vector(MO_TOKEN, "43"), 403), (dlr_token_vector("another-mo-token-0000", "42"), 403)],
)  # fmt: skip
async def test_kannel_dlr_token(web: Client, token: str, status: int) -> None:
    params = {"ref": "42", "msg": "abc", "token": token, "status": "1", "ts": "1795316137"}
    assert (await web.get(DLR, params=params)).status == status


# --- the Zalo bot secret and the OA signature -----------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "status"),
    [(BOT_SECRET, 200), (None, 401), ("", 401), (",", 401), (BOT_SECRET.upper(), 401),
     (BOT_SECRET[:-1], 401), (BOT_SECRET + ",", 401), (f"{BOT_SECRET},{BOT_SECRET}", 401)],
)  # fmt: skip
async def test_zalo_bot_secret(web: Client, secret: str | None, status: int) -> None:
    headers = {} if secret is None else {"X-Bot-Api-Secret-Token": secret}
    response = await web.post(BOT, data=dumps(bot_event(message_id=f"m-{secret}")).encode(), headers=headers)
    assert response.status == status


def oa_settings(settings: Settings, *, app_secret_signs: bool = False) -> Settings:
    chosen = "app_secret" if app_secret_signs else "oa_secret"
    return configured(settings).model_copy(update={"ZALO_OA_SIGNATURE_KEY": chosen})


def oa_accepts(settings: Settings, header: str, raw: str) -> bool:
    try:
        _check_oa_event(settings, header, raw, json.loads(raw))
    except RefusedError as refused:
        status = refused.response.status
    else:
        return True
    assert status in (400, 401, 403)
    return False


def test_oa_fixed_vector(settings: Settings) -> None:
    assert oa_mac('{"a":1}', "1764500000123") == OA_VECTOR


@pytest.mark.parametrize("prefix", ["mac=", "MAC=", ""])
@pytest.mark.parametrize("upper", [False, True])
def test_oa_signature_forms(settings: Settings, prefix: str, upper: bool) -> None:
    event = oa_event()
    raw = dumps(event)
    mac = oa_mac(raw, event["timestamp"])
    assert oa_accepts(oa_settings(settings), prefix + (mac.upper() if upper else mac), raw)


@pytest.mark.parametrize(
    "header",
    ["", ",", "mac=", "mac=,", "mac=" + "0" * 64, "sha256=", "mac = x"],
)
def test_oa_malformed_signatures_are_refused(settings: Settings, header: str) -> None:
    raw = dumps(oa_event())
    assert not oa_accepts(oa_settings(settings), header, raw)


def test_oa_signature_key_choice(settings: Settings) -> None:
    from tests.security.webhook_client import APP_SECRET

    event = oa_event()
    raw = dumps(event)
    by_oa_key, by_app_secret = (
        oa_mac(raw, event["timestamp"]),
        oa_mac(raw, event["timestamp"], key=APP_SECRET),
    )
    assert oa_accepts(oa_settings(settings), by_oa_key, raw)
    assert not oa_accepts(oa_settings(settings), by_app_secret, raw)
    assert oa_accepts(oa_settings(settings, app_secret_signs=True), by_app_secret, raw)
    assert not oa_accepts(oa_settings(settings, app_secret_signs=True), by_oa_key, raw)


def test_oa_signature_binds_app_id_and_timestamp(settings: Settings) -> None:
    event = oa_event()
    raw = dumps(event)
    assert not oa_accepts(oa_settings(settings), oa_mac(raw, str(int(event["timestamp"]) + 1)), raw)
    assert not oa_accepts(oa_settings(settings), oa_mac(raw, event["timestamp"], app_id="1"), raw)


@hsettings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(max_size=60),
    msg_id=st.text(alphabet="abcdef0123456789", min_size=1, max_size=20),
    forged=st.text(alphabet="0123456789abcdefABCDEF=mac, ", max_size=80),
)
def test_oa_property_only_the_mac_of_this_body_is_accepted(
    settings: Settings, text: str, msg_id: str, forged: str
) -> None:
    event = oa_event(msg_id=msg_id)
    event["message"]["text"] = text
    raw = dumps(event)
    mac = oa_mac(raw, event["timestamp"])
    assert oa_accepts(oa_settings(settings), f"mac={mac}", raw)
    forged_is_mac = forged.strip().lower().removeprefix("mac=") == mac
    assert oa_accepts(oa_settings(settings), forged, raw) == forged_is_mac


async def test_oa_over_http(web: Client) -> None:
    event = oa_event(msg_id="http-1")
    raw = dumps(event)
    mac = oa_mac(raw, event["timestamp"])
    for header, status in ((",", 401), (f"mac={mac[:-2]}", 401), (f"mac={mac.upper()}", 200)):
        response = await web.post(OA, data=raw.encode(), headers={"X-ZEvent-Signature": header})
        assert response.status == status, header
