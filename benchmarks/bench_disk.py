"""bcache against raw diskcache, diskcache.memoize and joblib.Memory.

Run: ``python benchmarks/bench_disk.py``. Prints a markdown table of per-call
medians over repeats, as ratios to the raw diskcache operation measured in the
same run (these machines are noisy; ratios are what is comparable).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPEATS = 7
HITS = 3_000
MISSES = 300


def value_for(i: int) -> dict[str, float]:
    """The cached result: a dict of 10 items."""
    return {f"field{j}": i * 0.5 + j for j in range(10)}


def per_call(run: Callable[[int], None], n: int) -> float:
    """Median over repeats of the time per call of ``run(n)``, in seconds."""
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run(n)
        samples.append((time.perf_counter() - start) / n)
    return statistics.median(samples)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="twat-bench-disk-"))
    os.environ["TWAT_CACHE_DIR"] = str(root / "twat")
    import diskcache
    import joblib

    from twat_cache import bcache

    raw = diskcache.Cache(str(root / "raw"))
    memo_cache = diskcache.Cache(str(root / "memoize"))
    memory = joblib.Memory(str(root / "joblib"), verbose=0)

    @bcache(folder_name="bench")
    def tc_load(i: int) -> dict[str, float]:
        return value_for(i)

    @bcache(folder_name="bench-nolock", lock=False)
    def tc_nolock(i: int) -> dict[str, float]:
        return value_for(i)

    @memo_cache.memoize()
    def dc_load(i: int) -> dict[str, float]:
        return value_for(i)

    @memory.cache
    def jl_load(i: int) -> dict[str, float]:
        return value_for(i)

    hit_key = "0123456789abcdef0123456789abcdef"
    raw.set(hit_key, value_for(7))
    for f in (tc_load, tc_nolock, dc_load, jl_load):
        f(7)

    def raw_get(n: int) -> None:
        get = raw.get
        for _ in range(n):
            get(hit_key)

    def hits(f: Callable[[int], object]) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                f(7)

        return run

    counter = iter(range(10, 10**9))

    def raw_set(n: int) -> None:
        for _ in range(n):
            i = next(counter)
            raw.set(f"{i:032x}", value_for(i))

    def misses(f: Callable[[int], object]) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                f(next(counter))

        return run

    base_hit = per_call(raw_get, HITS)
    base_set = per_call(raw_set, MISSES)
    rows = [
        ("hit, dict of 10 items", "raw diskcache.Cache.get (str key)", base_hit, base_hit),
        ("hit, dict of 10 items", "twat_cache.bcache", per_call(hits(tc_load), HITS), base_hit),
        ("hit, dict of 10 items", "diskcache.memoize", per_call(hits(dc_load), HITS), base_hit),
        ("hit, dict of 10 items", "joblib.Memory", per_call(hits(jl_load), HITS // 10), base_hit),
        ("miss + store", "raw diskcache.Cache.set (str key)", base_set, base_set),
        ("miss + store", "twat_cache.bcache", per_call(misses(tc_load), MISSES), base_set),
        (
            "miss + store",
            "twat_cache.bcache(lock=False)",
            per_call(misses(tc_nolock), MISSES),
            base_set,
        ),
        ("miss + store", "diskcache.memoize", per_call(misses(dc_load), MISSES), base_set),
        ("miss + store", "joblib.Memory", per_call(misses(jl_load), MISSES // 10), base_set),
    ]

    # Scale: hits spread over every entry of a cache holding 1k, then 100k entries,
    # against a raw diskcache holding as many entries, read the same way.
    @bcache(folder_name="scale")
    def scaled(i: int) -> dict[str, float]:
        return value_for(i)

    raw_big = diskcache.Cache(str(root / "raw-scale"))
    scale_rows = []
    filled = 0
    for size in (1_000, 100_000):
        with raw_big.transact():
            for i in range(filled, size):
                raw_big.set(f"{i:032x}", value_for(i))
        for i in range(filled, size):
            scaled(i)
        filled = size

        def raw_spread(n: int, size: int = size) -> None:
            get = raw_big.get
            for k in range(n):
                get(f"{(k * 7919) % size:032x}")

        def tc_spread(n: int, size: int = size) -> None:
            for k in range(n):
                scaled((k * 7919) % size)

        scale_rows.append((size, per_call(tc_spread, HITS), per_call(raw_spread, HITS)))

    print(
        f"Python {sys.version.split()[0]}, diskcache {diskcache.__version__}, "
        f"joblib {joblib.__version__}; medians of {REPEATS} repeats\n"
    )
    print("| scenario | implementation | per call | ratio to raw diskcache |")
    print("|---|---|---:|---:|")
    for scenario, name, seconds, base in rows:
        print(f"| {scenario} | {name} | {seconds * 1e6:.1f} us | {seconds / base:.2f}x |")
    print()
    print("| entries | bcache hit | raw diskcache get | ratio |")
    print("|---:|---:|---:|---:|")
    for size, seconds, base in scale_rows:
        print(
            f"| {size:,} | {seconds * 1e6:.1f} us | {base * 1e6:.1f} us | {seconds / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
