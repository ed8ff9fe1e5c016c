"""Eviction policies, maxsize and ttl of the memory engines, through ``mcache``.

The store contract every engine shares is ``test_contract.py``; these are the
in-process engines' own options (policy, bound) as a decorated function sees them.
"""

from __future__ import annotations

import time

import pytest

from twat_cache import mcache

MEMORY_ENGINES = ["cachebox", "cachetools", "functools"]


@pytest.fixture(params=MEMORY_ENGINES)
def engine_name(request):
    return request.param


def test_none_is_a_cacheable_value(engine_name, calls):
    """A function returning None is cached like any other value."""

    @mcache(engine=engine_name)
    def nothing(x):
        calls(x)

    assert nothing(1) is None
    assert nothing(1) is None
    assert calls == [1]
    assert nothing.engine.name == engine_name


def test_maxsize_bounds_entries_lru(engine_name, calls):
    """With maxsize=2 and LRU, the least recently used entry is evicted."""

    @mcache(engine=engine_name, maxsize=2)
    def f(x):
        calls(x)
        return x

    f(1), f(2), f(1), f(3)  # 2 is least recently used
    f(1)
    assert calls == [1, 2, 3]
    f(2)
    assert calls == [1, 2, 3, 2]
    assert f.cache_info().currsize == 2


def test_maxsize_zero_stores_nothing(engine_name, calls):
    """maxsize=0 caches nothing, as with lru_cache(maxsize=0)."""

    @mcache(engine=engine_name, maxsize=0)
    def f(x):
        calls(x)
        return x

    f(1), f(1)
    assert calls == [1, 1]


def test_unbounded(engine_name, calls):
    """maxsize=None never evicts."""

    @mcache(engine=engine_name, maxsize=None)
    def f(x):
        calls(x)
        return x

    for i in range(500):
        f(i)
    for i in range(500):
        f(i)
    assert len(calls) == 500


@pytest.mark.parametrize(
    ("engine_name", "policy"),
    [("cachebox", "ttl"), ("cachetools", "lru"), ("functools", "lru")],
)
def test_ttl_expires_entries(engine_name, policy, calls):
    """An entry older than ttl is recomputed."""

    @mcache(engine=engine_name, ttl=0.05, policy=policy)
    def f(x):
        calls(x)
        return x

    f(1), f(1)
    assert calls == [1]
    time.sleep(0.1)
    f(1)
    assert calls == [1, 1]
    assert f.engine.name == engine_name


@pytest.mark.parametrize(
    ("engine_name", "policies"),
    [
        ("cachebox", ["lru", "lfu", "fifo", "rr"]),
        ("cachetools", ["lru", "lfu", "fifo", "rr"]),
        ("functools", ["lru", "fifo"]),
    ],
)
def test_policies_keep_maxsize(engine_name, policies, calls):
    """Every policy an engine has keeps at most maxsize entries and serves hits."""
    for policy in policies:

        @mcache(engine=engine_name, policy=policy, maxsize=3)
        def f(x):
            calls(x)
            return x * 2

        assert f.engine.name == engine_name, policy
        for i in range(10):
            assert f(i) == i * 2
        assert f.cache_info().currsize == 3, policy
        assert f(9) == 18
        assert f.cache_info().hits >= 1, policy


def test_fifo_evicts_oldest_even_if_used(calls):
    """FIFO evicts by insertion order, not by use."""

    @mcache(engine="functools", policy="fifo", maxsize=2)
    def f(x):
        calls(x)
        return x

    f(1), f(2), f(1), f(3), f(1)
    assert calls == [1, 2, 3, 1]


def test_lfu_keeps_frequent_entries(calls):
    """LFU evicts the least frequently used entry."""

    @mcache(engine="cachebox", policy="lfu", maxsize=2)
    def f(x):
        calls(x)
        return x

    f(1), f(1), f(1), f(2), f(3), f(1)
    assert calls == [1, 2, 3]
