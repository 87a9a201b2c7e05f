"""The send drain: claim a batch of due outbox rows, send them concurrently, settle each row.

The database, not Redis, decides what still has to be sent. One coalesced RQ job
(workers.queues.wake) claims up to SIPAS_BATCH_SIZE due rows at once (`FOR UPDATE SKIP LOCKED`:
two workers take different rows), sends them concurrently through each provider's sender, whose pooled
HTTP client outlives the batch (workers.gateways.Senders), no faster than the provider's rate (SIPAS_SMS_RATE,
SIPAS_ZALO_RATE, shared by every worker through Redis), and settles every row under its claim
token. Just before the batch's first request the rows about to leave are marked in flight (one
committed UPDATE). A worker that dies mid-batch leaves claims that the sweep, after the lease,
sets aside as `unknown` when they were in flight and queues again when they were not;
storage.outbox says why the former are never resent by themselves.

Before a row is sent the cost caps are checked (workers.caps): over a cap it fails, unsent.

A Zalo message that can never arrive (the citizen is unreachable on Zalo, outside the OA window,
or the retries ran out) moves its survey to SMS in the same transaction that settles the row
(flows.zalo_survey.fall_back_to_sms), and the SMS that re-ask the pending question are queued.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from redis import Redis
from sqlalchemy.orm import Session

from bot.channels.outgoing import Outgoing, SendError, Sent
from flows.zalo_survey import fall_back_to_sms
from storage import outbox
from storage.models import Channel, OutboundMessage, Route
from workers.caps import Caps
from workers.draining import DRAIN_BUDGET_SECONDS, drain_batches
from workers.gateways import route_of, run_async, shared_senders
from workers.queues import wake, woken
from workers.runtime import Runtime, get_runtime
from workers.zalo_window import oa_window_refusal

log = structlog.get_logger(__name__)

IN_FLIGHT = 50  # sends awaiting their answer at once, per worker process


def drain_sends() -> dict[str, int]:
    """RQ job (coalesced, workers.queues.wake): send every due message, a batch at a time."""
    runtime = get_runtime()
    woken(runtime.redis, "sends")
    return drain(runtime)


def enqueue_sends(runtime: Runtime, message_ids: Iterable[int]) -> None:
    """Messages were stored: make sure the send drain runs (one pending job, however many)."""
    if list(message_ids):
        wake(runtime.redis, "sends")


def drain(runtime: Runtime, budget: float = DRAIN_BUDGET_SECONDS) -> dict[str, int]:
    """Send due messages in batches for about `budget` seconds (workers.draining)."""

    def batch() -> dict[str, int] | None:
        outcomes = send_batch(runtime, runtime.settings.SIPAS_BATCH_SIZE)
        return Counter(outcomes) if outcomes else None

    return drain_batches(runtime.redis, "sends", batch, budget=budget)


def deliver(runtime: Runtime, message_id: int, now: datetime | None = None) -> str:
    """Send one message if it is due, unclaimed and has attempts left (tests, operators)."""
    outcomes = send_batch(runtime, 1, now=now, ids=[message_id])
    return outcomes[0] if outcomes else "skipped"


@dataclass(frozen=True)
class _Ready:
    token: str
    outgoing: Outgoing
    refusal: SendError | None  # decided before sending: OA window, cost cap
    attempts: int  # this claim's attempt number


@dataclass(frozen=True)
class _Held:
    """Not tried: an earlier message to the same recipient in this batch was not sent, and this
    one must not overtake it (an opening refused by a 429 must not reach the phone after its
    first question). Back to the queue, due with that earlier message's retry."""

    behind: _Ready
    failure: SendError


