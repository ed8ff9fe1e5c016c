"""Large values: an 80 MB array (fcache, bcache) and a 1M-row DataFrame (fcache).

Run: ``python benchmarks/bench_large.py [array] [frame] [scale]`` (default: all
three; ``scale`` fills a cache with 100k files and takes minutes). Prints
markdown tables of per-hit medians over repeats, as ratios measured in the
same run: arrays to ``np.load`` of the same array, the DataFrame to
``pyarrow.feather.read_table(path).to_pandas()`` of the same frame written
uncompressed (as fcache writes it) and to ``joblib.Memory``. Hits are timed
once the entry is older than one second: the first read of a file that new
re-checks its tag (see ``engines/files.py``), and that one-time cost is shown
in its own row.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def interleaved(cases: dict[str, Callable[[], object]], rounds: int = REPEATS) -> dict[str, float]:
    """Median seconds of each case, run in turn once per round (noise hits every case alike)."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def main() -> None:
    sections = sys.argv[1:] or ["array", "frame", "scale"]
    root = Path(tempfile.mkdtemp(prefix="twat-bench-large-"))
    os.environ["TWAT_CACHE_DIR"] = str(root / "twat")
    import joblib

    print(f"Python {sys.version.split()[0]}, numpy {np.__version__}, joblib {joblib.__version__}")
    if "array" in sections:
        bench_array(root)
    if "frame" in sections:
        bench_frame(root)
    if "scale" in sections:
        bench_scale()


def bench_array(root: Path) -> None:
    """An 80 MB float64 array: fcache (read, mapped), bcache, joblib.Memory vs np.load."""
    import joblib

    from twat_cache import bcache, fcache

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

    @bcache(folder_name="large-bcache")
    def bc_make(n: int) -> np.ndarray:
        return array[:n].copy()

    @memory.cache
    def jl_make(n: int) -> np.ndarray:
        return array[:n].copy()

    for f in (tc_make, tc_mmap, bc_make, jl_make):
        f(N)
    fresh = median_time(lambda: tc_make(N), repeats=1)  # first read: tag re-checked
    time.sleep(1.1)
    assert np.array_equal(tc_make(N), array)
    assert np.array_equal(tc_mmap(N), array)
    assert np.array_equal(bc_make(N), array)
    value_files = list((root / "twat").rglob("large-bcache/**/*.tc"))
    bcache_disk = sum(p.stat().st_size for p in (root / "twat").rglob("large-bcache/**/*"))

    timed = interleaved(
        {
            "np.load of a .npy file": lambda: np.load(npy),
            "np.load(mmap_mode='r')": lambda: np.load(npy, mmap_mode="r"),
            "twat_cache.fcache hit": lambda: tc_make(N),
            "twat_cache.fcache hit, mmap_mode='r'": lambda: tc_mmap(N),
            "twat_cache.bcache hit": lambda: bc_make(N),
            "joblib.Memory hit": lambda: jl_make(N),
        },
        rounds=3 * REPEATS,
    )
    base = timed["np.load of a .npy file"]
    rows = [*timed.items(), ("fcache first read of a new file (tag check)", fresh)]
    print(f"\n80 MB float64 array, medians of {3 * REPEATS} rounds, cases in turn\n")
    print("| implementation | per hit | ratio to np.load |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e3:.2f} ms | {seconds / base:.3f}x |")
    print(
        f"\nbcache on disk for the 80 MB array: {bcache_disk / 1e6:.1f} MB"
        f" ({len(value_files)} value file)"
    )


def mixed_frame(rows: int) -> Any:
    """A DataFrame of mixed dtypes: ints, floats, strings, categorical, tz-aware, nullable."""
    import pandas as pd

    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "x": rng.random(rows),
            "y": rng.random(rows).astype(np.float32),
            "name": [f"name-{i % 50_000}" for i in range(rows)],
            "kind": pd.Categorical(rng.choice(["a", "b", "c", "d"], rows)),
            "when": pd.date_range("2020-01-01", periods=rows, freq="s", tz="UTC"),
            "count": pd.array(rng.integers(0, 100, rows), dtype="Int64"),
            "flag": rng.random(rows) > 0.5,
        }
    )


