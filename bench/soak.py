"""A soak: the service as the Procfile runs it, held at a steady load for a long time.

    python -m bench.soak [--minutes 15] [--rate 8] [--out FILE]

`make soak` runs it. It starts what `bench.sms_load` starts (the harness's fake Kannel with
delivery reports, `sipas web`, `sipas worker`, `sipas cron`, on a fresh PostgreSQL database and a
flushed Redis database), then drives it in an open loop: new citizens arrive at a fixed rate
(`--rate` replies a second divided by the answers each gives), each gets its cases through the
signed intake, waits for its opening, and answers each question `--think` seconds after it
arrives, through the Kannel MO webhook. The closed-loop harness measures capacity; this measures
whether the service stays healthy under a load it can carry: half the benchmarked capacity by
default (docs/benchmarks.md: 14–19 replies/s on this machine, so 8).

Every minute it prints a line: webhook and intake answers (2xx, 4xx, 5xx, failures), ack and
MO → next MT latency (p50/p99), citizens completed, and each process's RSS (children included).
At the end it waits for the last citizens, checks that every citizen completed with exactly one
MT per step (no duplicate, none missing), and judges memory growth by comparing each process's
RSS over the last third of the run with the middle third (warm-up excluded). Exit 0 when every
check passed; docs/reliability.md holds the last result.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import aiohttp

from bench.sms_load import MO_TOKEN, ONESTOP_SECRET, add_service_arguments, headline, service
from config.settings import PROJECT_ROOT

VN = ZoneInfo("Asia/Ho_Chi_Minh")
AGENCY = "BENCH.X1"
SHORTCODE = "8100"


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (an RQ work-horse), in MB, from /proc."""
    total_kb = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0–1) of values in ms, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Minute:
    """What happened in one minute of the run."""

    index: int
    acks: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    webhook: Counter[str] = field(default_factory=Counter)
    intake: Counter[str] = field(default_factory=Counter)
    started: int = 0
    completed: int = 0
    rss: dict[str, float] = field(default_factory=dict)
    load: float = 0.0

    def line(self) -> str:
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f}"

        web = " ".join(f"{k}:{v}" for k, v in sorted(self.webhook.items())) or "-"
        rss = " ".join(f"{k}={v:.0f}" for k, v in self.rss.items())
        acks = f"{ms(percentile(self.acks, 0.5))}/{ms(percentile(self.acks, 0.99))}"
        e2e = f"{ms(percentile(self.e2e, 0.5))}/{ms(percentile(self.e2e, 0.99))}"
        return (
            f"min {self.index:>2}  started {self.started:>4}  completed {self.completed:>4}  "
            f"webhook {web}  ack p50/p99 {acks} ms  MO→MT p50/p99 {e2e} ms  "
            f"RSS MB {rss}  load {self.load:.1f}"
        )


