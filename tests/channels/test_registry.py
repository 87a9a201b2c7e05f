"""A stored MO is read by the provider that stored it, whichever provider SIPAS_SMS_PROVIDER
selects now: a switch of provider never misreads, nor ignores, events stored before it."""

from __future__ import annotations

import json
import time

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from storage.crypto import PhoneVault
from storage.models import InboundEvent
from tests.security.webhook_client import MO_TOKEN, brandname_signature
from tests.support.app import Client
from workers.inbound import process
from workers.runtime import Runtime


async def test_events_of_both_providers_are_applied_after_a_switch(
    client: Client, settings: Settings, sessions: sessionmaker[Session], vault: PhoneVault, redis: Redis
) -> None:
    # An id Kannel may send and the brandname parser refuses: read by the wrong parser, it fails.
    kannel = await client.get(
        "/webhooks/sms/kannel",
        params={
            "token": MO_TOKEN,
            "from": "84912345678",
            "to": "8040",
            "text": "Xin chao",
            "id": "kannel id 1",
        },
    )
    assert kannel.status == 200
    body = json.dumps({"id": "b-1", "from": "84987654321", "to": "8040", "text": "Cho hoi"}).encode()
    stamp = str(int(time.time()))
    headers = {"X-Brandname-Timestamp": stamp, "X-Brandname-Signature": brandname_signature(body, stamp)}
    assert (await client.post("/webhooks/sms/brandname/mo", data=body, headers=headers)).status == 200
    with sessions() as session:
        events = session.scalars(select(InboundEvent).order_by(InboundEvent.id)).all()
    assert [event.provider for event in events] == ["kannel", "brandname"]
    for provider in ("brandname", "kannel"):  # the setting now, either way
        switched = settings.model_copy(update={"SIPAS_SMS_PROVIDER": provider})
        runtime = Runtime(settings=switched, sessions=sessions, vault=vault, redis=redis)
        for event in events:
            result, _outbox = process(runtime, event.id)
            # Outside any survey: kept for the unit's staff (flows.inbox), never "ignored".
            assert result.startswith("inbox ") or result == "already processed", result
    with sessions() as session:
        results = [event.result for event in session.scalars(select(InboundEvent).order_by(InboundEvent.id))]
    assert all(result is not None and result.startswith("inbox ") for result in results), results
