"""A stand-in for Kannel's sendsms for `make run` on a machine without Kannel.

It accepts MT requests like Kannel (202 "0: Accepted for delivery", 403 on bad credentials), prints
each message as the citizen's phone would show it, appends it to var/phone.log, and calls the
dlr-url back with "accepted by SMSC" (8) then "delivered" (1). Dev tool only: tests use real Kannel.

    python -m tests.support.sms_sink --port 13013 --username U --password P
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from aiohttp import web

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
USERNAME = web.AppKey("username", str)
PASSWORD = web.AppKey("password", str)
LOG = web.AppKey("log", Path)
TASKS = web.AppKey("tasks", set)


async def sendsms(request: web.Request) -> web.Response:
    query = request.query
    if query.get("username") != request.app[USERNAME] or query.get("password") != request.app[PASSWORD]:
        return web.Response(status=403, text="Authorization failed for sendsms")
    to, text = query.get("to", ""), query.get("text", "")
    if not to or not text:
        return web.Response(status=400, text="Missing receiver number or text")
    stamp = datetime.now(HCM).strftime("%d/%m %H:%M:%S")
    line = f"[{stamp}] SMS to {to} (coding {query.get('coding', '0')}):\n{text}\n"
    print(line, flush=True)
    with request.app[LOG].open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    dlr_url = query.get("dlr-url")
    if dlr_url:
        task = asyncio.create_task(_report(dlr_url))
        request.app[TASKS].add(task)
        task.add_done_callback(request.app[TASKS].discard)
    return web.Response(status=202, text="0: Accepted for delivery")


async def _report(dlr_url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for code in (8, 1):
            await asyncio.sleep(0.2)
            url = dlr_url.replace("%d", str(code)).replace("%T", str(int(datetime.now(UTC).timestamp())))
            try:
                await client.get(url)
            except httpx.HTTPError as exc:
                print(f"delivery report not accepted: {exc}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=13013)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--log", type=Path, default=Path("var/phone.log"))
    args = parser.parse_args()
    app = web.Application()
    app[USERNAME], app[PASSWORD], app[LOG], app[TASKS] = args.username, args.password, args.log, set()
    args.log.parent.mkdir(parents=True, exist_ok=True)
    app.router.add_get("/cgi-bin/sendsms", sendsms)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