class Soak:
    """The open-loop driver: citizens arrive on a clock, answer what they are sent."""

    def __init__(self, args: argparse.Namespace, base: str, gateway: str, pids: dict[str, int]) -> None:
        self.args = args
        self.base = base
        self.gateway = gateway
        self.pids = pids
        self.answers = args.answers.split(",")
        self.run_id = uuid.uuid4().hex[:6]
        self.t0 = time.monotonic()
        self.minutes: list[Minute] = [Minute(0)]
        self.inbox: dict[str, asyncio.Queue[tuple[float, str]]] = {}
        self.outcomes: Counter[str] = Counter()
        self.mt_count: Counter[str] = Counter()
        self.opening_parts: Counter[int] = Counter()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stop_following = asyncio.Event()

    @property
    def minute(self) -> Minute:
        return self.minutes[-1]

    async def follow(self, session: aiohttp.ClientSession) -> None:
        """Every MT the gateway records, handed to the phone's citizen as (arrival time, text)."""
        after = 0
        async with session.get(f"{self.gateway}/stats") as r:
            after = int((await r.json())["last_seq"])
        while not self.stop_following.is_set():
            try:
                async with session.get(f"{self.gateway}/events", params={"after": after, "wait": 2}) as r:
                    body = await r.json()
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            for _seq, t, phone, text in body["events"]:
                self.mt_count[phone] += 1
                queue = self.inbox.get(phone)
                if queue is not None:
                    queue.put_nowait((float(t), text))
            after = int(body["next"])

    async def intake(self, session: aiohttp.ClientSession, phones: list[str]) -> bool:
        """One signed batch of closed cases, one a phone; False when the service refused it."""
        closed = datetime.now(VN).replace(microsecond=0) - timedelta(minutes=5)
        cases = [
            {
                "case_id": f"SOAK-{self.run_id}-{phone}",
                "agency_code": AGENCY,
                "procedure_code": "1.001612",
                "phone": phone,
                "closed_at": closed.isoformat(),
                "received_at": (closed - timedelta(days=3)).isoformat(),
                "due_at": (closed + timedelta(days=2)).isoformat(),
                "channel": "sms",
                "language": "vi",
            }
            for phone in phones
        ]
        body = json.dumps({"cases": cases}, ensure_ascii=False).encode()
        ts = str(int(time.time()))
        sig = hmac.new(ONESTOP_SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Sipas-Timestamp": ts,
            "X-Sipas-Signature": f"v1={sig}",
        }
        try:
            async with session.post(f"{self.base}/api/v1/cases/closed", data=body, headers=headers) as r:
                raw = await r.read()
                self.minute.intake[str(r.status)] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.minute.intake[type(exc).__name__] += 1
            return False
        if not 200 <= r.status < 300:
            return False
        outcomes = Counter(str(x.get("outcome")) for x in json.loads(raw)["results"])
        self.outcomes.update(f"intake {k}" for k in outcomes if k != "scheduled")
        return outcomes == Counter({"scheduled": len(phones)})

    async def send_mo(self, session: aiohttp.ClientSession, phone: str, text: str) -> bool:
        """One answer through the Kannel MO webhook, timed; False unless it was acknowledged."""
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        query = urlencode(
            {"token": MO_TOKEN, "from": "84" + phone[1:], "to": SHORTCODE, "text": text,
             "id": str(uuid.uuid4()), "ts": now},
            quote_via=quote,
        )  # fmt: skip
        started = time.perf_counter()
        try:
            async with session.get(f"{self.base}/webhooks/sms/kannel?{query}") as r:
                await r.read()
                status = str(r.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = type(exc).__name__
        self.minute.webhook[status[0] + "xx" if status.isdigit() else status] += 1
        if status.startswith("2"):
            self.minute.acks.append(time.perf_counter() - started)
            return True
        return False

    async def next_mt(self, queue: asyncio.Queue[tuple[float, str]]) -> tuple[float, str] | None:
        try:
            return await asyncio.wait_for(queue.get(), self.args.answer_timeout)
        except TimeoutError:
            return None

    async def citizen(self, session: aiohttp.ClientSession, phone: str) -> None:
        """Wait for the opening (it may come in parts), answer each question, expect the thanks."""
        queue = self.inbox[phone]
        if await self.next_mt(queue) is None:
            self.outcomes["no opening"] += 1
            return
        parts = 1
        while True:  # the rest of a multi-part opening arrives within a second or two
            try:
                await asyncio.wait_for(queue.get(), self.args.settle)
                parts += 1
            except TimeoutError:
                break
        self.opening_parts[parts] += 1
        for answer in self.answers:
            await asyncio.sleep(self.args.think * random.uniform(0.5, 1.5))
            sent_at = time.time()
            if not await self.send_mo(session, phone, answer):
                self.outcomes["webhook refused"] += 1
                return
            reply = await self.next_mt(queue)
            if reply is None:
                self.outcomes["no next MT"] += 1
                return
            self.minute.e2e.append(max(0.0, reply[0] - sent_at))
        self.minute.completed += 1
        self.outcomes["completed"] += 1

    async def arrivals(self, session: aiohttp.ClientSession) -> int:
        """New citizens at rate/answers a second until the time is up; returns how many."""
        per_second = self.args.rate / len(self.answers)
        owed, number, end = 0.0, 0, self.t0 + self.args.minutes * 60
        while time.monotonic() < end:
            tick = time.monotonic()
            owed += per_second
            batch = []
            while owed >= 1:
                owed -= 1
                batch.append(f"0913{number:06d}")
                number += 1
            if batch:
                for phone in batch:
                    self.inbox[phone] = asyncio.Queue()
                if await self.intake(session, batch):
                    self.minute.started += len(batch)
                    for phone in batch:
                        task = asyncio.create_task(self.citizen(session, phone))
                        self.tasks.add(task)
                        task.add_done_callback(self.tasks.discard)
                else:
                    self.outcomes["intake refused"] += len(batch)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        return number

    async def clock(self) -> None:
        """Close a minute every 60 s: sample memory and load, print its line."""
        while True:
            await asyncio.sleep(60 - ((time.monotonic() - self.t0) % 60))
            done = self.minute
            done.rss = {name: rss_mb(pid) for name, pid in self.pids.items()}
            done.load = os.getloadavg()[0]
            print(done.line(), flush=True)
            self.minutes.append(Minute(done.index + 1))

    async def run(self) -> dict[str, object]:
        timeout = aiohttp.ClientTimeout(total=self.args.http_timeout)
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            follower = asyncio.create_task(self.follow(session))
            clock = asyncio.create_task(self.clock())
            citizens = await self.arrivals(session)
            print(f"# arrivals stopped after {citizens} citizens; waiting for the last ones", flush=True)
            if self.tasks:
                last_ones = self.args.answer_timeout * (len(self.answers) + 2)
                await asyncio.wait(set(self.tasks), timeout=last_ones)
            await asyncio.sleep(self.args.drain)  # late or doubled MTs
            clock.cancel()
            self.stop_following.set()
            await follower
            async with session.get(f"{self.gateway}/stats") as r:
                stats = await r.json()
        return self.verdict(citizens, stats)

    def verdict(self, citizens: int, stats: dict[str, object]) -> dict[str, object]:
        """The checks: all completed, each phone the same number of MTs, errors and memory."""
        expected = {parts + len(self.answers) for parts in self.opening_parts}
        per_phone = Counter(self.mt_count[p] for p in self.inbox)
        webhook = sum((m.webhook for m in self.minutes), Counter())
        intake = sum((m.intake for m in self.minutes), Counter())
        errors = sum(v for k, v in webhook.items() if not k.startswith("2"))
        errors += sum(v for k, v in intake.items() if not k.startswith("2"))
        calls = sum(webhook.values()) + sum(intake.values())
        sampled = [m for m in self.minutes if m.rss]
        third = max(1, len(sampled) // 3)
        growth: dict[str, float] = {}
        for name in self.pids:
            middle = [m.rss[name] for m in sampled[third : 2 * third] if name in m.rss]
            last = [m.rss[name] for m in sampled[-third:] if name in m.rss]
            if middle and last:
                growth[name] = round(100 * (statistics.mean(last) / statistics.mean(middle) - 1), 1)
        acks = [a for m in self.minutes for a in m.acks]
        e2e = [e for m in self.minutes for e in m.e2e]
        checks = {
            "every citizen completed": self.outcomes["completed"] == citizens,
            "every phone got opening + one MT per answer, no more": set(per_phone) <= expected
            and len(expected) <= 2,
            "no duplicate MT in a row": stats.get("dup_in_a_row") == 0,
            "error rate below 0.1 %": calls > 0 and errors / calls < 0.001,
            "RSS growth under 15 % (last third vs middle third)": all(g < 15 for g in growth.values()),
        }
        return {
            "minutes": self.args.minutes,
            "rate_replies_per_s": self.args.rate,
            "citizens": citizens,
            "outcomes": dict(self.outcomes),
            "mts_per_phone": {str(k): v for k, v in sorted(per_phone.items())},
            "opening_parts": {str(k): v for k, v in sorted(self.opening_parts.items())},
            "webhook": dict(webhook),
            "intake": dict(intake),
            "error_rate": round(errors / calls, 5) if calls else None,
            "ack_ms": {"p50": percentile(acks, 0.5), "p99": percentile(acks, 0.99)},
            "mo_to_mt_ms": {"p50": percentile(e2e, 0.5), "p99": percentile(e2e, 0.99)},
            "rss_mb_by_minute": [m.rss for m in sampled],
            "rss_growth_percent": growth,
            "load_by_minute": [m.load for m in sampled],
            "gateway": {k: stats.get(k) for k in ("total_mt", "dup_in_a_row", "sendsms_requests", "dlr")},
            "checks": checks,
            "passed": all(checks.values()),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=8.0, help="replies a second (default 8: half capacity)")
    parser.add_argument("--answers", default="5,4,3", help="each citizen's replies, in order")
    parser.add_argument("--think", type=float, default=2.0, help="seconds to answer (±50 %%)")
    parser.add_argument("--settle", type=float, default=2.0, help="quiet seconds ending an opening")
    parser.add_argument("--answer-timeout", type=float, default=120.0)
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for late or doubled MTs")
    parser.add_argument("--http-timeout", type=float, default=30.0)
    add_service_arguments(parser)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    what = f"{args.minutes:g} min at {args.rate:g} replies/s"
    print(headline("soak", PROJECT_ROOT, what), flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as tmp,
        service(PROJECT_ROOT, args.database_url, args.redis_url, 1, 1, Path(tmp)) as svc,
    ):
        pids: dict[str, int] = svc["pids"]  # type: ignore[assignment]
        soak = Soak(args, str(svc["base"]), str(svc["gateway"]), pids)
        result = asyncio.run(soak.run())
    summary = {k: v for k, v in result.items() if k != "rss_mb_by_minute"}
    print(json.dumps(summary, indent=1, ensure_ascii=False))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    print("PASS" if result["passed"] else "FAIL", flush=True)
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
