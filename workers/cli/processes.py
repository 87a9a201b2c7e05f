"""The three long-running processes of the Procfile (`sipas web|worker|cron`) and `sipas purge`."""

from __future__ import annotations

import logging
import os
import time

import click

from config.logging import configure_logging, rq_log_level
from config.settings import get_settings
from workers.queues import ALL_QUEUES


@click.command()
@click.option("--host", default=None, help="Overrides HOST.")
@click.option("--port", type=int, default=None, help="Overrides PORT.")
def web(host: str | None, port: int | None) -> None:
    """Serve the intake API, channel webhooks, pages, /healthz, /readyz and /metrics."""
    from aiohttp import web as aioweb
    from prometheus_client import REGISTRY

    from bot.app import create_app
    from bot.context import AppContext
    from storage.crypto import PhoneVault
    from storage.db import session_factory
    from storage.redis import redis_for
    from workers.caps import CapHitsCollector
    from workers.queues import RQDispatcher

    settings = get_settings()
    settings.require("SIPAS_SECRET_KEY", "ONESTOP_WEBHOOK_SECRET", "KANNEL_MO_TOKEN")
    configure_logging(settings.LOG_LEVEL)
    redis = redis_for(settings.REDIS_URL)
    context = AppContext(
        settings=settings,
        sessions=session_factory(settings.DATABASE_URL),
        vault=PhoneVault(settings.SIPAS_SECRET_KEY),
        redis=redis,
        dispatcher=RQDispatcher(redis),
    )
    REGISTRY.register(CapHitsCollector(redis))  # cost caps bite in the workers (workers.caps)
    bind_host, bind_port = host or settings.HOST, port or settings.PORT
    logging.getLogger(__name__).info("web listening on http://%s:%s", bind_host, bind_port)
    aioweb.run_app(create_app(context), host=bind_host, port=bind_port, print=None, access_log=None)


@click.command()
@click.option("--burst", is_flag=True, help="Exit when the queues are empty (tests, one-off runs).")
def worker(burst: bool) -> None:
    """Run an RQ worker (with the RQ scheduler for delayed retries) on the service's queues."""
    from rq import Worker

    from storage.redis import redis_for

    settings = get_settings()
    settings.require("SIPAS_SECRET_KEY")
    configure_logging(settings.LOG_LEVEL)
    Worker(list(ALL_QUEUES), connection=redis_for(settings.REDIS_URL)).work(
        burst=burst, with_scheduler=True, logging_level=rq_log_level(settings.LOG_LEVEL)
    )


@click.command()
def cron() -> None:
    """Run RQ cron: the sweep every few seconds, nightly scores at 01:00 and the purge, local time."""
    from rq.cron import CronScheduler

    from storage.redis import redis_for

    settings = get_settings()
    settings.require("SIPAS_SECRET_KEY")
    configure_logging(settings.LOG_LEVEL)
    # rq cron reads cron strings in the process's local time zone: make that SIPAS_TIMEZONE.
    os.environ["TZ"] = settings.SIPAS_TIMEZONE
    time.tzset()
    scheduler = CronScheduler(
        connection=redis_for(settings.REDIS_URL), logging_level=rq_log_level(settings.LOG_LEVEL)
    )
    scheduler.load_config_from_file("workers.cron_config")
    scheduler.start()  # type: ignore[no-untyped-call]  # rq leaves start() unannotated


@click.command()
def purge() -> None:
    """Delete contact data of surveys closed longer than SIPAS_RETENTION_DAYS ago."""
    from workers.retention import purge_expired_contacts

    counts = purge_expired_contacts()
    click.echo(f"purged contact data of {counts['cases']} cases and {counts['events']} inbound events")


COMMANDS = [web, worker, cron, purge]
