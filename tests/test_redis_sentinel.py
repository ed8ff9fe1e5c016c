"""The redis store behind Sentinel: a master, a replica and three sentinels (valkey-server).

``redis_url="redis+sentinel://host:port,.../service"`` finds the master through
the sentinels; when the master is killed and the replica promoted, calls keep
returning right values and caching resumes by itself. No mocks.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from tests.redis_servers import wait_for
from twat_cache import CacheContext, get_stats, mcache, ucache

pytestmark = pytest.mark.redis

#: Correctness tests: on a loaded test machine a slow answer is still an answer.
PATIENT = {"redis_connect_timeout": 5.0, "redis_timeout": 5.0}


def _keys_on(port: int, pattern: str) -> int:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    try:
        return sum(1 for _ in client.scan_iter(match=pattern))
    finally:
        client.close()


def test_values_go_to_the_master_found_through_sentinel(redis_sentinel, calls):
    """Entries are stored on the master the sentinels name, and read back as hits."""

    @mcache(engine="redis", redis_url=redis_sentinel.url, name="via_sentinel", **PATIENT)
    def f(x):
        calls(x)
        return {"x": x}

    assert [f(i) for i in range(10)] == [{"x": i} for i in range(10)]
    assert [f(i) for i in range(10)] == [{"x": i} for i in range(10)]
    assert calls == list(range(10))
    assert f.cache_info().hits == 10
    master = redis_sentinel.master_port()
    assert _keys_on(master, "twat_cache:12:via_sentinel:*") == 10
    assert get_stats("via_sentinel")["size"] == 10


def test_async_and_context_through_sentinel(redis_sentinel, calls):
    """An async def (redis.asyncio's Sentinel) and CacheContext share entries via Sentinel."""

    @ucache(redis_url=redis_sentinel.url, name="asentinel", **PATIENT)
    async def f(x):
        calls(x)
        return x * 3

    async def main():
        return [await f(i) for i in range(5)], [await f(i) for i in range(5)]

    first, again = asyncio.run(main())
    assert first == again == [i * 3 for i in range(5)]
    assert calls == list(range(5))
    with CacheContext(engine_name="redis", redis_url=redis_sentinel.url, name="asentinel") as c:
        assert len(c.engine) == 5
        c.clear()
        assert len(c.engine) == 0


def _hits_again(f: Any, key: int, within: float) -> bool:
    """True once ``f(key)`` is served from the cache again (two calls per probe)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        before = f.cache_info().hits
        f(key)
        f(key)
        if f.cache_info().hits > before:
            return True
        time.sleep(0.2)
    return False


def test_failover_never_fails_a_call_and_caching_resumes(redis_sentinel, calls):
    """Master killed: every call returns its value; once the replica is promoted, hits resume."""

    @mcache(engine="redis", redis_url=redis_sentinel.url, name="failover")
    def f(x):
        calls(x)
        return x * 7

    assert [f(i) for i in range(5)] == [i * 7 for i in range(5)]
    old = redis_sentinel.kill_master()
    # Calls during the failover: right values, whatever the cache can do meanwhile.
    deadline = time.monotonic() + 60
    i = 0
    while redis_sentinel.master_port() == old:
        assert f(i % 12) == (i % 12) * 7
        i += 1
        assert time.monotonic() < deadline, "the sentinels never promoted the replica"
        time.sleep(0.05)
    new = redis_sentinel.master_port()
    assert new == redis_sentinel.replica
    wait_for("the promoted replica to accept writes", lambda: _writable(new))
    assert _hits_again(f, 100, within=60.0)
    assert [f(i) for i in range(5)] == [i * 7 for i in range(5)]
    assert _keys_on(new, "twat_cache:8:failover:*") >= 1
    assert get_stats("failover")["breaker"] == "closed"


def _writable(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    try:
        return bool(client.info("replication")["role"] == "master")
    finally:
        client.close()
