"""Async hit cost: acache against an ``async def`` dict lookup and the async peers.

Run: ``python benchmarks/bench_async.py [calls]``. Every figure is a ratio to
an ``async def`` function returning a dict lookup, measured in one event loop
of this one process (medians of 7 runs); the target is acache <= 6x.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import aiocache
import cachebox
from _util import table
from cashews import cache as cashews_cache
from loguru import logger

from twat_cache import acache

logger.disable("twat_cache")
N = 50_000
REPEAT = 7
BASELINE = "async def dict lookup"


async def per_call_ns(fn: Callable[[], Awaitable[object]], number: int) -> float:
    """Median ns per awaited call over ``REPEAT`` runs of ``number`` calls."""
    runs = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        for _ in range(number):
            await fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) / number * 1e9


async def main() -> None:
    number = int(sys.argv[1]) if len(sys.argv) > 1 else N
    data = {(1, "a"): 1.0}

    async def lookup(a: int, b: str) -> float:
        return data[(a, b)]

    async def f(a: int, b: str) -> float:
        return float(a)

    cashews_cache.setup("mem://")
    cases: dict[str, tuple[Callable[[int, str], Awaitable[object]], int]] = {
        BASELINE: (lookup, number),
        "acache [aiocache], ttl=600": (acache(ttl=600)(f), number),
        "acache [aiocache]": (acache(f), number),
        "acache [cachebox fallback]": (acache(engine="cachebox")(f), number),
        "cachebox.cached": (cachebox.cached(cachebox.LRUCache(128))(f), number),
        "aiocache.cached": (aiocache.cached()(f), number // 10),
        "cashews @cache": (cashews_cache(ttl="10m")(f), number // 10),
    }
    rows = []
    for name, (fn, calls) in cases.items():
        await fn(1, "a")  # the miss

        async def bench(fn: Callable[[int, str], Awaitable[object]] = fn) -> object:
            return await fn(1, "a")

        rows.append((name, await per_call_ns(bench, calls)))
    print(table("Async hit, `await f(1, 'a')`", rows, BASELINE))


if __name__ == "__main__":
    asyncio.run(main())
