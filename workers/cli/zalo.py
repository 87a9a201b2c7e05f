"""`sipas zalo set-webhook URL | delete-webhook | webhook-info | poll | store-oa-token | oa-token-info |
reconcile-ratings`.

`poll` is for development without a public URL: it long-polls getUpdates and stores each event
exactly as the webhook does (named by bot.channels.zalo_bot, stored once through
bot.channels.intake), then wakes the workers. Zalo delivers to
either a webhook or getUpdates, so delete the webhook before polling.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import httpx
import structlog

from bot.channels import zalo_bot
from bot.channels.intake import store_and_wake_blocking
from bot.channels.zalo.bot_api import ZaloBotClient
from bot.channels.zalo.events import NotAnEventError
from bot.channels.zalo.exceptions import ZaloError, ZaloRateLimited, ZaloServerError
from bot.channels.zalo.token_store import DatabaseTokenStore
from bot.channels.zalo.tokens import OATokenManager, OATokens
from config.logging import configure_logging
from config.settings import Settings, get_settings

log = structlog.get_logger(__name__)

RETRY_PAUSE_SECONDS = 5.0


def _bot(settings: Settings) -> ZaloBotClient:
    settings.require("ZALO_BOT_TOKEN")
    return ZaloBotClient(settings.ZALO_BOT_TOKEN, settings.ZALO_BOT_API_BASE)


def _echo(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False))


@click.group()
def zalo() -> None:
    """Zalo Bot Platform: webhook registration and development polling."""


@zalo.command("set-webhook")
@click.argument("url")
def set_webhook(url: str) -> None:
    """Make Zalo post bot events to URL (e.g. https://host/webhooks/zalo/bot), signed with
    ZALO_BOT_SECRET_TOKEN."""
    settings = get_settings()
    settings.require("ZALO_BOT_TOKEN", "ZALO_BOT_SECRET_TOKEN")

    async def run() -> None:
        async with _bot(settings) as bot:
            info = await bot.set_webhook(url, settings.ZALO_BOT_SECRET_TOKEN)
        _echo({"url": info.url or url, "updated_at": info.updated_at})

    _run(run())


@zalo.command("delete-webhook")
def delete_webhook() -> None:
    """Stop webhook delivery (needed before `sipas zalo poll`)."""
    settings = get_settings()

    async def run() -> None:
        async with _bot(settings) as bot:
            info = await bot.delete_webhook()
        _echo({"url": info.url, "updated_at": info.updated_at})

    _run(run())


@zalo.command("webhook-info")
def webhook_info() -> None:
    """Print the URL Zalo currently posts bot events to ("" when none)."""
    settings = get_settings()

    async def run() -> None:
        async with _bot(settings) as bot:
            info = await bot.get_webhook_info()
        _echo({"url": info.url, "updated_at": info.updated_at})

    _run(run())


@zalo.command("poll")
@click.option("--timeout", type=click.IntRange(1, 60), default=30, show_default=True, help="Long-poll wait.")
@click.option("--once", is_flag=True, help="One getUpdates call, then exit (scripts, tests).")
def poll(timeout: int, once: bool) -> None:
    """Development: long-poll getUpdates and store events like the webhook does."""
    from storage.crypto import PhoneVault
    from storage.db import session_factory
    from storage.redis import redis_for
    from workers.queues import RQDispatcher

    settings = get_settings()
    settings.require("SIPAS_SECRET_KEY", "ZALO_BOT_TOKEN")
    configure_logging(settings.LOG_LEVEL)
    sessions = session_factory(settings.DATABASE_URL)
    vault = PhoneVault.from_settings(settings)
    dispatcher = RQDispatcher(redis_for(settings.REDIS_URL))

    async def run() -> None:
        async with _bot(settings) as bot:
            while True:
                try:
                    updates = await bot.get_raw_updates(timeout)
                except (ZaloRateLimited, ZaloServerError) as exc:
                    if once:
                        raise
                    pause = getattr(exc, "retry_after", None) or RETRY_PAUSE_SECONDS
                    log.warning("zalo_poll_retry", error=str(exc), pause=pause)
                    await asyncio.sleep(pause)
                    continue
                for update in updates:
                    raw = json.dumps(update, ensure_ascii=False)
                    try:
                        record = zalo_bot.describe_bot_event(update)
                    except NotAnEventError as exc:
                        log.warning("zalo_poll_not_an_event", error=str(exc))
                        continue
                    stored = await asyncio.to_thread(
                        store_and_wake_blocking, sessions, vault, dispatcher, provider=record.provider,
                        kind=record.kind, provider_id=record.provider_id, payload=raw, sender=record.sender,
                    )  # fmt: skip
                    _echo({"event_id": stored.event_id, "kind": record.kind, "duplicate": stored.duplicate})
                if once:
                    return

    _run(run())


def _token_store(settings: Settings) -> DatabaseTokenStore:
    from storage.crypto import PhoneVault
    from storage.db import session_factory
    from storage.redis import redis_for

    settings.require("SIPAS_SECRET_KEY", "ZALO_OA_APP_ID")
    return DatabaseTokenStore(
        session_factory(settings.DATABASE_URL),
        PhoneVault.from_settings(settings),
        redis_for(settings.REDIS_URL),
        settings.ZALO_OA_APP_ID,
    )


@zalo.command("store-oa-token")
@click.option("--refresh-token", prompt=True, hide_input=True, help="From authorising the OA (OAuth v4).")
@click.option("--access-token", default=None, help="Its access token, if you have it.")
@click.option("--expires-in", type=int, default=0, show_default=True, help="Seconds the access token lives.")
def store_oa_token(refresh_token: str, access_token: str | None, expires_in: int) -> None:
    """Store the OA's token pair after authorising it. Without --access-token the refresh token is
    exchanged at once, which also proves it works (it is single-use: use it nowhere else)."""
    settings = get_settings()
    settings.require("ZALO_APP_SECRET")
    store = _token_store(settings)

    async def run() -> None:
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in if access_token else 0)
        await store.save(OATokens(access_token or "", refresh_token, expires_at))
        if not access_token:
            async with httpx.AsyncClient(timeout=10) as http:
                manager = OATokenManager(
                    store,
                    http=http,
                    oauth_base=settings.ZALO_OAUTH_BASE,
                    app_id=settings.ZALO_OA_APP_ID,
                    app_secret=settings.ZALO_APP_SECRET,
                )
                await manager.refresh("")
        await _print_token_info(store)

    _run(run())


@zalo.command("oa-token-info")
def oa_token_info() -> None:
    """When the stored OA access token expires (the tokens themselves are never printed)."""
    store = _token_store(get_settings())
    _run(_print_token_info(store))


async def _print_token_info(store: DatabaseTokenStore) -> None:
    tokens = await store.load()
    if tokens is None:
        raise click.ClickException("no OA token stored: run `sipas zalo store-oa-token`")
    _echo({"expires_at": tokens.expires_at.isoformat(), "expired": tokens.expired()})


@zalo.command("reconcile-ratings")
@click.option("--date", "day", default=None, help="Local day YYYY-MM-DD (default: yesterday).")
def reconcile_ratings_command(day: str | None) -> None:
    """Store the ZNS ratings of a day that the user_feedback webhook did not bring (the nightly
    job does this for yesterday); ratings already stored are not stored again."""
    from workers.zalo_reconcile import reconcile_ratings

    settings = get_settings()
    settings.require("SIPAS_SECRET_KEY", "ZALO_OA_APP_ID", "ZALO_APP_SECRET", "ZNS_RATING_TEMPLATE_ID")
    configure_logging(settings.LOG_LEVEL)
    try:
        _echo(reconcile_ratings(day))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except ZaloError as exc:
        raise click.ClickException(f"Zalo refused: {exc}") from None


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run a command's coroutine; a Zalo refusal becomes one clear line and exit status 1."""
    try:
        asyncio.run(coro)
    except ZaloError as exc:
        raise click.ClickException(f"Zalo refused: {exc}") from None
    except KeyboardInterrupt:
        pass


COMMANDS = [zalo]