def bench_frame(root: Path) -> None:
    """A 1M-row DataFrame hit: fcache vs the Feather read of the same frame and joblib.Memory."""
    for strings in ("str", "object"):
        frame = mixed_frame(1_000_000)
        if strings == "object":  # pandas 2's default for text, still common
            frame["name"] = frame["name"].astype(object)
        bench_one_frame(root / strings, frame, strings)


def bench_one_frame(root: Path, frame: Any, strings: str) -> None:
    import joblib
    import pandas as pd
    import pyarrow
    import pyarrow.feather as feather

    from twat_cache import fcache

    root.mkdir()
    path = root / "frame.feather"
    feather.write_feather(frame, path, compression="uncompressed")
    memory = joblib.Memory(str(root / "joblib-frame"), verbose=0)

    @fcache(folder_name=f"frame-{strings}")
    def tc_frame(n: int) -> pd.DataFrame:
        return frame.iloc[:n].copy()

    @fcache(folder_name=f"frame-{strings}-views", mmap_mode="r")
    def tc_views(n: int) -> pd.DataFrame:
        return frame.iloc[:n].copy()

    @memory.cache
    def jl_frame(n: int) -> pd.DataFrame:
        return frame.iloc[:n].copy()

    rows = len(frame)
    for f in (tc_frame, tc_views, jl_frame):
        f(rows)
    time.sleep(1.1)
    pd.testing.assert_frame_equal(tc_frame(rows), frame)
    assert tc_frame.cache_parameters()["engine"] == "joblib"
    feather_read = "pyarrow.feather.read_table(path).to_pandas()"
    plain = "twat_cache.fcache hit (a writable copy)"
    views = 'twat_cache.fcache(mmap_mode="r") hit (read-only views)'
    jl = "joblib.Memory hit"
    runs: dict[str, Callable[[], object]] = {
        feather_read: lambda: feather.read_table(path).to_pandas()
    }
    if strings == "object":  # what Feather gives is 'str': the same frame needs Python strs

        def feather_objects() -> None:
            read = feather.read_table(path).to_pandas()
            read["name"] = read["name"].astype(object)

        runs["the same, then the text column to object"] = feather_objects
    runs[plain] = lambda: tc_frame(rows)
    runs[views] = lambda: tc_views(rows)
    if strings == "object":
        slow = 3  # joblib takes most of a second per hit here: timed on its own
        timed = interleaved(runs)
        timed[f"{jl} ({slow} repeats)"] = median_time(lambda: jl_frame(rows), repeats=slow)
    else:
        runs[jl] = lambda: jl_frame(rows)
        timed = interleaved(runs, rounds=3 * REPEATS)
    base = timed[feather_read]
    cases = list(timed.items())
    tc_hit, views_hit, joblib_hit = timed[plain], timed[views], cases[-1][1]
    print(
        f"\n1M-row DataFrame, text as {strings!r} dtype"
        f" ({frame.shape[1]} columns: int, float32/64, text, categorical,"
        f" tz-aware, Int64, bool; {frame.memory_usage(deep=True).sum() / 1e6:.0f} MB),"
        f" pandas {pd.__version__}, pyarrow {pyarrow.__version__}, medians, cases in turn\n"
    )
    print("| implementation | per hit | ratio to Feather read |")
    print("|---|---:|---:|")
    for name, seconds in cases:
        print(f"| {name} | {seconds * 1e3:.1f} ms | {seconds / base:.2f}x |")
    print(
        f"\nfcache is {joblib_hit / tc_hit:.1f}x faster than joblib.Memory,"
        f" fcache(mmap_mode='r') {joblib_hit / views_hit:.1f}x"
    )


def bench_scale() -> None:
    """fcache small-array hit cost as the cache grows to 100k entries."""
    from twat_cache import fcache

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

    print()
    print("| fcache entries | small-array hit |")
    print("|---:|---:|")
    for size, seconds in scale:
        print(f"| {size:,} | {seconds * 1e6:.1f} us |")


if __name__ == "__main__":
    main()
