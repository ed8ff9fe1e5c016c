"""fcache for large NumPy arrays: stored as .npy files, read back memory-mapped."""

from __future__ import annotations

import time

import numpy as np

from twat_cache import fcache


@fcache(folder_name="features", mmap_mode="r")
def features(n: int, seed: int = 0) -> np.ndarray:
    """An expensive feature matrix (here: random numbers)."""
    rng = np.random.default_rng(seed)
    time.sleep(0.2)
    return rng.standard_normal((n, 512))


if __name__ == "__main__":
    first = features(4096)
    start = time.perf_counter()
    again = features(4096)
    took = time.perf_counter() - start
    print("same values:", bool(np.array_equal(first, again)))
    print("memory-mapped:", isinstance(again, np.memmap), "read-only:", not again.flags.writeable)
    print(f"hit in {took * 1e3:.2f} ms for {again.nbytes / 1e6:.0f} MB")
    print("engine:", features.engine.name)
