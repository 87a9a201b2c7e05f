"""The peer benchmark: aiogram 3's FSM with RedisStorage on the same 3-question survey.

    python -m bench.aiogram_fsm [--redis-url URL] [--citizens 2000] [--concurrency 100]

issue 9 compares our reply path with aiogram's: its Dispatcher.feed_update (no network: the
handlers only read and move the conversation state, as ours do before they queue the next SMS),
RedisStorage for the state and data, RedisEventIsolation so one user's updates are handled one at
a time, exactly as our drain holds one sender at a time. Each citizen answers the three questions
of the SIPAS SMS survey (overall satisfaction, the civil servant, the result; 1-5), one after the
other; `--concurrency` citizens are in flight at once. The Redis database given is flushed first.
Prints one line with updates/s; `--json` prints the figures as JSON instead. aiogram is the
optional `bench` extra (`make bench` installs it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from aiogram.types import Chat, Message, Update, User
from redis.asyncio import Redis

# A syntactically valid token: feed_update never calls the Bot API here.
TOKEN = "123456789:AAbenchbenchbenchbenchbenchbenchbench"


class Survey(StatesGroup):
    overall = State()
    cong_chuc = State()
    ket_qua = State()


def survey_router() -> Router:
    """The three questions: an answer 1-5 is stored and the next state set; anything else keeps
    the question (our engine would re-ask)."""
    router = Router(name="sipas-survey")
    steps = [(Survey.overall, Survey.cong_chuc), (Survey.cong_chuc, Survey.ket_qua), (Survey.ket_qua, None)]
    for current, following in steps:
        router.message.register(_answer(current, following), current, F.text)
    return router


def _answer(current: State, following: State | None) -> Any:
    key = str(current.state)

    async def handler(message: Message, state: FSMContext) -> str:
        text = (message.text or "").strip().rstrip(".")
        if not (text.isdigit() and 1 <= int(text) <= 5):
            return "reask"
        await state.update_data({key: int(text)})
        if following is None:
            await state.set_state(None)
            return "done"
        await state.set_state(following)
        return "next"

    return handler


def _update(update_id: int, user_id: int, text: str) -> Update:
    user = User(id=user_id, is_bot=False, first_name="Cong dan")
    chat = Chat(id=user_id, type="private")
    message = Message(message_id=update_id, date=datetime.now(UTC), chat=chat, from_user=user, text=text)
    return Update(update_id=update_id, message=message)


async def run(redis_url: str, citizens: int, concurrency: int) -> dict[str, Any]:
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    storage = RedisStorage(redis)
    dispatcher = Dispatcher(storage=storage, events_isolation=RedisEventIsolation(redis))
    dispatcher.include_router(survey_router())
    bot = Bot(TOKEN)
    answers = ("5", "4", "3")
    # The survey is opened the way ours is (the opening sets the first question's state).
    for user_id in range(1, citizens + 1):
        await dispatcher.fsm.get_context(bot, chat_id=user_id, user_id=user_id).set_state(Survey.overall)
    results: dict[str, int] = {}
    limit = asyncio.Semaphore(concurrency)
    counter = iter(range(1, 10**9))

    async def citizen(user_id: int) -> None:
        async with limit:
            for text in answers:
                outcome = await dispatcher.feed_update(bot, _update(next(counter), user_id, text))
                results[str(outcome)] = results.get(str(outcome), 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(citizen(user_id) for user_id in range(1, citizens + 1)))
    elapsed = time.perf_counter() - started
    completed = 0
    for user_id in range(1, citizens + 1):
        context = dispatcher.fsm.get_context(bot, chat_id=user_id, user_id=user_id)
        data = await context.get_data()
        completed += await context.get_state() is None and data == {"Survey:overall": 5,
                                                                     "Survey:cong_chuc": 4,
                                                                     "Survey:ket_qua": 3}  # fmt: skip
    await bot.session.close()
    await storage.close()
    updates = citizens * len(answers)
    return {
        "citizens": citizens,
        "concurrency": concurrency,
        "updates": updates,
        "seconds": round(elapsed, 3),
        "updates_per_s": round(updates / elapsed, 1),
        "completed": completed,
        "outcomes": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/2", help="a database it may flush")
    parser.add_argument("--citizens", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = asyncio.run(run(args.redis_url, args.citizens, args.concurrency))
    if args.json:
        print(json.dumps(figures))
        return
    print(
        f"aiogram 3 FSM (RedisStorage, RedisEventIsolation, feed_update): {figures['updates']} updates "
        f"from {figures['citizens']} citizens, {figures['concurrency']} in flight, "
        f"in {figures['seconds']} s: "
        f"{figures['updates_per_s']} updates/s; {figures['completed']} surveys completed",
        flush=True,
    )


if __name__ == "__main__":
    main()
