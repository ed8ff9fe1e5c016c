"""The global registry: get_stats, clear_cache, list_caches."""

from __future__ import annotations

import pytest

from twat_cache import CacheOperationError, bcache, clear_cache, get_stats, list_caches, mcache
from twat_cache.registry import registry


def test_stats_for_one_and_all(calls):
    """get_stats reports hits, misses, hit_rate, size, maxsize, engine and errors."""

    @mcache(name="squares", maxsize=10)
    def square(x):
        calls(x)
        return x * x

    square(2), square(2), square(2), square(3)
    stats = get_stats("squares")
    assert stats["hits"] == 2
    assert stats["misses"] == 2
    assert stats["hit_rate"] == 0.5
    assert stats["size"] == 2
    assert stats["maxsize"] == 10
    assert stats["engine"] == "cachebox"
    assert stats["errors"] == 0
    assert get_stats() == {"squares": stats}
    assert list_caches() == ["squares"]


def test_clear_one_and_all(calls):
    """clear_cache(name) clears one cache; clear_cache() clears every cache."""

    @mcache(name="a")
    def a(x):
        calls(("a", x))
        return x

    @mcache(name="b")
    def b(x):
        calls(("b", x))
        return x

    a(1), b(1)
    clear_cache("a")
    a(1), b(1)
    assert calls == [("a", 1), ("b", 1), ("a", 1)]
    clear_cache()
    a(1), b(1)
    assert calls[-2:] == [("a", 1), ("b", 1)]
    assert get_stats("a")["size"] == 1


def test_unknown_name_is_an_error():
    """An unknown cache name raises, listing the known ones, rather than returning zeros."""

    @mcache(name="known")
    def f():
        return 1

    with pytest.raises(CacheOperationError, match="known"):
        get_stats("unknown")
    with pytest.raises(CacheOperationError):
        clear_cache("unknown")


def test_default_name_is_module_and_qualname():
    """Without name=, a cache is registered under module.qualname."""

    @mcache
    def f():
        return 1

    f()
    assert f"{__name__}.test_default_name_is_module_and_qualname.<locals>.f" in list_caches()


def test_redefined_function_gets_a_fresh_cache(calls):
    """Re-running a definition (a notebook cell) starts a fresh cache under the same name."""
    results = []
    for _ in range(2):

        @mcache
        def f(x):
            calls(x)
            return x + 1

        results.append(f(1))
    assert results == [2, 2]
    assert calls == [1, 1]
    assert len(list_caches()) == 1


def test_closures_with_other_captured_values_are_other_caches(calls):
    """make(1) and make(100) are two functions: two caches, each listed and cleared."""

    def make(offset):
        @mcache
        def f(x):
            calls(x)
            return x + offset

        return f

    one, hundred = make(1), make(100)
    assert [one(1), hundred(1), one(1)] == [2, 101, 2]
    assert len(list_caches()) == 2
    clear_cache()
    assert one.cache_info().currsize == hundred.cache_info().currsize == 0


def _tagged(calls):
    @bcache(name="tag", folder_name="tags")
    def tag(x):
        calls(x)
        return x

    return tag


def test_clear_cache_reaches_a_persistent_cache_on_disk(calls, cache_root):
    """clear_cache("tag") in a process that never decorated "tag" (the registry
    emptied, as in a fresh process) finds the cache's manifest under the cache
    root and drops its entries: the next process recomputes them."""
    tag = _tagged(calls)
    tag(1), tag(2)
    registry.reset()
    assert list_caches() == []
    clear_cache("tag")
    tag = _tagged(calls)
    tag(1), tag(2)
    assert calls == [1, 2, 1, 2]


def test_unknown_name_lists_caches_live_and_on_disk(calls, cache_root):
    """A name matching no live cache and no cache on disk raises CacheOperationError
    naming both kinds of known caches; the caches on disk keep their entries."""
    tag = _tagged(calls)
    tag(1)
    registry.reset()

    @mcache(name="live")
    def live(x):
        return x

    with pytest.raises(CacheOperationError, match=r"'nope'.*known caches: live, tag"):
        clear_cache("nope")
    tag = _tagged(calls)
    tag(1)
    assert calls == [1]
