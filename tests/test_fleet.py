"""Fleet statistics: ``get_stats(name)["fleet"]`` sums hits and misses over every process
using a shared store (disk, Redis), kept in the store and sent in batches."""

from __future__ import annotations

import pytest

from tests.conftest import run_python
from twat_cache import bcache, clear_cache, get_stats, mcache

_WORKER = """
from twat_cache import bcache
@bcache(name="fleet_demo", version="1", **{where!r})
def double(x):
    return 2 * x
for x in [1, 2, 3, 1, 2, 3, 1]:
    double(x)
"""


def _where(request: pytest.FixtureRequest, store: str) -> dict[str, str]:
    """Where the cache lives: the Redis test server, or a folder under the cache root."""
    if store == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    return {"folder_name": "fleet"}


@pytest.mark.parametrize("store", ["disk", "redis"])
def test_fleet_sums_every_process(request: pytest.FixtureRequest, store: str) -> None:
    """Two other processes (sent at exit) plus this one: the fleet has every call."""
    where = _where(request, store)
    run_python(_WORKER.format(where=where))  # 3 misses, 4 hits
    run_python(_WORKER.format(where=where))  # 7 hits

    @bcache(name="fleet_demo", version="1", **where)
    def double(x: int) -> int:
        return 2 * x

    for x in (1, 4):
        double(x)  # 1 hit, 1 miss here
    stats = get_stats("fleet_demo")
    assert (stats["hits"], stats["misses"]) == (1, 1)
    assert stats["fleet"] == {"hits": 12, "misses": 4}


@pytest.mark.parametrize("store", ["disk", "redis"])
def test_clear_resets_the_fleet(request: pytest.FixtureRequest, store: str) -> None:
    """cache_clear zeroes the fleet counters with the entries."""
    where = _where(request, store)

    @bcache(name="fleet_reset", **where)
    def inc(x: int) -> int:
        return x + 1

    inc(1)
    inc(1)
    assert get_stats("fleet_reset")["fleet"] == {"hits": 1, "misses": 1}
    clear_cache("fleet_reset")
    inc(1)
    assert get_stats("fleet_reset")["fleet"] == {"hits": 0, "misses": 1}


def test_memory_cache_has_no_fleet() -> None:
    """An in-process cache has no fleet: its stats say None."""

    @mcache(name="fleet_memory")
    def f(x: int) -> int:
        return x

    f(1)
    assert get_stats("fleet_memory")["fleet"] is None
