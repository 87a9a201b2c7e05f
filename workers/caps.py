"""Cost caps: what one citizen (or one forged number) can make the service do and pay for.

Three fixed-window counters in Redis, keyed by look-up hashes (never a phone number):

- inbound events acted on per sender per minute (SIPAS_MAX_INBOUND_PER_SENDER_MINUTE): the rest
  are stored and marked processed, but not acted on (no help reply, no re-ask);
- messages sent per survey per hour (SIPAS_MAX_SENDS_PER_SURVEY_HOUR) and per recipient per hour
  (SIPAS_MAX_SENDS_PER_PHONE_HOUR): a message over either cap is not sent (its row fails with
  "cost cap"), so 1,000 "?" in a minute cost at most a handful of SMS.

Every time a cap bites, `sipas:metrics:cap-hits` counts it per cap; the web process exposes the
counts as the Prometheus counter `sipas_cost_cap_hits_total{cap=...}` (CapHitsCollector). A
Redis restart forgets the windows (the caps start afresh), never the stored events or messages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from config.settings import Settings

HITS_KEY = "sipas:metrics:cap-hits"
SENDER_MINUTE, SURVEY_HOUR, PHONE_HOUR = (
    "inbound_per_sender_minute",
    "sends_per_survey_hour",
    "sends_per_phone_hour",
)


# KEYS: every send's counter keys in order; ARGV: the number of sends, each send's number of keys,
# then every key's limit. Each send counts all its keys; when one is over its limit, that send's
# counts are taken back and the (1-based) position of the first key over is returned for it, else 0.
_COUNT_SENDS = """
local sends = tonumber(ARGV[1])
local limits_at = 2 + sends
local key = 1
local refused = {}
for send = 1, sends do
  local n = tonumber(ARGV[1 + send])
  local over = 0
  for k = 0, n - 1 do
    local count = redis.call('INCR', KEYS[key + k])
    redis.call('EXPIRE', KEYS[key + k], 7200)
    if over == 0 and count > tonumber(ARGV[limits_at + key - 1 + k]) then over = k + 1 end
  end
  if over > 0 then
    for k = 0, n - 1 do redis.call('DECR', KEYS[key + k]) end
  end
  refused[send] = over
  key = key + n
end
return refused
"""


class Caps:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings

    def inbound_over(self, sender_hashes: Sequence[str | None], now: datetime) -> list[bool]:
        """Count one event of each sender in this minute (a batch's events in one round trip);
        for each, whether its sender is now over the cap (an event without a sender never is)."""
        minute = int(now.timestamp()) // 60
        senders = [sender for sender in sender_hashes if sender]
        counts: list[int] = []
        if senders:
            with self._redis.pipeline(transaction=False) as pipe:
                for sender in senders:
                    key = f"sipas:cap:in:{sender}:{minute}"
                    pipe.incr(key)
                    pipe.expire(key, 120)
                counts = [int(count) for count in pipe.execute()[::2]]
        by_position = iter(counts)
        limit = self._settings.SIPAS_MAX_INBOUND_PER_SENDER_MINUTE
        over = [bool(sender) and next(by_position) > limit for sender in sender_hashes]
        for _ in range(sum(over)):
            self._hit(SENDER_MINUTE)
        return over

    def send_refusals(self, sends: Sequence[tuple[int | None, str]], now: datetime) -> list[str | None]:
        """Count each send (survey id, recipient hash) in this hour, in order, or say which cap
        forbids it (then nothing is counted for it): a batch's sends in one round trip (a Lua
        script, so each is decided after the ones before it exactly as one by one)."""
        limits = [self._send_limits(survey_id, recipient_hash, now) for survey_id, recipient_hash in sends]
        if not sends:
            return []
        keys = [key for send in limits for key, _name, _limit in send]
        args = [len(send) for send in limits] + [limit for send in limits for _key, _name, limit in send]
        count_sends = self._redis.register_script(_COUNT_SENDS)  # EVALSHA: the script is sent once
        refused = count_sends(keys=keys, args=[len(limits), *args])
        answers: list[str | None] = []
        for send, refused_at in zip(limits, refused, strict=True):
            if not refused_at:
                answers.append(None)
                continue
            _key, name, limit = send[int(refused_at) - 1]
            self._hit(name)
            answers.append(f"cost cap: more than {limit} {name.replace('_', ' ')}")
        return answers

    def give_back(self, sends: Sequence[tuple[int | None, str]], now: datetime) -> None:
        """Uncount sends (survey id, recipient hash) counted by `send_refusal` at `now` that did
        not go out after all: all of them in one round trip."""
        with self._redis.pipeline(transaction=False) as pipe:
            for survey_id, recipient_hash in sends:
                for key, _name, _limit in self._send_limits(survey_id, recipient_hash, now):
                    pipe.decr(key)
            pipe.execute()

    def _send_limits(
        self, survey_id: int | None, recipient_hash: str, now: datetime
    ) -> list[tuple[str, str, int]]:
        hour = int(now.timestamp()) // 3600
        limits = [
            (
                f"sipas:cap:to:{recipient_hash}:{hour}",
                PHONE_HOUR,
                self._settings.SIPAS_MAX_SENDS_PER_PHONE_HOUR,
            )
        ]
        if survey_id is not None:
            limits.append(
                (
                    f"sipas:cap:survey:{survey_id}:{hour}",
                    SURVEY_HOUR,
                    self._settings.SIPAS_MAX_SENDS_PER_SURVEY_HOUR,
                )
            )
        return limits

    def _hit(self, name: str) -> None:
        self._redis.hincrby(HITS_KEY, name, 1)


class CapHitsCollector(Collector):
    """`sipas_cost_cap_hits_total{cap}` from the counts every worker keeps in Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "sipas_cost_cap_hits", "Times a cost cap stopped an inbound event or a send", labels=["cap"]
        )
        try:
            hits = self._redis.hgetall(HITS_KEY)
        except RedisError:  # a scrape must not fail because Redis is away
            hits = {}
        for name in (SENDER_MINUTE, SURVEY_HOUR, PHONE_HOUR):
            raw = hits.get(name.encode(), 0)
            family.add_metric([name], float(raw))
        yield family