def send_batch(
    runtime: Runtime, limit: int, now: datetime | None = None, ids: Sequence[int] | None = None
) -> list[str]:
    """Claim up to `limit` due rows, send them concurrently, settle them; one outcome per row."""
    now = now or datetime.now(UTC)
    with runtime.sessions() as session, session.begin():
        claims = outbox.claim_due(session, now, limit, ids=ids)
        # Across batches too, a survey's message never overtakes an older one waiting to be retried.
        waiting = outbox.waiting_behind(session, claims, now)
        if waiting:
            reason = "held behind an older message of its survey, not sent yet"
            outbox.release(
                session, claims[0].token, [outbox.Release(i, due, reason) for i, due in waiting.items()]
            )
        claims = [claim for claim in claims if claim.id not in waiting]
        ready = [_prepare(runtime, session, claim, now) for claim in claims]
    if not ready:
        return []
    asked = [item for item in ready if item.refusal is None]
    refusals = Caps(runtime.redis, runtime.settings).send_refusals(
        [(item.outgoing.survey_id, runtime.vault.lookup_hash(item.outgoing.to)) for item in asked], now
    )
    capped = {
        item.outgoing.message_id: SendError(refusal, retryable=False)
        for item, refusal in zip(asked, refusals, strict=True)
        if refusal
    }
    checked = [
        _Ready(item.token, item.outgoing, capped[item.outgoing.message_id], item.attempts)
        if item.outgoing.message_id in capped
        else item
        for item in ready
    ]
    going = [item for item in checked if item.refusal is None]
    if going:
        # Committed before any request leaves: a worker killed from here on leaves these rows
        # `unknown`; killed before, its claims are queued again (storage.outbox.expire_claims).
        with runtime.sessions() as session, session.begin():
            outbox.mark_requested(session, going[0].token, [item.outgoing.message_id for item in going], now)
    results = run_async(_send_all(runtime, checked))
    sent = [(item, result) for item, result in zip(checked, results, strict=True) if isinstance(result, Sent)]
    outcomes = ["sent"] * len(sent)
    settled_at = datetime.now(UTC)
    if sent:
        with runtime.sessions() as session, session.begin():
            outbox.mark_sent(
                session,
                sent[0][0].token,
                [
                    outbox.SentRow(
                        item.outgoing.message_id, result.provider_id, result.segments, result.coding
                    )
                    for item, result in sent
                ],
                settled_at,
            )
    # Held rows go back to the queue first, so that a fallback to SMS below cancels them too.
    held = [
        (item, answer) for item, answer in zip(checked, results, strict=True) if isinstance(answer, _Held)
    ]
    if held:
        _release(runtime, held, settled_at, counted_at=now)
        outcomes += ["held"] * len(held)
    for item, answer in zip(checked, results, strict=True):
        if isinstance(answer, SendError):
            outcomes.append(
                _settle_failure(runtime, item.outgoing.message_id, item.token, answer, settled_at)
            )
    if len(ready) > 1:
        log.info("send batch", messages=len(ready), sent=len(sent))
    return outcomes


def _prepare(runtime: Runtime, session: Session, claim: outbox.Claim, now: datetime) -> _Ready:
    outgoing = Outgoing(
        message_id=claim.id,
        survey_id=claim.survey_id,
        route=route_of(claim.channel, claim.route),
        to=runtime.vault.decrypt(claim.recipient_enc),
        text=claim.text,
        payload=claim.payload,
    )
    refusal = None
    if outgoing.route is Route.ZALO_OA:
        row = session.get(OutboundMessage, claim.id)
        assert row is not None
        reason = oa_window_refusal(session, runtime, row, outgoing.to, now)
        refusal = SendError(reason, retryable=False, unreachable=True) if reason else None
    return _Ready(claim.token, outgoing, refusal, claim.attempts)


async def _send_all(runtime: Runtime, items: Sequence[_Ready]) -> list[Sent | SendError | _Held]:
    """Send concurrently (at most IN_FLIGHT at once), each provider no faster than its rate; one
    recipient's messages one after the other, oldest first, and none after one that was not
    sent, so the opening never reaches a phone after the question that follows it."""
    wanted = Counter(RateLimiter.provider(item.outgoing.route) for item in items if item.refusal is None)
    limiter = RateLimiter(
        runtime.redis, runtime.settings.SIPAS_SMS_RATE, runtime.settings.SIPAS_ZALO_RATE, wanted
    )
    in_flight = asyncio.Semaphore(IN_FLIGHT)

    senders = await shared_senders(runtime)

    async def one(item: _Ready) -> Sent | SendError:
        if item.refusal is not None:
            return item.refusal
        async with in_flight:
            await limiter.wait(item.outgoing.route)
            try:
                return await senders.send(item.outgoing)
            except SendError as exc:
                return exc
            except Exception as exc:  # the request may have gone out: its outcome is unknown
                return SendError(f"{type(exc).__name__}: {exc}", retryable=False, ambiguous=True)

    async def in_order(group: list[tuple[int, _Ready]]) -> list[tuple[int, Sent | SendError | _Held]]:
        done: list[tuple[int, Sent | SendError | _Held]] = []
        unsent: tuple[_Ready, SendError] | None = None
        for index, item in group:
            if item.refusal is not None:  # decided before sending (cost cap, OA window): never held
                done.append((index, item.refusal))
                continue
            if unsent is not None:
                done.append((index, _Held(*unsent)))
                continue
            result = await one(item)
            if isinstance(result, SendError):
                unsent = (item, result)
            done.append((index, result))
        return done

    by_recipient: dict[str, list[tuple[int, _Ready]]] = {}
    for index, item in sorted(enumerate(items), key=lambda pair: pair[1].outgoing.message_id):
        by_recipient.setdefault(item.outgoing.to, []).append((index, item))
    results: dict[int, Sent | SendError | _Held] = {}
    for group in await asyncio.gather(*(in_order(group) for group in by_recipient.values())):
        results.update(group)
    return [results[index] for index in range(len(items))]


