"""Quiet, fitting defaults: a choice by capability logs nothing; each decorator's
default bound fits its job; ``ucache(compress=True)`` goes to disk."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from twat_cache import acache, bcache, explain_selection, fcache, mcache, ucache

# The decorations users copy first: the README's first snippets and the seed README's.
FIRST_DECORATIONS: list[tuple[str, Any, dict[str, Any]]] = [
    ("readme mcache", mcache, {"maxsize": 256, "ttl": 60}),
    ("readme acache", acache, {"ttl": 600, "maxsize": 1000}),
    ("readme bcache", bcache, {"folder_name": "reports", "ttl": 3600, "size_limit": 2**30}),
    ("readme fcache", fcache, {"folder_name": "features", "mmap_mode": "r"}),
    ("seed mcache", mcache, {"maxsize": 128, "ttl": 60}),
    ("seed bcache", bcache, {"folder_name": "user_data_cache", "ttl": 3600}),
    ("seed fcache", fcache, {"folder_name": "array_processing_cache", "compress": True}),
    ("seed acache", acache, {"ttl": 300}),
    ("seed ucache", ucache, {"folder_name": "universal", "compress": True}),
    ("bare mcache", mcache, {}),
    ("ttl only", mcache, {"ttl": 5}),
]


@pytest.mark.parametrize(
    ("decorator", "options"),
    [(d, o) for _, d, o in FIRST_DECORATIONS],
    ids=[label for label, _, _ in FIRST_DECORATIONS],
)
def test_first_examples_log_no_warning(decorator, options, log, cache_root):
    """Decorating and calling with the options of the first examples logs no WARNING
    (ttl with LRU is served by whichever engine has both: a choice, not a fallback)."""

    def plain(x: int) -> int:
        return x + 1

    async def coro(x: int) -> int:
        return x + 1

    if decorator is acache:
        f = decorator(**options)(coro)
        assert asyncio.run(f(1)) == 2
        assert asyncio.run(f(1)) == 2
    else:
        f = decorator(**options)(plain)
        assert f(1) == f(1) == 2
    assert f.cache_info().hits == 1
    assert f.cache_parameters()["fallback"] is None
    assert log == []


def test_mcache_keeps_lru_caches_default_bound():
    """mcache's default maxsize is 128, as functools.lru_cache's."""

    @mcache
    def f(x: int) -> int:
        return x

    assert f.cache_parameters()["maxsize"] == 128


def test_acache_default_bound_holds_a_web_working_set(calls):
    """acache's default maxsize (4096) holds a 1,000-key working set: a second pass over
    it computes nothing, where lru_cache's 128 would recompute every key."""

    @acache
    async def handler(path: str) -> str:
        calls(path)
        return path.upper()

    async def two_passes() -> None:
        for _ in range(2):
            for i in range(1000):
                assert await handler(f"/item/{i}") == f"/ITEM/{i}"

    asyncio.run(two_passes())
    assert handler.cache_parameters()["maxsize"] == 4096
    assert len(calls) == 1000


def test_maxsize_environment_default_wins_over_acaches_bound(monkeypatch):
    """TWAT_CACHE_MAXSIZE, the user's own default, applies to acache too; maxsize=None
    given explicitly stays unbounded."""
    monkeypatch.setenv("TWAT_CACHE_MAXSIZE", "10")

    @acache
    async def f(x: int) -> int:
        return x

    @acache(maxsize=None, ttl=60)
    async def g(x: int) -> int:
        return x

    assert f.cache_parameters()["maxsize"] == 10
    assert g.cache_parameters()["maxsize"] is None


def test_ucache_compress_picks_a_persistent_engine(calls, cache_root):
    """ucache(compress=True) picks bcache's chain (compression only means something on
    disk): entries land under the cache root and survive a fresh registry."""
    from twat_cache.registry import registry

    def make():
        @ucache(compress=True, name="compressed")
        def f(x: int) -> str:
            calls(x)
            return "z" * 1000

        return f

    f = make()
    assert f(1) == "z" * 1000
    assert f.cache_parameters()["engine"] == "diskcache"
    assert "compress=True" in explain_selection(f)
    assert any(cache_root.rglob("*"))
    registry.reset()
    assert make()(1) == "z" * 1000
    assert calls == [1]


def test_ucache_compress_false_stays_in_memory():
    """compress=False asks for nothing: ucache keeps mcache's chain."""

    @ucache(compress=False)
    def f(x: int) -> int:
        return x

    assert f.cache_parameters()["engine"] in ("cachebox", "cachetools", "functools")
