"""A local Zalo: Bot Platform, OA API v3, OAuth v4 token endpoint and ZNS, in one aiohttp app.

It follows the documented contract (../shared/spec/channels.md): envelopes, error codes, the
single-use refresh token, token expiry, signatures. It keeps everything it is sent
(`sim.requests`, `sim.bot_sent`, `sim.oa_sent`, `sim.zns_sent`, `sim.token_grants`) so tests can
assert on it, and it can play the citizen (see `ZaloSimulator.deliver_*`, `citizen.py`).

A test and development tool, kept with the Zalo providers it plays (like the brandname API's
simulator in bot/channels/brandname): the service itself never imports it; tests, `sipas demo`
and `python -m bot.channels.zalo.simulator` run it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

from bot.channels.zalo.simulator import citizen

MAX_TEXT = 2000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class SimConfig:
    """Knobs of the simulated Zalo. Rate limits are `calls per rate_window seconds` (None: off)."""

    bot_token: str = "1234567890:sim-bot-token"  # noqa: S105 (the simulator's own, not a secret)
    bot_id: str = "1234567890"
    app_id: str = "3051234567890123456"
    app_secret: str = "sim-app-secret"  # noqa: S105
    oa_secret_key: str = "sim-oa-secret-key"  # noqa: S105
    oa_id: str = "4301234567890123456"
    access_token_ttl: int = 25 * 3600
    bot_rate_limit: int | None = None
    oa_rate_limit: int | None = None
    rate_window: float = 60.0
    # getUpdates waits at most this long for an update before answering 408 (None: the requested
    # timeout, as Zalo does; tests use 0 so an empty queue answers at once).
    long_poll_cap: float | None = None
    # Chats the bot may not write to (HTTP 403), OA users with an error code (-213 not a follower,
    # -230 outside the interaction window...), phones with a ZNS error code (-108, -118, -114, -124).
    blocked_chats: set[str] = field(default_factory=set)
    oa_user_errors: dict[str, int] = field(default_factory=dict)
    zns_phone_errors: dict[str, int] = field(default_factory=dict)
    # Where the simulated OA posts events (set in the Zalo developer console, not by API).
    oa_webhook_url: str | None = None
    # Faults of the three send APIs (sendMessage, OA cs, ZNS template). `send_stall`: the message
    # is taken (recorded as sent), then the answer comes this many seconds later, so a client
    # with a shorter read timeout loses it (the real "request reached Zalo, answer lost").
    # `send_failures`: the next sends are refused, one status per send, without taking the
    # message: 429 (Bot API 429, OA/ZNS -32 with Retry-After: 1) or a 5xx as is.
    send_stall: float = 0.0
    send_failures: deque[int] = field(default_factory=deque)


@dataclass(frozen=True)
class RecordedRequest:
    api: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any


_OA_ERRORS = {
    -32: "Exceeded the rate limit",
    -108: "Phone number is invalid",
    -114: "User is inactive, or has refused ZNS from this OA",
    -118: "Zalo account does not exist",
    -119: "Account cannot receive ZNS",
    -124: "Access token is invalid",
    -139: "User refused to receive this type of ZNS",
    -141: "User refused to receive ZNS from this OA",
    -201: "Parameters are invalid",
    -213: "User has not followed the OA",
    -216: "Access token is invalid",
    -220: "Access token has expired",
    -230: "User has not interacted with the OA in the last 7 days",
}


class ZaloSimulator:
    """Start with `async with ZaloSimulator(SimConfig()) as sim:`; `sim.base_url` serves every API."""

    def __init__(self, config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SimConfig()
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.requests: list[RecordedRequest] = []
        self.bot_sent: list[dict[str, Any]] = []
        self.bot_actions: list[dict[str, Any]] = []
        self.oa_sent: list[dict[str, Any]] = []
        self.zns_sent: list[dict[str, Any]] = []
        self.token_grants: list[dict[str, Any]] = []
        self.send_refusals: list[int] = []  # statuses answered by `send_failures`
        self.ratings: list[dict[str, Any]] = []
        self.webhook_url = ""
        self.webhook_secret = ""
        self.webhook_updated_at: int | None = None
        self._updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._access_tokens: dict[str, float] = {}  # token -> expires at (Unix seconds)
        self._refresh_tokens: set[str] = set()
        self._calls: dict[str, deque[float]] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._bot_api)
        app.router.add_post("/v3.0/oa/message/cs", self._oa_cs)
        app.router.add_post("/v4/oa/access_token", self._oauth)
        app.router.add_post("/message/template", self._zns_send)
        app.router.add_get("/rating/get", self._zns_ratings)
        citizen.add_control_routes(app, self)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def session(self) -> aiohttp.ClientSession:
        """The citizen's HTTP client (webhook deliveries), closed with the simulator."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # --- helpers for tests ----------------------------------------------------------------------

    def issue_tokens(self, ttl: int | None = None) -> tuple[str, str]:
        """What the operator gets by authorising the OA once: (access_token, refresh_token)."""
        access, refresh = f"sim-at-{secrets.token_hex(8)}", f"sim-rt-{secrets.token_hex(8)}"
        self._access_tokens[access] = time.time() + (self.config.access_token_ttl if ttl is None else ttl)
        self._refresh_tokens.add(refresh)
        return access, refresh

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is now expired (a token dying mid-survey)."""
        for token in self._access_tokens:
            self._access_tokens[token] = 0.0

    def refresh_token_valid(self, token: str) -> bool:
        return token in self._refresh_tokens

    def push_update(self, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates (the citizen writes while the bot long-polls)."""
        self._updates.put_nowait(update)

    def add_rating(
        self, msg_id: str, rate: int, *, note: str = "", tracking_id: str = "", template_id: str = ""
    ) -> dict[str, Any]:
        """The citizen rates a ZNS message; returns the matching `user_feedback` webhook event."""
        sent = next((m for m in self.zns_sent if m["msg_id"] == msg_id), None)
        template = template_id or (sent["template_id"] if sent else "")
        tracking = tracking_id or (sent["tracking_id"] if sent else "")
        submitted = now_ms()
        self.ratings.append(
            {
                "template_id": template,
                "msgId": msg_id,
                "trackingId": tracking,
                "rate": rate,
                "note": note,
                "feedbacks": [],
                "submitDate": str(submitted),
            }
        )
        return citizen.feedback_event(
            self.config.app_id, self.config.oa_id, msg_id, rate, note=note, tracking_id=tracking
        )

    # --- citizen: webhook deliveries --------------------------------------------------------------

    async def deliver_bot_event(
        self,
        url: str | None,
        update: dict[str, Any],
        *,
        secret: str | None = None,
        wrapped: bool = False,
    ) -> tuple[int, Any]:
        """POST a Bot Platform event as Zalo does: a bare event body, as observed from the real
        platform (`wrapped`: the `{ok, result}` form of getUpdates; `secret`: override to forge)."""
        body = {"ok": True, "result": update} if wrapped else update
        headers = {"X-Bot-Api-Secret-Token": self.webhook_secret if secret is None else secret}
        return await self.post_raw(
            url or self.webhook_url, json.dumps(body, ensure_ascii=False).encode(), headers
        )

    async def deliver_oa_event(
        self,
        url: str | None,
        event: dict[str, Any],
        *,
        key: str | None = None,
        signature: str | None = None,
    ) -> tuple[int, Any]:
        """POST an OA event signed as Zalo does: mac = sha256(app_id + body + timestamp + key)."""
        raw = json.dumps(event, ensure_ascii=False)
        mac = signature or citizen.oa_signature(
            str(event.get("app_id", "")),
            raw,
            str(event.get("timestamp", "")),
            key or self.config.oa_secret_key,
        )
        target = url or self.config.oa_webhook_url
        if not target:
            raise ValueError("no OA webhook URL: pass one or set SimConfig.oa_webhook_url")
        return await self.post_raw(target, raw.encode(), {"X-ZEvent-Signature": f"mac={mac}"})

    async def post_raw(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        """POST arbitrary bytes (malformed, oversized...) and return (status, parsed JSON or text)."""
        async with self.session.post(
            url, data=body, headers={"Content-Type": "application/json", **headers}
        ) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text

    # --- shared checks ----------------------------------------------------------------------------

    def _injected_failure(self, api: str) -> web.Response | None:
        """The next configured send failure, answered the way `api` (bot, oa) answers it."""
        if not self.config.send_failures:
            return None
        status = self.config.send_failures.popleft()
        self.send_refusals.append(status)
        if status == 429:
            if api == "bot":
                return self._bot_error(429, "Too Many Requests")
            return web.json_response({"error": -32, "message": _OA_ERRORS[-32]}, headers={"Retry-After": "1"})
        return web.json_response({"error": -1, "message": "Internal Server Error"}, status=status)

    async def _stall(self) -> None:
        if self.config.send_stall > 0:
            await asyncio.sleep(self.config.send_stall)

    def _over_rate(self, key: str, limit: int | None) -> bool:
        if limit is None:
            return False
        now = time.monotonic()
        calls = self._calls.setdefault(key, deque())
        while calls and calls[0] <= now - self.config.rate_window:
            calls.popleft()
        if len(calls) >= limit:
            return True
        calls.append(now)
        return False

    def _access_ok(self, token: str | None) -> bool:
        return token is not None and self._access_tokens.get(token, 0.0) > time.time()

    def _access_error(self, token: str | None) -> int | None:
        """None when the token is good; else the OA code: -220 expired (one we issued), -216 unknown."""
        if self._access_ok(token):
            return None
        return -220 if token is not None and token in self._access_tokens else -216

    async def _record(self, api: str, request: web.Request) -> Any:
        raw = await request.read()
        if request.content_type == "application/x-www-form-urlencoded":
            body: Any = dict(await request.post())
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        else:
            body = dict(request.query)
        self.requests.append(RecordedRequest(api, request.method, request.path, dict(request.headers), body))
        return body

    # --- Bot Platform -----------------------------------------------------------------------------

    @staticmethod
    def _bot_ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _bot_error(status: int, description: str) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": status, "description": description}, status=status
        )

    async def _bot_api(self, request: web.Request) -> web.Response:
        body = await self._record("bot", request)
        if request.match_info["token"] != self.config.bot_token:
            return self._bot_error(401, "Unauthorized")
        if self._over_rate("bot", self.config.bot_rate_limit):
            return self._bot_error(429, "Too Many Requests")
        params = body if isinstance(body, dict) else {}
        method = request.match_info["method"]
        handler = {
            "getMe": self._bot_get_me,
            "getUpdates": self._bot_get_updates,
            "setWebhook": self._bot_set_webhook,
            "deleteWebhook": self._bot_delete_webhook,
            "getWebhookInfo": self._bot_webhook_info,
            "sendMessage": self._bot_send_message,
            "sendChatAction": self._bot_send_chat_action,
        }.get(method)
        if handler is None:
            return self._bot_error(404, f"Method {method} not found")
        return await handler(params)

    async def _bot_get_me(self, _params: dict[str, Any]) -> web.Response:
        return self._bot_ok(
            {
                "id": self.config.bot_id,
                "account_name": "bot.sipas",
                "account_type": "BASIC",
                "can_join_groups": False,
            }
        )

    async def _bot_get_updates(self, params: dict[str, Any]) -> web.Response:
        try:
            wait = float(params.get("timeout", 30))
        except (TypeError, ValueError):
            return self._bot_error(400, "timeout must be a number")
        if self.config.long_poll_cap is not None:
            wait = min(wait, self.config.long_poll_cap)
        try:
            update = self._updates.get_nowait()
        except asyncio.QueueEmpty:
            if wait <= 0:
                return self._bot_error(408, "Request timeout")
            try:
                update = await asyncio.wait_for(self._updates.get(), timeout=wait)
            except TimeoutError:
                return self._bot_error(408, "Request timeout")
        return self._bot_ok(update)

    async def _bot_set_webhook(self, params: dict[str, Any]) -> web.Response:
        url, secret = params.get("url"), params.get("secret_token")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return self._bot_error(400, "url is invalid")
        if not isinstance(secret, str) or not 8 <= len(secret) <= 256:
            return self._bot_error(400, "secret_token must have 8 to 256 characters")
        self.webhook_url, self.webhook_secret, self.webhook_updated_at = url, secret, now_ms()
        return self._bot_ok({"url": url, "updated_at": self.webhook_updated_at})

    async def _bot_delete_webhook(self, _params: dict[str, Any]) -> web.Response:
        self.webhook_url, self.webhook_secret, self.webhook_updated_at = "", "", now_ms()
        return self._bot_ok({"url": "", "updated_at": self.webhook_updated_at})

    async def _bot_webhook_info(self, _params: dict[str, Any]) -> web.Response:
        if not self.webhook_url:  # observed: Zalo answers 404 rather than an empty url
            return self._bot_error(404, "Webhook not found")
        return self._bot_ok({"url": self.webhook_url, "updated_at": self.webhook_updated_at})

    async def _bot_send_message(self, params: dict[str, Any]) -> web.Response:
        chat_id, text = params.get("chat_id"), params.get("text")
        if not chat_id:
            return self._bot_error(400, "chat_id is required")
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
            return self._bot_error(400, "text must have 1 to 2000 characters")
        if str(chat_id) in self.config.blocked_chats:
            return self._bot_error(403, "Forbidden: the bot cannot send to this chat")
        refused = self._injected_failure("bot")
        if refused is not None:
            return refused
        message = {"message_id": secrets.token_hex(10), "date": now_ms()}
        self.bot_sent.append({"chat_id": str(chat_id), "text": text, **message})
        await self._stall()
        return self._bot_ok(message)

    async def _bot_send_chat_action(self, params: dict[str, Any]) -> web.Response:
        if not params.get("chat_id"):
            return self._bot_error(400, "chat_id is required")
        self.bot_actions.append({"chat_id": str(params["chat_id"]), "action": params.get("action")})
        return self._bot_ok(True)

    # --- Official Account ---------------------------------------------------------------------------

    @staticmethod
    def _oa_error(code: int) -> web.Response:
        """OA and ZNS refuse with HTTP 200 and a non-zero `error`."""
        return web.json_response({"error": code, "message": _OA_ERRORS.get(code, "Error")})

    async def _oa_cs(self, request: web.Request) -> web.Response:
        body = await self._record("oa", request)
        refused = self._access_error(request.headers.get("access_token"))
        if refused is not None:
            return self._oa_error(refused)
        if self._over_rate("oa", self.config.oa_rate_limit):
            return self._oa_error(-32)
        recipient = body.get("recipient") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else None
        user_id = recipient.get("user_id") if isinstance(recipient, dict) else None
        text = message.get("text") if isinstance(message, dict) else None
        if not user_id or not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
            return self._oa_error(-201)
        if str(user_id) in self.config.oa_user_errors:
            return self._oa_error(self.config.oa_user_errors[str(user_id)])
        failure = self._injected_failure("oa")
        if failure is not None:
            return failure
        message_id = secrets.token_hex(10)
        self.oa_sent.append({"user_id": str(user_id), "text": text, "message_id": message_id})
        await self._stall()
        return web.json_response(
            {"error": 0, "message": "Success", "data": {"message_id": message_id, "user_id": str(user_id)}}
        )

    async def _oauth(self, request: web.Request) -> web.Response:
        form = await self._record("oauth", request)
        form = form if isinstance(form, dict) else {}

        def refused(code: int, reason: str) -> web.Response:
            return web.json_response(
                {
                    "error": code,
                    "error_name": "Invalid parameter",
                    "error_reason": reason,
                    "error_description": reason,
                }
            )

        if request.headers.get("secret_key") != self.config.app_secret:
            return refused(-14002, "secret_key is invalid")
        if form.get("app_id") != self.config.app_id:
            return refused(-14001, "app_id is invalid")
        if form.get("grant_type") != "refresh_token":
            return refused(-14003, "grant_type must be refresh_token")
        refresh = form.get("refresh_token", "")
        if refresh not in self._refresh_tokens:
            return refused(-14014, "refresh_token is invalid or already used")
        self._refresh_tokens.discard(refresh)  # single use: replaced at every refresh
        access, new_refresh = self.issue_tokens()
        grant = {
            "access_token": access,
            "refresh_token": new_refresh,
            "expires_in": str(self.config.access_token_ttl),
        }
        self.token_grants.append({"used_refresh_token": refresh, **grant})
        return web.json_response(grant)

    # --- ZNS ----------------------------------------------------------------------------------------

    async def _zns_send(self, request: web.Request) -> web.Response:
        body = await self._record("zns", request)
        if not self._access_ok(request.headers.get("access_token")):
            return self._oa_error(-124)
        if self._over_rate("oa", self.config.oa_rate_limit):
            return self._oa_error(-32)
        if not isinstance(body, dict):
            return self._oa_error(-201)
        phone, template_id = str(body.get("phone", "")), body.get("template_id")
        tracking_id = str(body.get("tracking_id", ""))
        if not template_id or not isinstance(body.get("template_data"), dict) or len(tracking_id) > 48:
            return self._oa_error(-201)
        if phone in self.config.zns_phone_errors:
            return self._oa_error(self.config.zns_phone_errors[phone])
        if not phone.isdigit() or not phone.startswith("84") or len(phone) != 11:
            return self._oa_error(-108)
        refused = self._injected_failure("oa")
        if refused is not None:
            return refused
        msg_id, sent = secrets.token_hex(10), now_ms()
        self.zns_sent.append(
            {
                "msg_id": msg_id,
                "phone": phone,
                "template_id": str(template_id),
                "template_data": body["template_data"],
                "tracking_id": tracking_id,
                "sent_time": sent,
            }
        )
        data = {
            "msg_id": msg_id,
            "sent_time": str(sent),
            "quota": {"dailyQuota": "500", "remainingQuota": "499"},
        }
        await self._stall()
        return web.json_response({"error": 0, "message": "Success", "data": data})

    async def _zns_ratings(self, request: web.Request) -> web.Response:
        await self._record("zns", request)
        if not self._access_ok(request.headers.get("access_token")):
            return self._oa_error(-124)
        q = request.query
        try:
            start, end = int(q["from_time"]), int(q["to_time"])
            offset, limit = int(q.get("offset", "0")), int(q.get("limit", "100"))
        except (KeyError, ValueError):
            return self._oa_error(-201)
        template_id = q.get("template_id", "")
        matching = [
            {k: v for k, v in r.items() if k != "template_id"}
            for r in self.ratings
            if r["template_id"] == template_id and start <= int(r["submitDate"]) <= end
        ]
        page = matching[offset : offset + limit]
        return web.json_response(
            {"error": 0, "message": "Success", "data": {"total": len(matching), "data": page}}
        )
