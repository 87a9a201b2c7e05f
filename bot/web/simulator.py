"""/simulator (SIPAS_ENV=development only): play a citizen's phone against the running service.

Nothing here takes a shortcut: "close a case" posts a signed case to /api/v1/cases/closed and
"send an SMS" calls /webhooks/sms/kannel with the MO token, both over HTTP to this same server,
exactly as the one-stop system and Kannel would. The conversation shown is what the service
stored: its outbox to that number and the SMS it received from it. The worker must run (make run)
for the survey to advance.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime
from uuid import uuid4

import httpx
from aiohttp import web
from sqlalchemy import select

from bot.context import CONTEXT, AppContext
from bot.intake import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from bot.web.access import ANYONE, Viewer, require_role, viewer_of
from bot.web.i18n import LANG, translator
from bot.web.render import render
from bot.web.sessions import redirect
from flows.phones import InvalidPhoneError, normalize_phone, to_msisdn
from storage.models import Agency, InboundEvent, OutboundMessage, Survey

routes = web.RouteTableDef()


@dataclass(frozen=True)
class Bubble:
    at: datetime
    incoming: bool  # True: the service wrote to the phone
    text: str
    status: str


def _conversation(ctx: AppContext, e164: str) -> list[Bubble]:
    phone_hash = ctx.vault.lookup_hash(e164)
    tz = ctx.settings.tz
    with ctx.sessions() as session:
        sent = session.execute(
            select(OutboundMessage.created_at, OutboundMessage.text, OutboundMessage.status)
            .join(Survey, OutboundMessage.survey_id == Survey.id)
            .where(Survey.phone_hash == phone_hash)
        ).all()
        received = session.execute(
            select(InboundEvent.received_at, InboundEvent.payload_enc, InboundEvent.result).where(
                InboundEvent.sender_hash == phone_hash, InboundEvent.kind == "mo"
            )
        ).all()
    bubbles = [Bubble(at.astimezone(tz), True, text, status.value) for at, text, status in sent]
    for at, payload_enc, result in received:
        try:
            text = str(json.loads(ctx.vault.decrypt(payload_enc)).get("text", ""))
        except (ValueError, TypeError):
            text = "?"
        bubbles.append(Bubble(at.astimezone(tz), False, text, result or "received"))
    return sorted(bubbles, key=lambda b: b.at)[-60:]


def _agencies(ctx: AppContext, viewer: Viewer) -> list[tuple[str, str]]:
    with ctx.sessions() as session:
        return [
            (a.code, a.name)
            for a in session.scalars(select(Agency).order_by(Agency.code))
            if viewer.sees(a.id)
        ]


def _phone(raw: str) -> str | None:
    try:
        return normalize_phone(raw)
    except InvalidPhoneError:
        return None


@routes.get("/simulator")
@require_role(*ANYONE)
async def simulator_page(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    _ = translator(request[LANG])
    e164 = _phone(request.query.get("phone", "0912345678")[:32]) or "+84912345678"
    bubbles, agencies = await asyncio.gather(
        asyncio.to_thread(_conversation, ctx, e164), asyncio.to_thread(_agencies, ctx, viewer_of(request))
    )
    return render(
        request,
        "simulator.html",
        title=_("Giả lập điện thoại"),
        phone="0" + e164[3:],
        bubbles=bubbles,
        agencies=agencies,
        result=request.query.get("result", "")[:200],
    )


async def _call(request: web.Request, method: str, path: str, **kwargs: object) -> str:
    """Call this same server as an outside system would; the answer in one line for the page."""
    origin = str(request.url.origin())
    async with httpx.AsyncClient(base_url=origin, timeout=10) as http:
        answer = await http.request(method, path, **kwargs)  # type: ignore[arg-type]
    return f"{answer.status_code} {answer.text[:160]}"


@routes.post("/simulator/case")
@require_role(*ANYONE)
async def close_case(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    form = await request.post()
    phone = _phone(str(form.get("phone", ""))[:32])
    code = str(form.get("agency", ""))[:64]
    allowed = {c for c, _ in await asyncio.to_thread(_agencies, ctx, viewer_of(request))}
    if phone is None or code not in allowed:
        return redirect("/simulator?" + str(httpx.QueryParams({"result": "400 invalid phone or agency"})))
    case = {
        "case_id": f"SIM-{uuid4().hex[:12].upper()}",
        "agency_code": code,
        "procedure_code": str(form.get("procedure_code", "1.001612"))[:64] or "1.001612",
        "procedure_name": "Đăng ký khai sinh",
        "phone": phone,
        "channel": "sms",
        "language": "en" if form.get("language") == "en" else "vi",
        "closed_at": datetime.now(ctx.settings.tz).isoformat(),
    }
    body = json.dumps(case, ensure_ascii=False).encode()
    stamp = str(int(time.time()))
    headers = {
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(ctx.settings.ONESTOP_WEBHOOK_SECRET, stamp, body),
        "Content-Type": "application/json",
    }
    result = await _call(request, "POST", "/api/v1/cases/closed", content=body, headers=headers)
    query = httpx.QueryParams({"phone": "0" + phone[3:], "result": result})
    return redirect(f"/simulator?{query}")


@routes.post("/simulator/sms")
@require_role(*ANYONE)
async def send_sms(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    form = await request.post()
    phone = _phone(str(form.get("phone", ""))[:32])
    text = str(form.get("text", ""))[:640]
    if phone is None or not text.strip():
        return redirect("/simulator?" + str(httpx.QueryParams({"result": "400 invalid phone or empty text"})))
    params = {
        "token": ctx.settings.KANNEL_MO_TOKEN,
        "from": to_msisdn(phone),
        "to": ctx.settings.SMS_SENDER,
        "text": text,
        "id": f"sim-{uuid4().hex}",
        "ts": datetime.now(ctx.settings.tz).strftime("%Y-%m-%d %H:%M:%S"),
    }
    result = await _call(request, "GET", "/webhooks/sms/kannel", params=params)
    query = httpx.QueryParams({"phone": "0" + phone[3:], "result": result})
    return redirect(f"/simulator?{query}")