class RateLimiter:
    """Messages per second per provider (SMS / Zalo), across every worker: a counter per second
    in Redis; a send over the second's allowance waits for the next second. The allowance is
    taken in blocks: one round trip takes as much of the second as the batch still has messages
    for that provider (`wanted`), so a batch pays a round trip a second, not one per message. A
    block left unused when the second ends (a send failed, a recipient's later rows were held)
    is lost to every worker for that second: the rate is a ceiling, never exceeded."""

    def __init__(self, redis: Redis, sms_rate: float, zalo_rate: float, wanted: Mapping[str, int]) -> None:
        self._redis = redis
        self._rates = {"sms": sms_rate, "zalo": zalo_rate}
        self._wanted = dict(wanted)
        self._block: dict[str, tuple[int, int]] = {}  # provider -> (second, sends left in it)

    @staticmethod
    def provider(route: Route) -> str:
        return "sms" if route is Route.SMS else "zalo"

    async def wait(self, route: Route) -> None:
        provider = self.provider(route)
        rate = self._rates[provider]
        while True:
            second = int(time.time())
            block_second, left = self._block.get(provider, (0, 0))
            if block_second != second or not left:
                want = max(1, self._wanted.get(provider, 1))
                key = f"sipas:rate:{provider}:{second}"
                with self._redis.pipeline(transaction=False) as pipe:
                    pipe.incrby(key, want)
                    pipe.expire(key, 5)
                    taken = int(pipe.execute()[0])
                left = int(max(0, min(want, rate - (taken - want))))
            if left:
                self._block[provider] = (second, left - 1)
                self._wanted[provider] = self._wanted.get(provider, 1) - 1
                return
            self._block[provider] = (second, 0)
            await asyncio.sleep(max(0.0, second + 1 - time.time()) + 0.001)


def _release(
    runtime: Runtime, held: Sequence[tuple[_Ready, _Held]], now: datetime, *, counted_at: datetime
) -> None:
    """Put held rows back in the queue (one statement), their attempts and their cost-cap counts
    (made at `counted_at`, one Redis round trip) given back, each due when the message it waits
    for is retried (the same instant: the older row is claimed first), or at once when that one
    will not be retried."""
    releases = []
    for item, answer in held:
        behind, failure = answer.behind, answer.failure
        not_before = now
        if (
            failure.retryable
            and not (failure.ambiguous or failure.unreachable)
            and behind.attempts < outbox.MAX_ATTEMPTS
        ):
            not_before = outbox.retry_time(behind.attempts, now, failure.retry_after)
        reason = f"held behind message {behind.outgoing.message_id}, not sent: {failure}"
        releases.append(outbox.Release(item.outgoing.message_id, not_before, reason))
    with runtime.sessions() as session, session.begin():
        outbox.release(session, held[0][0].token, releases)
    Caps(runtime.redis, runtime.settings).give_back(
        [(item.outgoing.survey_id, runtime.vault.lookup_hash(item.outgoing.to)) for item, _answer in held],
        counted_at,
    )


def _settle_failure(runtime: Runtime, message_id: int, token: str, exc: SendError, now: datetime) -> str:
    """Record the failed attempt; the row is retried later (the sweep wakes the drain when it is
    due), set aside as unknown (the gateway may have it) or given up, and a given-up Zalo survey
    message moves its survey to SMS (once: the survey is no longer on Zalo after)."""
    fallback_ids: list[int] = []
    with runtime.sessions() as session, session.begin():
        failure = outbox.mark_attempt_failed(
            session,
            message_id,
            token,
            error=str(exc),
            retryable=exc.retryable and not exc.unreachable,
            ambiguous=exc.ambiguous,
            retry_after=exc.retry_after,
            now=now,
        )
        row = session.get(OutboundMessage, message_id)
        assert row is not None
        if failure.outcome == "failed" and row.channel is Channel.ZALO and row.survey_id is not None:
            reason = f"zalo {'unreachable' if exc.unreachable else 'failed'}: {exc}"
            fallback_ids = fall_back_to_sms(session, runtime.settings, row.survey_id, reason, now)
    if failure.outcome == "retry":
        log.info("message will be retried", message_id=message_id, attempts=failure.attempts, error=str(exc))
        return "retry"
    log.warning(
        "message not sent",
        message_id=message_id,
        outcome=failure.outcome,
        attempts=failure.attempts,
        error=str(exc),
        unreachable=exc.unreachable,
        fallback_messages=len(fallback_ids),
    )
    enqueue_sends(runtime, fallback_ids)
    return "fallback" if fallback_ids else failure.outcome
