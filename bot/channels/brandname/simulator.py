"""A local brandname-SMS API that keeps the contract of this package (its __init__), for tests,
`make run` and `sipas demo` when SIPAS_SMS_PROVIDER=brandname. No real provider is reachable
from here; this is the other side of the contract, played honestly over HTTP:

- `POST /v1/sms`: checks `Authorization: Bearer <key>` (401), the JSON body (400
  invalid_request) and the number (422 invalid_number); answers 200 `{"message_id", "segments"}`;
  a `ref` it has seen answers the first message_id again and sends nothing (idempotency). Each
  message is printed as the phone shows it (and appended to `--log`), then its `callback_url` is
  called, signed, with `accepted` then `delivered`.
- `POST /sim/mo` `{"from", "text"}`: the citizen replies; the simulator posts the signed MO to
  `--mo-url`, as the provider forwards its two-way number's SMS.
- `POST /sim/answers` `[{"status": 503, "retry_after": 2}, {"hang": true}, ...]`: the next send
  requests get these answers instead (tests of the send classification); `{"status": 200}`
  behaves normally.
- `GET /sim/messages`: the messages taken so far (to, text, ref, message_id, unicode).

    python -m bot.channels.brandname.simulator --port 13014 --api-key K --callback-secret S \\
        --mo-url http://127.0.0.1:8080/webhooks/sms/brandname/mo [--log var/phone.log]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from bot.channels.brandname.parse import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from bot.channels.sms import count_segments
from flows.phones import InvalidPhoneError, normalize_phone

__all__ = ["STATE", "SimState", "create_app", "main"]


@dataclass
class SimState:
    api_key: str
    callback_secret: str
    mo_url: str
    log: Path | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    by_ref: dict[str, str] = field(default_factory=dict)
    answers: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    callbacks: list[tuple[str, int]] = field(default_factory=list)  # (url, our answer's status)


STATE = web.AppKey("state", SimState)


async def _post_signed(state: SimState, url: str, body: dict[str, Any]) -> int:
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(state.callback_secret, stamp, raw),
    }
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(url, content=raw, headers=headers)
    state.callbacks.append((url, response.status_code))
    return response.status_code


async def _report(state: SimState, url: str, message_id: str, ref: str) -> None:
    for status in ("accepted", "delivered"):
        await asyncio.sleep(0.05)
        body = {"message_id": message_id, "ref": ref, "status": status,
                "reported_at": datetime.now(UTC).isoformat()}  # fmt: skip
        try:
            await _post_signed(state, url, body)
        except httpx.HTTPError:
            return  # the service is down: a real provider retries later, the simulator does not


def _refuse(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def send(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.headers.get("Authorization") != f"Bearer {state.api_key}":
        return _refuse(401, "unauthorized", "missing or wrong API key")
    if state.answers:
        forced = state.answers.pop(0)
        if forced.get("hang"):
            await asyncio.sleep(3600)
        if forced.get("status", 200) != 200:
            headers = {"Retry-After": str(forced["retry_after"])} if "retry_after" in forced else None
            return web.json_response(
                {"error": {"code": forced.get("code", "forced")}}, status=forced["status"], headers=headers
            )
    try:
        body = await request.json()
    except ValueError:
        return _refuse(400, "invalid_request", "the body is not JSON")
    fields = ("to", "from", "text", "ref")
    if not isinstance(body, dict) or not all(isinstance(body.get(name), str) for name in fields):
        return _refuse(400, "invalid_request", "to, from, text and ref are required strings")
    try:
        phone = normalize_phone(body["to"])
    except InvalidPhoneError:
        return _refuse(422, "invalid_number", "not a Vietnamese mobile number")
    if body["ref"] in state.by_ref:
        return web.json_response({"message_id": state.by_ref[body["ref"]], "duplicate": True})
    message_id = f"bn-{uuid.uuid4().hex[:16]}"
    state.by_ref[body["ref"]] = message_id
    record = {"to": phone, "text": body["text"], "ref": body["ref"], "message_id": message_id,
              "unicode": bool(body.get("unicode")), "from": body["from"]}  # fmt: skip
    state.messages.append(record)
    # The stand-in phone's format (tests/support/sms_sink.py), which `sipas demo` reads back.
    coding = 2 if record["unicode"] else 0
    line = f"[{datetime.now(UTC):%H:%M:%S}] SMS to {body['to']} (coding {coding}):\n{body['text']}\n"
    print(line, flush=True)
    if state.log is not None:
        with state.log.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    callback = body.get("callback_url")
    if isinstance(callback, str) and callback.startswith(("http://", "https://")):
        task = asyncio.create_task(_report(state, callback, message_id, body["ref"]))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
    return web.json_response({"message_id": message_id, "segments": count_segments(body["text"])})


async def citizen_replies(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await request.json()
    mo = {"id": f"mo-{uuid.uuid4().hex[:16]}", "from": str(body["from"]), "to": str(body.get("to", "8040")),
          "text": str(body["text"]), "received_at": datetime.now(UTC).isoformat()}  # fmt: skip
    status = await _post_signed(state, state.mo_url, mo)
    return web.json_response({"id": mo["id"], "service_answered": status})


async def set_answers(request: web.Request) -> web.Response:
    request.app[STATE].answers.extend(await request.json())
    return web.json_response({"queued": len(request.app[STATE].answers)})


async def messages(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].messages)


def create_app(state: SimState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_post("/v1/sms", send)
    app.router.add_post("/sim/mo", citizen_replies)
    app.router.add_post("/sim/answers", set_answers)
    app.router.add_get("/sim/messages", messages)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local brandname-SMS API (bot/channels/brandname)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=13014)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--callback-secret", required=True)
    parser.add_argument("--mo-url", required=True, help="the service's /webhooks/sms/brandname/mo")
    parser.add_argument("--log", type=Path, help="append every SMS sent to this file")
    args = parser.parse_args(argv)
    state = SimState(args.api_key, args.callback_secret, args.mo_url, args.log)
    web.run_app(create_app(state), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
