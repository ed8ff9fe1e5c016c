"""Command line: ``python -m twat_cache demo`` and ``python -m twat_cache engines``."""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main"]


def _count_primes(limit: int) -> int:
    """A real CPU-bound workload: a sieve of Eratosthenes."""
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for i in range(2, math.isqrt(limit) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, limit + 1, i)))
    return sum(sieve)


def _time_call(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _hit_time(fn: Callable[[], Any], repeat: int = 2000) -> float:
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        samples.append((time.perf_counter() - start) / repeat)
    return statistics.median(samples)


def _fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.1f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:,.1f} us"
    return f"{seconds * 1e9:,.0f} ns"


def _demo(args: argparse.Namespace) -> int:
    from loguru import logger

    from twat_cache import clear_cache, get_engine_manager, mcache

    logger.disable("twat_cache")
    limit = args.limit
    available = set(get_engine_manager().available())
    rows: list[tuple[str, str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="twat-cache-demo-") as root:
        os.environ["TWAT_CACHE_DIR"] = root  # persistent engines write here, then it is removed
        engines = [name for name in ("cachebox", "cachetools", "functools") if name in available]
        for index, engine in enumerate(engines, 1):
            print(f"[{index}/{len(engines)}] mcache on {engine}: counting primes below {limit:,}")

            @mcache(engine=engine, name=f"demo.{engine}")
            def primes(limit: int) -> int:
                return _count_primes(limit)

            miss = _time_call(lambda: primes(limit))
            hit = _hit_time(lambda: primes(limit))
            rows.append(
                (
                    "mcache",
                    primes.engine.name,
                    _fmt(miss),
                    _fmt(hit),
                    f"{miss / hit:,.0f}x",
                )
            )
        clear_cache()
    header = ("decorator", "engine", "miss", "hit", "speed-up")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 0


def _engines(args: argparse.Namespace) -> int:
    from twat_cache import CacheConfig, get_engine_manager
    from twat_cache.engines import CHAINS

    manager = get_engine_manager()
    print("engine       installed")
    for name in manager.names():
        cls = manager.engine_class(name)
        installed = "yes" if cls.is_available() else f"no (pip install {cls.requires})"
        print(f"{name:12s} {installed}")
    print()
    config = CacheConfig()
    for decorator, chain in CHAINS.items():
        usable = [n for n in chain if manager.engine_class(n).is_available()]
        pick = next(
            (n for n in usable if manager.engine_class(n).unsupported(config) is None), None
        )
        print(f"{decorator}: {' > '.join(chain)}  (picks {pick} now)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m twat_cache`` and the ``twat-cache`` script."""
    parser = argparse.ArgumentParser(prog="twat-cache", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run each decorator on a real workload")
    demo.add_argument("--limit", type=int, default=2_000_000, help="primes below this number")
    demo.set_defaults(run=_demo)
    engines = commands.add_parser("engines", help="installed engines and fallback chains")
    engines.set_defaults(run=_engines)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
