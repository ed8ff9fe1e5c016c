"""The redis store on a real 3-primary Redis Cluster (valkey-server, slots assigned by the fixture).

Through the public decorators and ``CacheContext`` with ``redis_url="redis+cluster://..."``
or ``redis_client=``: values, call counts, ttl, locks, sizes and ``cache_clear``
across every node. No mocks.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from twat_cache import CacheContext, ConfigurationError, get_stats, mcache, ucache

pytestmark = pytest.mark.redis

#: These tests are about the cluster, not faults: on a loaded test machine a slow
#: answer is still an answer (the fault tests below set their own timeouts).
PATIENT = {"redis_connect_timeout": 5.0, "redis_timeout": 5.0}


def test_values_spread_over_every_node_and_hit(cluster_url, redis_cluster, calls):
    """60 keys land on all three primaries; a second pass is 60 hits and no computation."""

    @mcache(engine="redis", redis_url=cluster_url, name="spread", **PATIENT)
    def square(x):
        calls(x)
        return {"x": x * x}

    assert [square(i) for i in range(60)] == [{"x": i * i} for i in range(60)]
    assert [square(i) for i in range(60)] == [{"x": i * i} for i in range(60)]
    assert calls == list(range(60))
    assert square.cache_info().hits == 60
    per_node = redis_cluster.keys_per_node("twat_cache:6:spread:*")
    assert sum(per_node.values()) == 60
    assert all(count > 0 for count in per_node.values()), per_node
    assert square.cache_info().currsize == 60
    assert get_stats("spread")["size"] == 60
    assert get_stats("spread")["errors"] == 0


def test_clear_visits_every_primary_and_keeps_overlapping_names(cluster_url, redis_cluster):
    """cache_clear of "users" empties it on all nodes; "users:v2" keeps every entry."""

    @mcache(engine="redis", redis_url=cluster_url, name="users", **PATIENT)
    def users(x):
        return x

    @mcache(engine="redis", redis_url=cluster_url, name="users:v2", **PATIENT)
    def users_v2(x):
        return -x

    for i in range(40):
        users(i)
        users_v2(i)
    assert users.cache_info().currsize == 40
    assert users_v2.cache_info().currsize == 40
    users.cache_clear()
    assert sum(redis_cluster.keys_per_node("twat_cache:5:users:*").values()) == 0
    assert users.cache_info().currsize == 0
    assert users_v2.cache_info().currsize == 40
    assert [users_v2(i) for i in range(40)] == [-i for i in range(40)]
    assert users_v2.cache_info().hits == 40
    assert get_stats("users")["errors"] == get_stats("users:v2")["errors"] == 0


def test_ttl_expires_on_the_cluster(cluster_url, calls):
    """ttl=0.3: a hit at once, recomputed once the entry has expired."""

    @mcache(engine="redis", redis_url=cluster_url, name="cttl", ttl=0.3, **PATIENT)
    def f(x):
        calls(x)
        return x + 1

    assert [f(1), f(2), f(1), f(2)] == [2, 3, 2, 3]
    assert calls == [1, 2]
    time.sleep(0.5)
    assert [f(1), f(2)] == [2, 3]
    assert calls == [1, 2, 1, 2]


def test_async_function_on_the_cluster_computes_once(cluster_url, calls):
    """An async def over redis.asyncio's RedisCluster: 30 tasks on a cold key compute once."""

    @ucache(redis_url=cluster_url, name="acluster", **PATIENT)
    async def fetch(x):
        calls(x)
        await asyncio.sleep(0.05)
        return [x]

    async def main():
        first = await asyncio.gather(*(fetch(7) for _ in range(30)))
        rest = [await fetch(i) for i in range(20)]
        again = [await fetch(i) for i in range(20)]
        return first, rest, again

    first, rest, again = asyncio.run(main())
    assert get_stats("acluster")["errors"] == 0
    assert first == [[7]] * 30
    assert rest == again == [[i] for i in range(20)]
    assert sorted(calls) == list(range(20))
    assert fetch.cache_parameters()["engine"] == "redis"
    assert get_stats("acluster")["size"] == 20


