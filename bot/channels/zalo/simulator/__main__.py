"""`python -m bot.channels.zalo.simulator --port N`: run the simulated Zalo as its own process.

Point the service at it with ZALO_BOT_API_BASE / ZALO_OA_API_BASE / ZALO_OAUTH_BASE / ZNS_API_BASE
= http://127.0.0.1:N, and ZALO_BOT_TOKEN, ZALO_OA_APP_ID, ZALO_APP_SECRET, ZALO_OA_SECRET_KEY as
printed at start. Drive the citizen with the `/_sim/...` routes (see citizen.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from bot.channels.zalo.simulator.app import SimConfig, ZaloSimulator


async def _serve(args: argparse.Namespace) -> None:
    config = SimConfig(access_token_ttl=args.token_ttl, oa_webhook_url=args.oa_webhook_url)
    if args.bot_token:
        config.bot_token = args.bot_token
    async with ZaloSimulator(config, host=args.host, port=args.port) as sim:
        access, refresh = sim.issue_tokens()
        print(
            json.dumps(
                {
                    "base_url": sim.base_url,
                    "ZALO_BOT_TOKEN": config.bot_token,
                    "ZALO_OA_APP_ID": config.app_id,
                    "ZALO_APP_SECRET": config.app_secret,
                    "ZALO_OA_SECRET_KEY": config.oa_secret_key,
                    "oa_access_token": access,
                    "oa_refresh_token": refresh,
                }
            ),
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.channels.zalo.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--bot-token", default="")
    parser.add_argument("--token-ttl", type=int, default=25 * 3600, help="OA access token lifetime, seconds")
    parser.add_argument("--oa-webhook-url", default=None, help="where OA/ZNS events are delivered")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
