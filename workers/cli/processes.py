"""The three long-running processes of the Procfile (`sipas web|worker|cron`) and `sipas purge`."""

from __future__ import annotations

import logging
import os
import sys
import time

import click

from config.logging import configure_logging, rq_log_level
from config.settings import get_settings
from workers.queues import ALL_QUEUES, DEFAULT_QUEUE, SCORES_QUEUE


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
        vault=PhoneVault.from_settings(settings),
        redis=redis,
        dispatcher=RQDispatcher(redis),
    )
    REGISTRY.register(CapHitsCollector(redis))  # cost caps bite in the workers (workers.caps)
    bind_host, bind_port = host or settings.HOST, port or settings.PORT
    logging.getLogger(__name__).info("web listening on http://%s:%s", bind_host, bind_port)
    aioweb.run_app(create_app(context), host=bind_host, port=bind_port, print=None, access_log=None)


@click.command()
@click.option("--burst", is_flag=True, help="Exit when the queues are empty (tests, one-off runs).")
@click.option(
    "--queues",
    default=",".join(ALL_QUEUES),
    show_default=True,
    help="Comma-separated queues, in priority order. Production runs one worker on "
    f"'{DEFAULT_QUEUE}' (replies, sends, timers) and one on '{SCORES_QUEUE}', so the nightly "
    "scores never delay a reply (docs/scaling.md).",
)
def worker(burst: bool, queues: str) -> None:
    """Run an RQ worker (non-forking) on the service's queues; it restarts itself cleanly after
    SIPAS_WORKER_MAX_JOBS jobs or SIPAS_WORKER_MAX_MEMORY_MB (workers.worker). No RQ scheduler
    process: the cron sweep moves delayed jobs to their queue (workers.queues)."""
    from bot.channels import registry
    from storage.redis import redis_for
    from workers.worker import GuardedWorker

    settings = get_settings()
    settings.require("SIPAS_SECRET_KEY")
    registry.check(settings)  # SIPAS_SMS_PROVIDER names a provider (one line if not)
    configure_logging(settings.LOG_LEVEL)
    names = [name.strip() for name in queues.split(",") if name.strip()]
    unknown = sorted(set(names) - set(ALL_QUEUES))
    if unknown:
        raise click.BadParameter(f"unknown queue(s) {', '.join(unknown)}", param_hint="--queues")
    rq_worker = GuardedWorker(
        names, connection=redis_for(settings.REDIS_URL), max_memory_mb=settings.SIPAS_WORKER_MAX_MEMORY_MB
    )
    rq_worker.work(
        burst=burst,
        with_scheduler=False,
        max_jobs=None if burst else settings.SIPAS_WORKER_MAX_JOBS,
        logging_level=rq_log_level(settings.LOG_LEVEL),
    )
    if burst or rq_worker.stopped_by_signal:
        return
    # Max jobs, memory, or RQ gave up on Redis (restarted): start afresh, same pid.
    logging.getLogger(__name__).warning("worker restarting with a fresh process image")
    time.sleep(1)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-c", "from workers.cli import main; main()", *sys.argv[1:]]
    os.execv(sys.executable, argv)  # noqa: S606 - the same program, no shell involved


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