def test_a_frozen_node_never_breaks_a_call_and_caching_resumes(cluster_url, redis_cluster, calls):
    """One primary SIGSTOPped: every call returns its value; after SIGCONT, hits come back."""

    @mcache(engine="redis", redis_url=cluster_url, name="cfrozen")
    def f(x):
        calls(x)
        return x - 1

    assert [f(i) for i in range(30)] == [i - 1 for i in range(30)]
    frozen = redis_cluster.ports[1]
    redis_cluster.freeze(frozen)
    try:
        assert [f(i) for i in range(30)] == [i - 1 for i in range(30)]
        assert get_stats("cfrozen")["breaker_trips"] >= 1
        assert get_stats("cfrozen")["errors"] >= 1
    finally:
        redis_cluster.thaw(frozen)
    deadline = time.monotonic() + 60
    while True:
        hits = f.cache_info().hits
        assert [f(i) for i in range(30)] == [i - 1 for i in range(30)]
        if f.cache_info().hits - hits == 30:
            break  # every key, on every node, is a hit again
        assert time.monotonic() < deadline, "caching never resumed after the node came back"
        time.sleep(0.2)
    assert get_stats("cfrozen")["breaker"] == "closed"


def test_context_on_the_cluster(cluster_url):
    """CacheContext(engine_name="redis") on a cluster: get, set, delete, contains, clear."""
    with CacheContext(engine_name="redis", redis_url=cluster_url, name="cctx") as c:
        for i in range(30):
            c.set(f"k{i}", {"i": i})
        assert c.get("k7") == {"i": 7}
        assert "k29" in c
        assert c.delete("k29") is True
        assert c.delete("k29") is False
        assert c.get("k29", default="gone") == "gone"
        c.clear()
        assert [c.get(f"k{i}") for i in range(30)] == [None] * 30


