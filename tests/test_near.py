"""The near cache (``near=True``): Redis with an in-process copy kept coherent by the server.

Real valkey-server processes and real Python processes: another process's
``cache_refresh``, ``cache_delete`` or ``cache_clear`` must reach this
process's copy through the server's invalidation messages.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import Calls, run_python
from tests.redis_servers import _Processes, free_port
from twat_cache import ConfigurationError, get_stats, ucache

pytestmark = pytest.mark.redis

#: Generous: a busy 2-core machine, and the listener connects in the background.
_PATIENCE = 20.0


def _eventually(check: Callable[[], bool], what: str) -> None:
    """Wait until ``check()`` holds (no timing assert: only a generous upper bound)."""
    deadline = time.monotonic() + _PATIENCE
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {_PATIENCE} s: {what}")
        time.sleep(0.01)


def _gets(url: str) -> int:
    """GET commands the server has answered so far."""
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


def _echoed(func: Any, writes: int) -> None:
    """Wait until the server's invalidations for this process's own ``writes`` arrived.

    Every write reaches the listener as one invalidation message, a moment after the
    write returns; a copy kept before that message would be dropped by it. Tests that
    assert a copy is held wait for their own writes to echo first.
    """
    _eventually(lambda: func.engine.invalidations >= writes, f"{writes} writes echoed")


def _tracked(func: Any) -> Any:
    """Call nothing; wait until the near layer listens for invalidations."""
    func.engine._start()
    _eventually(lambda: func.engine.tracking, "the near cache listens")
    return func


_OTHER = """
import os
from twat_cache import ucache
@ucache(redis_url={url!r}, near=True, name={name!r})
def value(x):
    return (x, os.environ["VALUE"])
{action}
"""


def test_repeated_hit_is_served_from_process_memory(redis_url: str, calls: Calls) -> None:
    """After the first read, hits come from this process's memory: no GET reaches the server."""

    @ucache(redis_url=redis_url, near=True, name="near_hits")
    def double(x: int) -> int:
        calls(x)
        return 2 * x

    _tracked(double)
    assert double(4) == 8  # computed, stored on the server
    _echoed(double, 1)
    assert double(4) == 8  # read from the server, kept here
    before = _gets(redis_url)
    assert [double(4) for _ in range(50)] == [8] * 50
    assert _gets(redis_url) == before
    assert calls == [4]
    assert double.cache_info().hits == 51
    assert get_stats("near_hits")["near"] is True


@pytest.mark.parametrize(
    ("action", "expect_recompute"),
    [
        ("value.cache_refresh(1)", False),
        ("value.cache_delete(1)", True),
        ("value.cache_clear()", True),
    ],
)
def test_another_process_invalidates_this_copy(
    redis_url: str, action: str, expect_recompute: bool
) -> None:
    """A refresh, delete or clear in another process drops this process's copy."""
    computed: list[int] = []

    @ucache(redis_url=redis_url, near=True, name="near_shared")
    def value(x: int) -> tuple[int, str]:
        computed.append(x)
        return (x, os.environ.get("VALUE", "here"))

    _tracked(value)
    assert value(1) == (1, "here")
    _echoed(value, 1)
    assert value(1) == (1, "here")  # kept in memory now
    assert len(value.engine.mapping) == 1
    run_python(_OTHER.format(url=redis_url, name="near_shared", action=action), {"VALUE": "there"})
    _eventually(lambda: not value.engine.mapping, "the copy is dropped")
    if expect_recompute:
        assert value(1) == (1, "here")
        assert computed == [1, 1]
    else:
        assert value(1) == (1, "there")  # the other process's fresh value
        assert computed == [1]


def test_write_elsewhere_replaces_the_copy(redis_url: str) -> None:
    """Another process storing a new value for a key: this process then reads that value."""

    @ucache(redis_url=redis_url, near=True, name="near_set")
    def value(x: int) -> tuple[int, str]:
        return (x, "here")

    _tracked(value)
    assert value(2) == (2, "here")
    assert value(2) == (2, "here")
    script = _OTHER.format(url=redis_url, name="near_set", action="value.cache_delete(2)\nvalue(2)")
    run_python(script, {"VALUE": "there"})
    _eventually(lambda: value(2) == (2, "there"), "the other process's value is read")


def test_falls_back_to_plain_redis_when_it_cannot_track(
    cluster_url: str, log: list[str], calls: Calls
) -> None:
    """A deployment the near layer cannot track (a cluster) works as plain Redis, logged once."""

    @ucache(redis_url=cluster_url, near=True, name="near_cluster")
    def triple(x: int) -> int:
        calls(x)
        return 3 * x

    assert [triple(1), triple(1), triple(2)] == [3, 3, 6]
    assert calls == [1, 2]
    assert not triple.engine.mapping
    assert get_stats("near_cluster")["near"] is False
    assert sum("near cache of 'near_cluster' is off" in m for m in log) == 1


