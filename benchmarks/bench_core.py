"""The core's hit and miss paths, as ratios to the raw library or the stdlib (issue 8's table).

Run: ``python benchmarks/bench_core.py`` (any checkout: ``PYTHONPATH=src``). The call is
``f(a: int, b: str, c: float = 1.0)`` returning a dict of 10 ints. Each ratio is measured in
this one process with the cases interleaved run by run (medians of 7), so a busy machine
slows both sides alike; timings use ``timeit`` statements, not lambdas, so the harness adds
nothing to either side. Lower is better.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import random
import statistics
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from typing import Any

from loguru import logger

logger.disable("twat_cache")
REPEAT = 7


def value(a: int) -> dict[int, int]:
    return {i: a + i for i in range(10)}


def f(a: int, b: str, c: float = 1.0) -> dict[int, int]:
    return value(a)


def ratio(cases: dict[str, tuple[str, dict[str, Any]]], base: str, number: int) -> dict[str, float]:
    """Median ns per call of each timeit statement, measured interleaved; ratio to ``base``."""
    runs: dict[str, list[float]] = {name: [] for name in cases}
    timers = {name: timeit.Timer(stmt, globals=env) for name, (stmt, env) in cases.items()}
    for _ in range(REPEAT):
        for name, timer in timers.items():
            runs[name].append(timer.timeit(number) / number * 1e9)
    ns = {name: statistics.median(r) for name, r in runs.items()}
    return {name: ns[name] / ns[base] for name in cases} | {f"{base} (ns)": ns[base]}


def row(title: str, value: float, target: str) -> None:
    print(f"| {title} | {value:.2f}x | {target} |")


def memory_rows() -> None:
    from twat_cache import mcache

    lru = functools.lru_cache(maxsize=128)(f)
    m = mcache(f)
    m_ttl = mcache(ttl=600)(f)
    unhashable = mcache(lambda a, b: value(len(a)))
    lru(1, "a"), m(1, "a"), m_ttl(1, "a"), unhashable([1, 2, 3], {"k": 1})
    stored = {(1, "a", 1.0): value(1)}

    def bare(a: int, b: str, c: float = 1.0) -> dict[int, int]:
        return stored[(a, b, c)]

    env = {
        "lru": lru,
        "m": m,
        "m_ttl": m_ttl,
        "u": unhashable,
        "bare": bare,
        "L": [1, 2, 3],
        "D": {"k": 1},
    }
    r = ratio(
        {
            "lru": ("lru(1, 'a')", env),
            "bare": ("bare(1, 'a')", env),
            "mcache": ("m(1, 'a')", env),
            "mcache ttl": ("m_ttl(1, 'a')", env),
            "unhashable": ("u(L, D)", env),
        },
        "lru",
        100_000,
    )
    row(
        "(floor) a bare Python wrapper `return d[(a, b, c)]` vs `lru_cache`",
        r["bare"],
        "(no counter, no LRU order)",
    )
    row("`mcache` hit, positional, vs `lru_cache`", r["mcache"], "<= 1.3x")
    row("`mcache(ttl=600)` hit vs `lru_cache`", r["mcache ttl"], "<= 2.5x")
    row(
        "`mcache` hit, `f([1, 2, 3], {'k': 1})`, vs `lru_cache` positional",
        r["unhashable"],
        "<= 5x",
    )


def miss_rows() -> None:
    from twat_cache import mcache

    n = 100_000
    samples: dict[str, list[float]] = {"lru": [], "mcache": []}
    for _ in range(3):
        for name in samples:
            fn = functools.lru_cache(maxsize=128)(f) if name == "lru" else mcache(f)
            keys = list(range(n))
            start = timeit.default_timer()
            for k in keys:
                fn(k, "a")
            samples[name].append(timeit.default_timer() - start)
    lru, ours = statistics.median(samples["lru"]), statistics.median(samples["mcache"])
    row("`mcache` miss + store, 100,000 new keys, vs `lru_cache`", ours / lru, "<= 4x")


def async_rows() -> None:
    from twat_cache import acache

    store: dict[tuple[int, str], Any] = {(1, "a"): value(1)}

    async def raw(a: int, b: str, c: float = 1.0) -> Any:
        return store[(a, b)]

    async def g(a: int, b: str, c: float = 1.0) -> dict[int, int]:
        return value(a)

    plain, with_ttl = acache(g), acache(ttl=600)(g)

    async def loop(fn: Callable[..., Any], n: int) -> float:
        await fn(1, "a")
        start = timeit.default_timer()
        for _ in range(n):
            await fn(1, "a")
        return (timeit.default_timer() - start) / n

    async def main() -> dict[str, float]:
        runs: dict[str, list[float]] = {"raw": [], "plain": [], "ttl": []}
        for _ in range(REPEAT):
            for name, fn in (("raw", raw), ("plain", plain), ("ttl", with_ttl)):
                runs[name].append(await loop(fn, 50_000))
        return {name: statistics.median(v) for name, v in runs.items()}

    t = asyncio.run(main())
    row("`acache` hit vs an `async def` dict lookup", t["plain"] / t["raw"], "<= 1.5x")
    row("`acache(ttl=600)` hit vs an `async def` dict lookup", t["ttl"] / t["raw"], "<= 1.5x")


def disk_rows() -> None:
    import diskcache

    from twat_cache import bcache

    with tempfile.TemporaryDirectory() as root:
        raw = diskcache.Cache(os.path.join(root, "raw"))
        raw.set("k" * 32, value(1))
        b = bcache(cache_dir=root, folder_name="b")(f)
        b(1, "a")
        env = {"raw": raw, "b": b, "K": "k" * 32}
        r = ratio({"raw": ("raw.get(K)", env), "bcache": ("b(1, 'a')", env)}, "raw", 5_000)
        row("`bcache` hit vs raw `diskcache.Cache.get`, str key", r["bcache"], "<= 1.0x")

        n = 100_000
        big = bcache(cache_dir=root, folder_name="big", maxsize=None)(f)
        for i in range(n):
            raw.set(f"{i:032d}", value(i))
            big(i, "a")
        picks = [random.randrange(n) for _ in range(2_000)]
        env = {"raw": raw, "big": big, "P": picks, "S": [f"{i:032d}" for i in picks]}
        r = ratio(
            {"raw": ("for s in S: raw.get(s)", env), "bcache": ("for p in P: big(p, 'a')", env)},
            "raw",
            1,
        )
        row("`bcache` hit at 100,000 entries, random keys, vs raw `get`", r["bcache"], "<= 1.3x")

        counter = iter(range(10**9))
        env = {"raw": raw, "b": b, "next": next, "c": counter, "value": value}
        r = ratio(
            {
                "raw": ("i = next(c); raw.set(f'{i:032d}x', value(i))", env),
                "bcache": ("b(next(c) + 10**8, 'a')", env),
            },
            "raw",
            500,
        )
        row("`bcache` miss + store vs raw `diskcache.Cache.set`", r["bcache"], "<= 1.3x")
        raw.close()


def _import_seconds(code: str) -> float:
    times = []
    for _ in range(REPEAT):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            capture_output=True,
            text=True,
            check=True,
        )
        total = 0
        for line in done.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() and not parts[2].startswith("  "):
                try:
                    total += int(parts[1])
                except ValueError:
                    continue
        times.append(total)
    return statistics.median(times)


def import_row() -> None:
    empty = _import_seconds("pass")  # what the interpreter imports before any code
    ours = _import_seconds("import twat_cache") - empty
    base = _import_seconds("import pydantic, loguru") - empty
    row("`import twat_cache` vs importing pydantic + loguru", ours / base, "<= 1.2x")


def rss_row() -> None:
    code = """
import gc, resource, sys
from loguru import logger
logger.disable("twat_cache")
kind = sys.argv[1]
def g(a): return a
if kind == "cachebox":
    import cachebox
    cache = cachebox.LRUCache(0)
    def fn(a):
        cache[(a,)] = g(a)
else:
    from twat_cache import mcache
    fn = mcache(maxsize=None)(g)
fn(-1)
gc.collect()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for i in range(1_000_000):
    fn(i)
gc.collect()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / 1_000_000)
"""
    per = {}
    for kind in ("cachebox", "mcache"):
        out = subprocess.run(
            [sys.executable, "-c", code, kind], capture_output=True, text=True, check=True
        )
        per[kind] = float(out.stdout.strip())
    sizes = f"{per['mcache']:.0f} B vs {per['cachebox']:.0f} B"
    row(
        f"memory per entry, 1M calls, vs cachebox ({sizes})",
        per["mcache"] / per["cachebox"],
        "<= 1.3x",
    )


def main() -> None:
    gc.disable()
    print("| case | ratio | target |")
    print("|---|---:|---|")
    for part in (memory_rows, miss_rows, async_rows, disk_rows, import_row, rss_row):
        part()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
