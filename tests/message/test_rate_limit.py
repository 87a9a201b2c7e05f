"""The send rate per provider is a ceiling shared by every worker (workers.sending.RateLimiter),
also now that a batch takes the second's allowance in blocks: counted against the same Redis
counter, two workers' batches never send more than the rate in any second between them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from redis import Redis

from storage.models import Route
from workers.sending import RateLimiter


def test_two_batches_never_exceed_the_rate_in_any_second(redis: Redis) -> None:
    rate = 4
    seconds: list[int] = []

    async def batch(size: int) -> None:
        limiter = RateLimiter(redis, sms_rate=rate, zalo_rate=1, wanted={"sms": size})

        async def one() -> None:
            await limiter.wait(Route.SMS)
            seconds.append(int(time.time()))

        await asyncio.gather(*(one() for _ in range(size)))

    async def both() -> None:
        await asyncio.gather(batch(6), batch(5))

    asyncio.run(both())
    per_second = Counter(seconds)
    assert sum(per_second.values()) == 11  # every send went, none lost
    assert max(per_second.values()) <= rate
    # The allowance is taken in blocks, one Redis key a second, and never beyond the rate.
    assert all(int(redis.get(key) or 0) >= per_second[int(key.decode().rsplit(":", 1)[1])]
               for key in redis.scan_iter("sipas:rate:sms:*"))  # fmt: skip
