"""Persistent caching with bcache: a second process finds the first one's results."""

from __future__ import annotations

import subprocess
import sys
import time

from twat_cache import bcache, get_stats


@bcache(folder_name="reports", ttl=3600, name="example.report")
def monthly_report(month: str) -> list[dict[str, object]]:
    """Pretend to run a slow query."""
    time.sleep(0.3)
    return [{"month": month, "row": i} for i in range(3)]


if __name__ == "__main__":
    if sys.argv[1:] == ["child"]:
        start = time.perf_counter()
        rows = monthly_report("2026-10")
        print(f"child: {len(rows)} rows in {time.perf_counter() - start:.3f}s, engine=", end="")
        print(monthly_report.engine.name)
        sys.exit(0)
    monthly_report("2026-10")  # computed and written to disk
    print("parent hits:", get_stats("example.report")["hits"])
    subprocess.run([sys.executable, __file__, "child"], check=True)  # a fresh process: a hit
    print("entries on disk:", monthly_report.cache_info().currsize)
