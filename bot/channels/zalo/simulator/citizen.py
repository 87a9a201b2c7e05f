"""The citizen's side of the simulated Zalo: event bodies in the documented shapes, the OA
signature, and control routes (`/_sim/...`) to drive a standalone simulator by hand or from a demo.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from bot.channels.zalo.simulator.app import ZaloSimulator

BOT_TEXT = "message.text.received"
BOT_IMAGE = "message.image.received"
BOT_STICKER = "message.sticker.received"
BOT_UNSUPPORTED = "message.unsupported.received"


def _now_ms() -> int:
    return int(time.time() * 1000)


def oa_signature(app_id: str, raw_body: str, timestamp: str, key: str) -> str:
    """Zalo's X-ZEvent-Signature mac: hex sha256(app_id + raw body + timestamp + key)."""
    return hashlib.sha256(f"{app_id}{raw_body}{timestamp}{key}".encode()).hexdigest()


def bot_update(
    user_id: str,
    text: str | None = None,
    *,
    event_name: str = BOT_TEXT,
    display_name: str = "Nguyễn Văn An",
    message_id: str | None = None,
    date: int | None = None,
) -> dict[str, Any]:
    """A Bot Platform update (bare; the webhook delivery wraps it in `{ok, result}`)."""
    message: dict[str, Any] = {
        "from": {"id": user_id, "display_name": display_name, "is_bot": False},
        "chat": {"id": user_id, "chat_type": "PRIVATE"},
        "message_id": message_id or secrets.token_hex(16),
        "date": date if date is not None else _now_ms(),
    }
    if event_name == BOT_TEXT:
        message["text"] = text if text is not None else ""
    elif event_name == BOT_IMAGE:
        message["photo_url"] = "https://photo.example/zalo/img.jpg"
        if text:
            message["caption"] = text
    elif event_name == BOT_STICKER:
        message["sticker"] = "bfe458bf64fa8da4d4eb"
        message["url"] = "https://zalo-api.zadn.vn/api/emoticon/sticker/webpc?eid=46991"
    return {"event_name": event_name, "message": message}