def test_lock_computes_once_across_processes_on_the_cluster(cluster_url, tmp_path):
    """Three processes on one cold key compute it once, under the cluster-held lock."""
    marker = tmp_path / "computed"
    code = f"""
import time
from twat_cache import mcache
@mcache(engine="redis", redis_url={cluster_url!r}, name="cxproc")
def build(x):
    with open({str(marker)!r}, "a") as fh:
        fh.write("x")
    time.sleep(0.5)
    return x * 3
print(build(5))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, text=True)
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=120)[0].strip() for proc in procs]
    assert outputs == ["15"] * 3
    assert marker.read_text() == "x"


def test_redis_client_given_ready_or_as_a_factory(redis_cluster, calls):
    """redis_client= takes a RedisCluster, or a factory called once, on the first call."""
    made: list[Any] = []

    def factory() -> Any:
        made.append(redis_cluster.client())
        return made[-1]

    @mcache(engine="redis", redis_client=factory, name="factory")
    def f(x):
        calls(x)
        return x * 2

    assert made == []  # not at decoration
    assert [f(i) for i in range(10)] == [i * 2 for i in range(10)]
    assert [f(i) for i in range(10)] == [i * 2 for i in range(10)]
    assert len(made) == 1
    assert calls == list(range(10))
    assert f.cache_info().currsize == 10

    ready = redis_cluster.client()

    @mcache(engine="redis", redis_client=ready, name="factory")
    def g(x):
        calls(("g", x))
        return -1

    assert [g(i) for i in range(10)] == [i * 2 for i in range(10)]  # f's entries
    assert len(calls) == 10
    g.cache_clear()
    assert f.cache_info().currsize == 0
    ready.close()
    made[0].close()


def test_asyncio_cluster_client_as_a_factory(redis_cluster, calls):
    """A redis.asyncio RedisCluster from a factory serves an async def, and cache_clear() too."""
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    made: list[Any] = []

    def factory() -> Any:
        nodes = [ClusterNode("127.0.0.1", port) for port in redis_cluster.ports]
        made.append(RedisCluster(startup_nodes=nodes))
        return made[-1]

    @ucache(redis_client=factory, engine="redis", name="afactory")
    async def f(x):
        calls(x)
        return x + 0.5

    async def main():
        first = [await f(i) for i in range(8)]
        again = [await f(i) for i in range(8)]
        await made[0].aclose()  # the user's client: the user closes it
        return first, again

    first, again = asyncio.run(main())
    assert first == again == [i + 0.5 for i in range(8)]
    assert calls == list(range(8))
    assert len(made) == 1
    assert sum(redis_cluster.keys_per_node("twat_cache:8:afactory:*").values()) == 8


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+cluster://127.0.0.1:0", "bad port"),
        ("redis+cluster://127.0.0.1:7000,", "bad host"),
        ("redis+cluster://127.0.0.1:7000/1", "no path"),
        ("redis+sentinel://127.0.0.1:26379", "service_name"),
        ("redis+sentinel://127.0.0.1:26379/m/x", "db 'x'"),
        ("redis+cluster://127.0.0.1:7000?ssl=1", "no query"),
    ],
)
def test_bad_deployment_urls_fail_at_decoration(url, reason):
    """A malformed cluster or sentinel URL is a ConfigurationError naming the field and value."""
    with pytest.raises(ConfigurationError) as info:

        @mcache(redis_url=url)
        def f(x):
            return x

    message = str(info.value)
    assert "redis_url" in message
    assert url in message
    assert reason in message


def test_bad_redis_client_fails_at_decoration():
    """redis_client= of a wrong type is refused at decoration, naming the field."""
    with pytest.raises(ConfigurationError, match="redis_client"):

        @mcache(redis_client=Path("/nope"))
        def f(x):
            return x


@pytest.fixture
def cli_main() -> Any:
    """The command line's ``main``, run in this process; twat-cache's logging restored after."""
    from loguru import logger

    from twat_cache.__main__ import main

    yield main
    logger.enable("twat_cache")  # main() silences it for the rest of a command-line process


def test_cli_lists_and_clears_caches_across_nodes(cluster_url, capsys, cli_main):
    """twat-cache list/stats/clear --redis-url see every node; clear empties one cache only."""
    import json

    main = cli_main

    @mcache(engine="redis", redis_url=cluster_url, name="cli")
    def f(x):
        return x

    @mcache(engine="redis", redis_url=cluster_url, name="cli:other")
    def g(x):
        return x

    for i in range(25):
        f(i)
    for i in range(4):
        g(i)
    assert main(["list", "--redis-url", cluster_url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {c["name"]: c["entries"] for c in listed["caches"]} == {"cli": 25, "cli:other": 4}
    assert main(["stats", "cli", "--redis-url", cluster_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["caches"] == [
        {"name": "cli", "engine": "redis", "entries": 25}
    ]
    assert main(["clear", "cli", "--redis-url", cluster_url, "--yes", "--json"]) == 0
    cleared = json.loads(capsys.readouterr().out)["caches"]
    assert cleared == [{"name": "cli", "removed": 25, "entries": 0}]
    assert f.cache_info().currsize == 0
    assert g.cache_info().currsize == 4
    assert main(["stats", "nope", "--redis-url", cluster_url]) == 2
    assert "no cache named 'nope'" in capsys.readouterr().err


def test_a_dead_cluster_or_sentinel_never_breaks_a_call(calls, log):
    """No node or sentinel answering: right values, errors counted, the breaker opens."""
    from tests.redis_servers import free_port

    dead_cluster = f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    dead_sentinel = f"redis+sentinel://127.0.0.1:{free_port()}/mymaster"

    @mcache(engine="redis", redis_url=dead_cluster, name="dead-cluster")
    def f(x):
        calls(x)
        return x * 4

    @mcache(engine="redis", redis_url=dead_sentinel, name="dead-sentinel")
    def g(x):
        calls(x)
        return x * 5

    assert [f(i % 3) for i in range(10)] == [(i % 3) * 4 for i in range(10)]
    assert [g(i % 3) for i in range(10)] == [(i % 3) * 5 for i in range(10)]
    assert len(calls) == 20
    for name in ("dead-cluster", "dead-sentinel"):
        stats = get_stats(name)
        assert stats["errors"] >= 10
        assert stats["breaker"] == "open"
    assert any("cache 'dead-cluster'" in message for message in log)
