"""Memory hit cost of mcache on each engine against lru_cache, cachetools and cachebox.

Run: ``python benchmarks/bench_memory.py``. Every figure is a ratio to
``functools.lru_cache`` measured in this one process (medians of 7 runs).
"""

from __future__ import annotations

import functools
import sys

import cachebox
import cachetools
from _util import per_call_ns, table
from loguru import logger

from twat_cache import mcache

logger.disable("twat_cache")
N = 200_000


def f(a: int, b: str, c: float = 1.0) -> float:
    return a + c


def build() -> dict[str, object]:
    cases: dict[str, object] = {
        "plain call (no cache)": f,
        "functools.lru_cache": functools.lru_cache(maxsize=128)(f),
        "cachetools.cached": cachetools.cached(cachetools.LRUCache(128))(f),
        "cachebox.cached": cachebox.cached(cachebox.LRUCache(128))(f),
    }
    for engine in ("cachebox", "cachetools", "functools"):
        cases[f"mcache [{engine}]"] = mcache(engine=engine)(f)
    cases["mcache default, lock=False"] = mcache(lock=False)(f)
    return cases


def unhashable_rows(number: int) -> list[tuple[str, float]]:
    def g(values: list[int], scale: int = 1) -> int:
        return sum(values) * scale

    lru = functools.lru_cache(maxsize=128)(lambda t: g(list(t)))
    cached = mcache(g)
    data = [1, 2, 3]
    cached(data)
    lru((1, 2, 3))
    return [
        ("lru_cache on a tuple (reference)", per_call_ns(lambda: lru((1, 2, 3)), number)),
        ("mcache, list argument", per_call_ns(lambda: cached(data), number)),
    ]


def main() -> None:
    number = int(sys.argv[1]) if len(sys.argv) > 1 else N
    cases = build()
    for spelling, call in (
        ("positional f(1, 'a')", lambda fn: lambda: fn(1, "a")),
        ("keyword f(1, b='a')", lambda fn: lambda: fn(1, b="a")),
    ):
        rows = []
        for name, fn in cases.items():
            bench = call(fn)
            bench()  # warm: the first call is the miss
            rows.append((name, per_call_ns(bench, number)))
        print(table(f"Memory hit, {spelling}", rows, "functools.lru_cache"))
        print()
    print(
        table(
            "Unhashable argument hit", unhashable_rows(number), "lru_cache on a tuple (reference)"
        )
    )


if __name__ == "__main__":
    main()