def oa_text_event(
    app_id: str,
    oa_id: str,
    user_id: str,
    text: str,
    *,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    return {
        "app_id": app_id,
        "user_id_by_app": f"app-{user_id}",
        "event_name": "user_send_text",
        "sender": {"id": user_id},
        "recipient": {"id": oa_id},
        "message": {"text": text, "msg_id": msg_id or secrets.token_hex(10)},
        "timestamp": str(timestamp if timestamp is not None else _now_ms()),
    }


def oa_follow_event(
    app_id: str, oa_id: str, user_id: str, *, follow: bool = True, timestamp: int | None = None
) -> dict[str, Any]:
    return {
        "app_id": app_id,
        "oa_id": oa_id,
        "user_id_by_app": f"app-{user_id}",
        "event_name": "follow" if follow else "unfollow",
        "source": "oa_profile",
        "follower": {"id": user_id},
        "timestamp": str(timestamp if timestamp is not None else _now_ms()),
    }


def feedback_event(
    app_id: str,
    oa_id: str,
    msg_id: str,
    rate: int,
    *,
    note: str = "",
    tracking_id: str = "",
    timestamp: int | None = None,
) -> dict[str, Any]:
    """`user_feedback`: the citizen's stars on a ZNS service-rating message."""
    stamp = timestamp if timestamp is not None else _now_ms()
    return {
        "event_name": "user_feedback",
        "app_id": app_id,
        "oa_id": oa_id,
        "message": {
            "note": note,
            "rate": rate,
            "submit_time": str(stamp),
            "msg_id": msg_id,
            "feedbacks": [],
            "tracking_id": tracking_id,
        },
        "timestamp": str(stamp),
    }


def add_control_routes(app: web.Application, sim: ZaloSimulator) -> None:
    """`/_sim/...`: make the simulated citizen act on a running simulator (demo, `make run`)."""

    async def bot_say(request: web.Request) -> web.Response:
        body = await request.json()
        update = bot_update(
            str(body["user_id"]), body.get("text"), event_name=body.get("event_name", BOT_TEXT)
        )
        if sim.webhook_url:
            status, answer = await sim.deliver_bot_event(None, update)
            return web.json_response({"delivered": status, "answer": answer, "update": update})
        sim.push_update(update)
        return web.json_response({"queued": True, "update": update})

    async def oa_say(request: web.Request) -> web.Response:
        body = await request.json()
        event = oa_text_event(sim.config.app_id, sim.config.oa_id, str(body["user_id"]), body["text"])
        status, answer = await sim.deliver_oa_event(None, event)
        return web.json_response({"delivered": status, "answer": answer, "event": event})

    async def oa_follow(request: web.Request) -> web.Response:
        body = await request.json()
        event = oa_follow_event(sim.config.app_id, sim.config.oa_id, str(body["user_id"]))
        status, answer = await sim.deliver_oa_event(None, event)
        return web.json_response({"delivered": status, "answer": answer, "event": event})

    async def zns_rate(request: web.Request) -> web.Response:
        """The citizen rates a ZNS message; `"deliver": false` loses the webhook (only
        rating/get knows the rating, as when the service was down)."""
        body = await request.json()
        event = sim.add_rating(str(body["msg_id"]), int(body["rate"]), note=body.get("note", ""))
        if not sim.config.oa_webhook_url or body.get("deliver") is False:
            return web.json_response({"recorded": True, "event": event})
        status, answer = await sim.deliver_oa_event(None, event)
        return web.json_response({"recorded": True, "delivered": status, "answer": answer, "event": event})

    async def issue_tokens(_request: web.Request) -> web.Response:
        access, refresh = sim.issue_tokens()
        return web.json_response({"access_token": access, "refresh_token": refresh})

    async def expire_tokens(_request: web.Request) -> web.Response:
        sim.expire_access_tokens()
        return web.json_response({"expired": True})

    async def configure(request: web.Request) -> web.Response:
        """Who cannot be reached: `{"zns_phone_errors": {"84900000000": -118},
        "oa_user_errors": {"u1": -230}, "blocked_chats": ["u2"]}` (merged into the config); send
        faults: `{"send_stall": 20, "send_failures": [500, 429]}` (the stall replaced, the
        failures appended; see SimConfig)."""
        body = await request.json()
        if "send_stall" in body:
            sim.config.send_stall = float(body["send_stall"])
        sim.config.send_failures.extend(int(status) for status in body.get("send_failures", []))
        sim.config.zns_phone_errors.update(
            {str(k): int(v) for k, v in body.get("zns_phone_errors", {}).items()}
        )
        sim.config.oa_user_errors.update({str(k): int(v) for k, v in body.get("oa_user_errors", {}).items()})
        sim.config.blocked_chats.update(str(chat) for chat in body.get("blocked_chats", []))
        return web.json_response(
            {
                "zns_phone_errors": sim.config.zns_phone_errors,
                "oa_user_errors": sim.config.oa_user_errors,
                "blocked_chats": sorted(sim.config.blocked_chats),
                "send_stall": sim.config.send_stall,
                "send_failures": list(sim.config.send_failures),
            }
        )

    async def sent(_request: web.Request) -> web.Response:
        return web.json_response(
            {"bot": sim.bot_sent, "oa": sim.oa_sent, "zns": sim.zns_sent, "refused": sim.send_refusals}
        )

    app.router.add_post("/_sim/bot/say", bot_say)
    app.router.add_post("/_sim/oa/say", oa_say)
    app.router.add_post("/_sim/oa/follow", oa_follow)
    app.router.add_post("/_sim/zns/rate", zns_rate)
    app.router.add_post("/_sim/oa/tokens", issue_tokens)
    app.router.add_post("/_sim/oa/expire-tokens", expire_tokens)
    app.router.add_post("/_sim/config", configure)
    app.router.add_get("/_sim/sent", sent)
