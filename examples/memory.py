"""In-memory caching of a slow lookup with mcache: hits, stats and per-entry control."""

from __future__ import annotations

import time

from twat_cache import get_stats, mcache


@mcache(maxsize=256, name="exchange_rate")
def exchange_rate(base: str, quote: str = "USD") -> float:
    """Pretend to ask a slow service for a rate."""
    time.sleep(0.2)
    return {"EUR": 1.08, "GBP": 1.27}.get(base, 1.0)


if __name__ == "__main__":
    start = time.perf_counter()
    print("first call:", exchange_rate("EUR"))
    miss = time.perf_counter() - start
    start = time.perf_counter()
    print("second call:", exchange_rate(base="EUR", quote="USD"))  # same entry
    hit = time.perf_counter() - start
    print(f"hit faster than miss: {hit < miss / 100}")
    stats = get_stats("exchange_rate")
    print(f"hits={stats['hits']} misses={stats['misses']} engine={stats['engine']}")
    print("deleted:", exchange_rate.cache_delete("EUR"))