def test_near_maxsize_bounds_the_copy(redis_url: str) -> None:
    """At most ``near_maxsize`` copies are kept; the rest are still served from Redis."""

    @ucache(redis_url=redis_url, near=True, near_maxsize=3, name="near_small")
    def ident(x: int) -> int:
        return x

    _tracked(ident)
    assert [ident(x) for x in range(10)] == list(range(10))
    _echoed(ident, 10)
    assert [ident(x) for x in range(10)] == list(range(10))
    assert len(ident.engine.mapping) == 3
    assert ident.cache_info().currsize == 10


def test_ttl_copy_expires_with_the_entry(redis_url: str, calls: Calls) -> None:
    """A copy never outlives the entry's ttl."""

    @ucache(redis_url=redis_url, near=True, ttl=0.3, name="near_ttl")
    def ident(x: int) -> int:
        calls(x)
        return x

    _tracked(ident)
    ident(1)
    ident(1)
    time.sleep(0.4)
    ident(1)
    assert calls == [1, 1]


def test_process_local_keys_are_kept_here(redis_url: str) -> None:
    """An argument only this process can name (an object keyed by identity) is cached locally."""

    class Thing:
        pass

    seen: list[Thing] = []

    @ucache(redis_url=redis_url, near=True, name="near_local")
    def use(thing: Thing) -> int:
        seen.append(thing)
        return len(seen)

    _tracked(use)
    thing = Thing()
    assert use(thing) == use(thing) == 1
    assert use.cache_delete(thing) is True
    assert use(thing) == 2


def test_async_function_with_near(redis_url: str, calls: Calls) -> None:
    """Coroutines read through the near layer too; repeated hits come from memory."""

    @ucache(redis_url=redis_url, near=True, name="near_async")
    async def double(x: int) -> int:
        calls(x)
        return 2 * x

    _tracked(double)

    async def main() -> list[int]:
        return [await double(5) for _ in range(4)]

    assert asyncio.run(double(5)) == 10
    _echoed(double, 1)
    assert asyncio.run(main()) == [10] * 4
    assert calls == [5]
    assert len(double.engine.mapping) == 1


def test_near_maxsize_must_be_positive() -> None:
    """near_maxsize=0 is refused at decoration, naming the field."""
    with pytest.raises(ConfigurationError, match="near_maxsize"):
        ucache(redis_url="redis://127.0.0.1:1", near=True, near_maxsize=0)


def test_falls_back_when_the_server_refuses_tracking(
    tmp_path: Path, log: list[str], calls: Calls
) -> None:
    """A server without CLIENT (renamed away): plain Redis, correct results, logged once."""
    servers = _Processes(tmp_path)
    port = free_port()
    servers.spawn(port, "--rename-command", "CLIENT", "")
    try:
        servers.wait_ping(port)
        url = f"redis://127.0.0.1:{port}/0"

        @ucache(redis_url=url, near=True, name="near_refused")
        def triple(x: int) -> int:
            calls(x)
            return 3 * x

        triple.engine._start()
        message = "near cache of 'near_refused' is off, using plain Redis: the server cannot"
        _eventually(lambda: any(message in m for m in log), "the fallback is logged")
        assert [triple(1), triple(1), triple(2), triple(2)] == [3, 3, 6, 6]
        assert calls == [1, 2]
        assert not triple.engine.mapping
        assert sum(message in m for m in log) == 1
    finally:
        servers.stop()


def test_invalidation_finds_copies_of_a_non_ascii_cache_name(redis_url: str) -> None:
    """A cache named with non-ASCII text: a key deleted on the server drops this copy."""

    @ucache(redis_url=redis_url, near=True, name="prix-été")
    def price(x: int) -> int:
        return x

    _tracked(price)
    price(1)
    _echoed(price, 1)
    price(1)
    assert len(price.engine.mapping) == 1
    client = redis.Redis.from_url(redis_url)
    client.delete(*client.keys(price.engine.remote.prefix.encode() + b"*"))
    _eventually(lambda: not price.engine.mapping, "the copy is dropped")


def test_tuples_spelling_key_markers_never_share_an_entry(redis_url: str, calls: Calls) -> None:
    """A list, a dict or a -0.0 is keyed on the server so that no tuple a caller
    passes (one spelling the marker's name, say) can reach its entry."""

    def echo(x: Any) -> Any:
        calls(x)
        return x

    cached = _tracked(ucache(redis_url=redis_url, near=True, name="near_markers")(echo))
    pairs = [
        ([1, 2], ("<list>", (1, 2))),
        ({"a": 1}, ("<dict>", frozenset({("a", 1)}))),
        ([-0.0], ("<list>", ("<-0.0>",))),
        ({1}, ("<set>", frozenset({1}))),
    ]
    for value, forged in pairs:
        assert cached(value) == value
        assert cached(forged) == forged
    assert calls == [x for pair in pairs for x in pair]
