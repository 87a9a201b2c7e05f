"""ZaloOAClient and ZNSClient over HTTP against the simulated OA, OAuth server and ZNS."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.channels.zalo import InMemoryTokenStore, OATokens, ZaloOAClient, ZNSClient
from bot.channels.zalo.exceptions import (
    ZaloPermanentError,
    ZaloRateLimited,
    ZaloTokenInvalid,
    ZaloTokenRefreshError,
    ZaloUnreachable,
)
from bot.channels.zalo.simulator import ZaloSimulator


def seeded_store(sim: ZaloSimulator, *, expired: bool = False) -> InMemoryTokenStore:
    """The state after an operator authorised the OA once."""
    access, refresh = sim.issue_tokens()
    expires = datetime.now(UTC) + (timedelta(hours=-1) if expired else timedelta(hours=25))
    return InMemoryTokenStore(OATokens(access, refresh, expires))


def oa_client(sim: ZaloSimulator, store: InMemoryTokenStore) -> ZaloOAClient:
    c = sim.config
    return ZaloOAClient(sim.base_url, sim.base_url, c.app_id, c.app_secret, store)


def zns_client(sim: ZaloSimulator, store: InMemoryTokenStore) -> ZNSClient:
    c = sim.config
    return ZNSClient(sim.base_url, sim.base_url, c.app_id, c.app_secret, store)


async def test_send_cs_message(zalo_sim: ZaloSimulator) -> None:
    async with oa_client(zalo_sim, seeded_store(zalo_sim)) as oa:
        result = await oa.send_cs_message("2468013579246801357", "Anh/chị hài lòng với dịch vụ không?")
    assert result.user_id == "2468013579246801357"
    assert zalo_sim.oa_sent == [
        {
            "user_id": "2468013579246801357",
            "text": "Anh/chị hài lòng với dịch vụ không?",
            "message_id": result.message_id,
        }
    ]
    assert zalo_sim.token_grants == []


async def test_expired_token_is_refreshed_once_and_the_send_retried(zalo_sim: ZaloSimulator) -> None:
    store = seeded_store(zalo_sim)
    first = await store.load()
    assert first is not None
    async with oa_client(zalo_sim, store) as oa:
        await oa.send_cs_message("u1", "Câu 1")
        zalo_sim.expire_access_tokens()  # the token dies mid-survey
        await oa.send_cs_message("u1", "Câu 2")
        await oa.send_cs_message("u1", "Câu 3")
    assert [m["text"] for m in zalo_sim.oa_sent] == ["Câu 1", "Câu 2", "Câu 3"]
    assert len(zalo_sim.token_grants) == 1
    grant = zalo_sim.token_grants[0]
    assert grant["used_refresh_token"] == first.refresh_token
    # The new pair was stored, the old refresh token is spent, the new one is live.
    assert [(t.access_token, t.refresh_token) for t in store.saved] == [
        (grant["access_token"], grant["refresh_token"])
    ]
    assert not zalo_sim.refresh_token_valid(first.refresh_token)
    assert zalo_sim.refresh_token_valid(grant["refresh_token"])
    cs_tokens = [r.headers["access_token"] for r in zalo_sim.requests if r.api == "oa"]
    assert cs_tokens == [first.access_token, first.access_token, grant["access_token"], grant["access_token"]]


async def test_concurrent_sends_with_a_dead_token_refresh_only_once(zalo_sim: ZaloSimulator) -> None:
    store = seeded_store(zalo_sim)
    zalo_sim.expire_access_tokens()
    async with oa_client(zalo_sim, store) as oa:
        await asyncio.gather(*(oa.send_cs_message(f"u{i}", f"Tin {i}") for i in range(5)))
    assert len(zalo_sim.oa_sent) == 5
    assert len(zalo_sim.token_grants) == 1
    assert len(store.saved) == 1


async def test_a_stored_token_past_its_expiry_is_refreshed_before_the_call(zalo_sim: ZaloSimulator) -> None:
    store = seeded_store(zalo_sim, expired=True)
    async with oa_client(zalo_sim, store) as oa:
        await oa.send_cs_message("u1", "Xin chào")
    assert len(zalo_sim.token_grants) == 1
    assert [r.headers["access_token"] for r in zalo_sim.requests if r.api == "oa"] == [
        zalo_sim.token_grants[0]["access_token"]
    ]


async def test_a_spent_refresh_token_is_a_refresh_error(zalo_sim: ZaloSimulator) -> None:
    access, refresh = zalo_sim.issue_tokens()
    store = InMemoryTokenStore(
        OATokens(access, "sim-rt-already-used", datetime.now(UTC) + timedelta(hours=1))
    )
    zalo_sim.expire_access_tokens()
    async with oa_client(zalo_sim, store) as oa:
        with pytest.raises(ZaloTokenRefreshError, match="refresh_token"):
            await oa.send_cs_message("u1", "Xin chào")
    assert zalo_sim.oa_sent == []
    assert zalo_sim.refresh_token_valid(refresh)


async def test_a_wrong_app_secret_cannot_refresh(zalo_sim: ZaloSimulator) -> None:
    store = seeded_store(zalo_sim)
    zalo_sim.expire_access_tokens()
    c = zalo_sim.config
    async with ZaloOAClient(zalo_sim.base_url, zalo_sim.base_url, c.app_id, "wrong", store) as oa:
        with pytest.raises(ZaloTokenRefreshError):
            await oa.send_cs_message("u1", "Xin chào")


async def test_a_token_refused_twice_is_raised(zalo_sim: ZaloSimulator) -> None:
    """Refresh works but the new token is refused too: one retry only, then the error."""

    class RevokingStore(InMemoryTokenStore):
        async def save(self, tokens: OATokens) -> None:
            await super().save(tokens)
            zalo_sim.expire_access_tokens()

    access, refresh = zalo_sim.issue_tokens()
    store = RevokingStore(OATokens(access, refresh, datetime.now(UTC) + timedelta(hours=1)))
    zalo_sim.expire_access_tokens()
    async with oa_client(zalo_sim, store) as oa:
        with pytest.raises(ZaloTokenInvalid):
            await oa.send_cs_message("u1", "Xin chào")
    assert len(zalo_sim.token_grants) == 1
    assert len([r for r in zalo_sim.requests if r.api == "oa"]) == 2


async def test_no_stored_token_is_token_invalid(zalo_sim: ZaloSimulator) -> None:
    async with oa_client(zalo_sim, InMemoryTokenStore()) as oa:
        with pytest.raises(ZaloTokenInvalid, match="authorise"):
            await oa.send_cs_message("u1", "Xin chào")


@pytest.mark.parametrize("code", [-213, -230])
async def test_unreachable_followers(zalo_sim: ZaloSimulator, code: int) -> None:
    zalo_sim.config.oa_user_errors["gone"] = code
    async with oa_client(zalo_sim, seeded_store(zalo_sim)) as oa:
        with pytest.raises(ZaloUnreachable) as caught:
            await oa.send_cs_message("gone", "Xin chào")
    assert caught.value.code == code
    assert zalo_sim.oa_sent == []


async def test_oa_rate_limit(zalo_sim: ZaloSimulator) -> None:
    zalo_sim.config.oa_rate_limit, zalo_sim.config.rate_window = 1, 3600
    async with oa_client(zalo_sim, seeded_store(zalo_sim)) as oa:
        await oa.send_cs_message("u1", "một")
        with pytest.raises(ZaloRateLimited) as caught:
            await oa.send_cs_message("u1", "hai")
    assert caught.value.code == -32


async def test_zns_send_template_and_read_the_rating_back(zalo_sim: ZaloSimulator) -> None:
    async with zns_client(zalo_sim, seeded_store(zalo_sim)) as zns:
        sent = await zns.send_template("84912345678", "312345", {"ma_ho_so": "H01.01-0001"}, "survey-17")
        zalo_sim.add_rating(sent.msg_id, 4, note="Nhanh gọn")
        assert sent.sent_time is not None
        page = await zns.get_ratings("312345", sent.sent_time, sent.sent_time + 86_400_000)
        other = await zns.get_ratings("999999", 0, 2**42)
    assert zalo_sim.zns_sent[0]["tracking_id"] == "survey-17"
    assert zalo_sim.zns_sent[0]["phone"] == "84912345678"
    assert page.total == 1
    assert [(r.msg_id, r.tracking_id, r.rate, r.note) for r in page.data] == [
        (sent.msg_id, "survey-17", 4, "Nhanh gọn")
    ]
    assert other.total == 0


@pytest.mark.parametrize("code", [-108, -118, -114])
async def test_zns_phones_that_cannot_be_reached(zalo_sim: ZaloSimulator, code: int) -> None:
    zalo_sim.config.zns_phone_errors["84900000000"] = code
    async with zns_client(zalo_sim, seeded_store(zalo_sim)) as zns:
        with pytest.raises(ZaloUnreachable) as caught:
            await zns.send_template("84900000000", "312345", {}, "survey-1")
    assert caught.value.code == code
    assert zalo_sim.zns_sent == []


async def test_zns_token_refusal_refreshes(zalo_sim: ZaloSimulator) -> None:
    store = seeded_store(zalo_sim)
    zalo_sim.expire_access_tokens()
    async with zns_client(zalo_sim, store) as zns:
        await zns.send_template("84912345678", "312345", {}, "survey-2")
    assert len(zalo_sim.token_grants) == 1
    assert len(zalo_sim.zns_sent) == 1


@pytest.mark.parametrize(
    ("phone", "tracking"), [("0912345678", "s"), ("+84912345678", "s"), ("84912345678", "x" * 49)]
)
async def test_zns_bad_arguments_are_refused_before_sending(
    zalo_sim: ZaloSimulator, phone: str, tracking: str
) -> None:
    async with zns_client(zalo_sim, seeded_store(zalo_sim)) as zns:
        with pytest.raises(ZaloPermanentError):
            await zns.send_template(phone, "312345", {}, tracking)
    assert zalo_sim.requests == []
