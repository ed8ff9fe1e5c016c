"""fcache on an 80 MB float64 array against np.load of a .npy file and joblib.Memory.

Run: ``python benchmarks/bench_large.py``. Prints a markdown table of per-hit
medians over repeats, as ratios to ``np.load`` of the same array measured in
the same run. Hits are timed once the entry is older than one second: the
first read of a file that new re-checks its tag (see ``engines/files.py``),
and that one-time cost is shown in its own row.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPEATS = 7
N = 10_000_000  # 80 MB of float64


def median_time(run: Callable[[], object], repeats: int = REPEATS) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="twat-bench-large-"))
    os.environ["TWAT_CACHE_DIR"] = str(root / "twat")
    import joblib

    from twat_cache import fcache

    array = np.random.default_rng(0).random(N)
    npy = root / "array.npy"
    np.save(npy, array)
    memory = joblib.Memory(str(root / "joblib"), verbose=0)

    @fcache(folder_name="large")
    def tc_make(n: int) -> np.ndarray:
        return array[:n].copy()

    @fcache(folder_name="large-mmap", mmap_mode="r")
    def tc_mmap(n: int) -> np.ndarray:
        return array[:n].copy()

    @memory.cache
    def jl_make(n: int) -> np.ndarray:
        return array[:n].copy()

    for f in (tc_make, tc_mmap, jl_make):
        f(N)
    fresh = median_time(lambda: tc_make(N), repeats=1)  # first read: tag re-checked
    time.sleep(1.1)
    assert np.array_equal(tc_make(N), array)
    assert np.array_equal(tc_mmap(N), array)

    base = median_time(lambda: np.load(npy))
    rows = [
        ("np.load of a .npy file", base),
        ("np.load(mmap_mode='r')", median_time(lambda: np.load(npy, mmap_mode="r"))),
        ("twat_cache.fcache hit", median_time(lambda: tc_make(N))),
        ("twat_cache.fcache hit, mmap_mode='r'", median_time(lambda: tc_mmap(N))),
        ("joblib.Memory hit", median_time(lambda: jl_make(N))),
        ("fcache first read of a new file (tag check)", fresh),
    ]

    # Scale: a small-array hit with 1k, 10k, then 100k entries in the same cache.
    @fcache(folder_name="scale")
    def small(i: int) -> np.ndarray:
        return np.full(16, i, dtype=np.float64)

    scale = []
    filled = 0
    for size in (1_000, 10_000, 100_000):
        for i in range(filled, size):
            small(i)
        filled = size
        time.sleep(1.1)
        for i in range(size):  # first reads check each file's tag once
            small(i)

        def spread(size: int = size) -> None:
            for k in range(2_000):
                small((k * 7919) % size)

        scale.append((size, median_time(spread) / 2_000))

    print(
        f"Python {sys.version.split()[0]}, numpy {np.__version__}, joblib {joblib.__version__};"
        f" 80 MB float64 array, medians of {REPEATS} repeats\n"
    )
    print("| implementation | per hit | ratio to np.load |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e3:.2f} ms | {seconds / base:.3f}x |")
    print()
    print("| fcache entries | small-array hit |")
    print("|---:|---:|")
    for size, seconds in scale:
        print(f"| {size:,} | {seconds * 1e6:.1f} us |")


if __name__ == "__main__":
    main()
