"""The workloads of ``python -m twat_cache demo``: one real job per decorator.

Each scenario decorates a fresh function, times the first call (the miss),
then the median of repeated hits, in a temporary cache root. Each also caches
two smaller variants of its job, so the ``entries`` column shows a cache
holding several results, counted by the cache itself.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Result", "Scenario", "scenarios"]


@dataclass(frozen=True)
class Result:
    """What one scenario measured."""

    decorator: str
    engine: str
    workload: str
    miss: float
    hit: float
    entries: int

    @property
    def speedup(self) -> float:
        """How many times faster a hit is than the miss."""
        return self.miss / self.hit if self.hit else math.inf


@dataclass(frozen=True)
class Scenario:
    """A decorator on a workload; ``run`` returns what it measured."""

    title: str
    run: Callable[[], Result]


def count_primes(limit: int) -> int:
    """CPU-bound: a sieve of Eratosthenes."""
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for i in range(2, math.isqrt(limit) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, limit + 1, i)))
    return sum(sieve)


def build_report(rows: int) -> dict[str, Any]:
    """Data-pipeline style: generate, serialize and aggregate records."""
    records = [{"id": i, "group": i % 7, "value": (i * 7919) % 1000} for i in range(rows)]
    text = json.dumps(records)
    totals: dict[int, int] = {}
    for record in json.loads(text):
        totals[record["group"]] = totals.get(record["group"], 0) + record["value"]
    return {"rows": rows, "totals": totals}


def _time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _hit_time(fn: Callable[[], Any], budget: float = 0.05) -> float:
    """Median seconds per hit over 5 batches sized to about ``budget`` seconds each."""
    number = max(1, min(20_000, int(budget / max(_time(fn), 1e-7))))
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def _measure(
    decorator: str, workload: str, cached: Any, call: Callable[[], Any], *more: Callable[[], Any]
) -> Result:
    """Time ``call`` missed then hit; ``more`` calls store further entries, untimed."""
    miss = _time(call)
    hit = _hit_time(call)
    for extra in more:
        extra()
    entries = cached.cache_info().currsize
    return Result(decorator, cached.engine.name, workload, miss, hit, entries)


def _measure_report(decorator: str, workload: str, report: Any) -> Result:
    """Time the cached JSON report of 50,000 rows; the 20,000 and 10,000 ones are stored too."""
    return _measure(
        decorator,
        workload,
        report,
        lambda: report(50_000),
        lambda: report(20_000),
        lambda: report(10_000),
    )


def _measure_async(
    decorator: str,
    workload: str,
    cached: Any,
    call: Callable[[], Awaitable[Any]],
    *more: Callable[[], Awaitable[Any]],
) -> Result:
    async def timed() -> tuple[float, float]:
        start = time.perf_counter()
        await call()
        miss = time.perf_counter() - start
        await asyncio.gather(*(extra() for extra in more))
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(2000):
                await call()
            samples.append((time.perf_counter() - start) / 2000)
        return miss, statistics.median(samples)

    miss, hit = asyncio.run(timed())
    entries = cached.cache_info().currsize
    return Result(decorator, cached.engine.name, workload, miss, hit, entries)


def scenarios(limit: int, redis_url: str | None) -> list[Scenario]:
    """Every scenario the demo runs, in order (Redis only when a URL is given)."""
    from twat_cache import acache, bcache, fcache, get_engine_manager, mcache, ucache

    available = set(get_engine_manager().available())
    found: list[Scenario] = []

    def memory(engine: str) -> Result:
        @mcache(engine=engine, name=f"demo.mcache.{engine}")
        def primes(limit: int) -> int:
            return count_primes(limit)

        return _measure(
            "mcache",
            f"count primes below {limit:,}",
            primes,
            lambda: primes(limit),
            lambda: primes(limit // 2),
            lambda: primes(limit // 4),
        )

    found += [
        Scenario(f"mcache on {engine}: primes below {limit:,}", _bind(memory, engine))
        for engine in ("cachebox", "cachetools", "functools")
        if engine in available
    ]

    report_job = "50,000-row JSON report"

    def disk() -> Result:
        @bcache(name="demo.bcache", folder_name="demo")
        def report(rows: int) -> dict[str, Any]:
            return build_report(rows)

        return _measure_report("bcache", f"{report_job} on disk", report)

    found.append(Scenario("bcache: the JSON report, on disk", disk))

    def files() -> Result:
        np = importlib.import_module("numpy")

        @fcache(name="demo.fcache", folder_name="demo", mmap_mode="r")
        def matrix(n: int) -> Any:
            rng = np.random.default_rng(0)
            a = rng.standard_normal((n, n))
            return a @ a.T  # a compute-heavy 8*n*n-byte result

        return _measure(
            "fcache",
            "1500x1500 matrix product, 18 MB .npy",
            matrix,
            lambda: matrix(1500),
            lambda: matrix(500),
            lambda: matrix(250),
        )

    if importlib.util.find_spec("numpy") is not None:
        found.append(Scenario("fcache: a 1500x1500 matrix product, as a .npy file", files))

    def asynchronous() -> Result:
        @acache(name="demo.acache", ttl=600)
        async def fetch(url: str) -> dict[str, str]:
            await asyncio.sleep(0.05)  # a network round trip
            return {"url": url, "status": "200"}

        return _measure_async(
            "acache",
            "a 50 ms async web request",
            fetch,
            lambda: fetch("https://example.org/data"),
            lambda: fetch("https://example.org/users"),
            lambda: fetch("https://example.org/items"),
        )

    found.append(Scenario("acache: a 50 ms async request", asynchronous))

    def universal() -> Result:
        @ucache(name="demo.ucache")
        def report(rows: int) -> dict[str, Any]:
            return build_report(rows)

        return _measure_report("ucache", f"{report_job} in memory", report)

    found.append(Scenario("ucache: a 50,000-record JSON report", universal))

    if redis_url:

        def remote() -> Result:
            @ucache(name="demo.redis", redis_url=redis_url, ttl=600)
            def report(rows: int) -> dict[str, Any]:
                return build_report(rows)

            try:
                return _measure_report("ucache(redis_url)", f"{report_job} on Redis", report)
            finally:
                report.cache_clear()

        found.append(Scenario("redis: the JSON report, shared by every process", remote))
    return found


def _bind(fn: Callable[[str], Result], arg: str) -> Callable[[], Result]:
    return lambda: fn(arg)
