"""CacheContext and engine_context: one engine by name, the decorators' keys, closed on exit."""

from __future__ import annotations

import asyncio

import pytest

from twat_cache import (
    CacheContext,
    ConfigurationError,
    acache,
    engine_context,
    mcache,
)


@pytest.mark.parametrize("engine", ["cachebox", "cachetools", "functools"])
def test_dict_like_operations(engine):
    """get/set/delete/clear/in, and get(k, default=...) on a miss."""
    with CacheContext(engine_name=engine, maxsize=100) as c:
        c.set("k", {"v": 1})
        assert c.get("k") == {"v": 1}
        assert "k" in c
        assert c.get("missing") is None
        assert c.get("missing", default="fallback") == "fallback"
        assert c.delete("k") is True
        assert c.delete("k") is False
        assert "k" not in c
        c.set([1, 2], "unhashable keys work")
        assert c.get([1, 2]) == "unhashable keys work"
        c.clear()
        assert c.get([1, 2]) is None
        assert c.engine.name == engine


def test_context_sees_decorator_entries_and_the_other_way_round(calls):
    """Same name, same memory cache: f(k) and c.get(k) are one entry."""

    @mcache(name="shared")
    def f(x):
        calls(x)
        return x * 2

    assert f(3) == 6
    with engine_context("cachebox", name="shared") as c:
        assert c.get(3) == 6
        c.set(4, "written by the context")
    assert f(4) == "written by the context"
    assert calls == [3]


def test_context_created_first_is_used_by_a_later_decorator(calls):
    """A context made before the decorator registers the cache the decorator then joins."""
    with CacheContext("functools", name="early") as c:
        c.set("a", 1)

        @mcache(name="early")
        def f(x):
            calls(x)
            return 0

        assert f("a") == 1
    assert calls == []


def test_async_engine_context(calls):
    """aiocache through `async with` and the a-methods; its sync methods see the same entries."""

    @acache(name="aio-shared")
    async def f(x):
        calls(x)
        return x + 1

    async def main():
        assert await f(1) == 2
        async with CacheContext("aiocache", name="aio-shared") as c:
            assert await c.aget(1) == 2
            assert await c.acontains(1)
            await c.aset(5, "ctx")
            assert await c.aget("missing", default=0) == 0
            assert c.get(1) == 2
        assert await f(5) == "ctx"
        async with CacheContext("aiocache", name="aio-shared") as c:
            assert await c.adelete(5) is True
            await c.aclear()
            assert await c.aget(1) is None

    asyncio.run(main())
    assert calls == [1]


def test_async_methods_on_a_sync_engine():
    """Every engine offers the a-methods; a memory engine answers without a thread."""

    async def main():
        async with CacheContext("cachetools") as c:
            await c.aset("k", 1)
            assert await c.aget("k") == 1
            assert await c.adelete("k") is True
            await c.aclear()

    asyncio.run(main())


def test_resources_are_closed_on_exit(redis_url):
    """A redis context releases its connection pool when the last user closes."""
    with CacheContext("redis", redis_url=redis_url, name="closing") as c:
        c.set("k", 1)
        server = c.engine.server
        assert server.users == 1
    assert server.users == 0
    assert c.engine._closed is True
    with CacheContext("redis", redis_url=redis_url, name="closing") as again:
        assert again.get("k") == 1


def test_bad_options_fail_at_construction():
    """The context validates like a decorator: unknown engines and options are errors."""
    with pytest.raises(ConfigurationError, match="not a registered engine"):
        CacheContext("nope")
    with pytest.raises(ConfigurationError, match="maxsize"):
        CacheContext("functools", maxsize=-1)
