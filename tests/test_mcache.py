"""mcache on functions, coroutines and methods, with the whole wrapper API of API.md section 2."""

from __future__ import annotations

import asyncio
import gc
import inspect
import weakref
from typing import Any, ClassVar

import pytest

from twat_cache import (
    CacheConfig,
    CacheInfo,
    CacheKeyError,
    ConfigurationError,
    bcache,
    get_stats,
    mcache,
    register_engine,
)
from twat_cache.engines.memory import MemoryStore


def test_bare_and_called_forms(calls):
    """@mcache and @mcache(...) both cache and keep name, doc and signature."""

    @mcache
    def bare(x: int, y: int = 2) -> int:
        """Add."""
        calls(x)
        return x + y

    @mcache(maxsize=4)
    def called(x: int) -> int:
        calls(x)
        return -x

    assert bare(1) == bare(1) == 3
    assert called(5) == called(5) == -5
    assert calls == [1, 5]
    assert bare.__name__ == "bare"
    assert bare.__doc__ == "Add."
    assert inspect.signature(bare) == inspect.signature(bare.__wrapped__)
    assert list(inspect.signature(bare).parameters) == ["x", "y"]
    assert bare.__wrapped__(1) == 3
    assert called.cache_info().maxsize == 4


def test_wrapper_api(calls):
    """cache_info, cache_clear, cache_parameters, cache_delete, cache_refresh, cache_bypass."""
    counter = iter(range(100))

    @mcache
    def f(x):
        calls(x)
        return (x, next(counter))

    first = f(1)
    assert f(1) == first
    assert f.cache_info() == CacheInfo(hits=1, misses=1, maxsize=128, currsize=1)
    assert f.cache_bypass(1) != first
    assert f(1) == first  # bypass touched no entry
    refreshed = f.cache_refresh(1)
    assert refreshed != first
    assert f(1) == refreshed
    assert f.cache_delete(1) is True
    assert f.cache_delete(1) is False
    assert f(1) not in (first, refreshed)
    params = f.cache_parameters()
    assert params["engine"] == "cachebox"
    assert params["maxsize"] == 128
    assert params["name"].endswith("test_wrapper_api.<locals>.f")
    f.cache_clear()
    assert f.cache_info() == CacheInfo(hits=0, misses=0, maxsize=128, currsize=0)


def test_cache_delete_with_keyword_spelling(calls):
    """cache_delete takes the call's arguments in any spelling."""

    @mcache
    def f(a, b=2):
        calls(a)
        return a + b

    f(1)
    assert f.cache_delete(a=1, b=2) is True
    f(1)
    assert calls == [1, 1]


def test_user_exceptions_pass_through_and_are_never_cached(calls):
    """An exception from the function reaches the caller unchanged; the next call retries."""
    error = ValueError("boom")

    @mcache
    def f(x):
        calls(x)
        if len(calls) == 1:
            raise error
        return x

    with pytest.raises(ValueError, match="boom") as info:
        f(1)
    assert info.value is error
    assert f(1) == 1
    assert f(1) == 1
    assert calls == [1, 1]


def test_async_functions_cache_the_awaited_result(calls):
    """An async def stays a coroutine function; the result is cached, never the coroutine."""

    @mcache
    async def fetch(x):
        calls(x)
        await asyncio.sleep(0)
        return {"x": x}

    assert inspect.iscoroutinefunction(fetch)

    async def main():
        return [await fetch(1), await fetch(1), await fetch(2)]

    assert asyncio.run(main()) == [{"x": 1}, {"x": 1}, {"x": 2}]
    assert calls == [1, 2]
    assert fetch.cache_info().hits == 1
    assert asyncio.run(fetch.cache_refresh(1)) == {"x": 1}
    assert calls == [1, 2, 1]


class Account:
    instances_made = 0

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.lookups = 0

    @mcache
    def balance(self, currency: str) -> str:
        self.lookups += 1
        return f"{self.owner}:{currency}"

    @mcache
    @classmethod
    def make(cls, owner: str) -> Account:
        cls.instances_made += 1
        return cls(owner)

    @mcache
    @staticmethod
    def rate(currency: str) -> float:
        return {"EUR": 1.1}.get(currency, 1.0)


def test_methods_cache_per_instance():
    """Each instance gets its own results; a method never returns another instance's value."""
    a, b = Account("a"), Account("b")
    assert a.balance("EUR") == "a:EUR"
    assert b.balance("EUR") == "b:EUR"
    assert a.balance("EUR") == "a:EUR"
    assert (a.lookups, b.lookups) == (1, 1)


def test_methods_do_not_keep_instances_alive():
    """A cached method holds instances weakly; their entries go when they do."""
    account = Account("gone")
    account.balance("EUR")
    ref = weakref.ref(account)
    size_before = Account.balance.cache_info().currsize
    del account
    gc.collect()
    assert ref() is None
    assert Account.balance.cache_info().currsize == size_before - 1


def test_new_instance_at_reused_address_gets_its_own_value():
    """Entries of a dead instance are dropped, so an id reused by a new object never hits."""
    seen = []
    for i in range(50):
        acc = Account(f"o{i}")
        seen.append(acc.balance("X"))
        del acc
    assert seen == [f"o{i}:X" for i in range(50)]


def test_classmethod_and_staticmethod():
    """mcache works above @classmethod and @staticmethod."""
    Account.instances_made = 0
    first = Account.make("x")
    assert Account.make("x") is first
    assert Account.instances_made == 1
    assert Account.rate("EUR") == Account.rate("EUR") == 1.1
    assert Account.rate.cache_info().hits == 1


class Keyed:
    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.calls = 0

    def __cache_key__(self) -> int:
        return self.ident

    @mcache
    def value(self) -> int:
        self.calls += 1
        return self.ident * 10


def test_instances_with_cache_key_share_entries():
    """Instances with equal __cache_key__() share entries."""
    a, b = Keyed(1), Keyed(1)
    assert a.value() == b.value() == 10
    assert (a.calls, b.calls) == (1, 0)


class Slotted:
    __slots__ = ("x",)

    def __init__(self, x: int) -> None:
        self.x = x

    @mcache
    def double(self) -> int:
        return self.x * 2


def test_instances_without_weakref_support_get_a_clear_error():
    """An instance that cannot be held weakly asks for __cache_key__ or ignore=('self',)."""
    with pytest.raises(CacheKeyError, match="__cache_key__"):
        Slotted(2).double()


def test_shared_name_shares_one_cache(calls):
    """Two functions with the same name= hit the same entries."""

    @mcache(name="shared")
    def first(x):
        calls(("first", x))
        return x * 2

    @mcache(name="shared")
    def second(x):
        calls(("second", x))
        return x * 2

    assert first(3) == 6
    assert second(3) == 6
    assert calls == [("first", 3)]
    assert get_stats("shared")["hits"] == 1
    assert get_stats("shared")["misses"] == 1


@pytest.mark.parametrize("deco", ["mcache", "bcache"])
def test_a_shared_name_refuses_a_function_with_other_parameters(deco, calls):
    """f(a, b) and g(a, *, c) under one name: g(1, c=2) had f(1, b=2)'s key, and was served
    f's value. Refused at decoration, naming the cache and both parameter lists; functions
    with the same parameters (other defaults, another body) still share."""
    make = {"mcache": mcache, "bcache": bcache}[deco]

    @make(name="shared", version="1")
    def f(a, b=1):
        calls("f")
        return ("f", a, b)

    with pytest.raises(ConfigurationError, match=r"'shared'.*f\(a, b\).*g\(a, \*, c\)"):

        @make(name="shared", version="1")
        def g(a, *, c=1):
            return ("g", a, c)

    @make(name="shared", version="1")
    def h(x, y=5):  # the same kinds of parameter under other names: keyed alike, shared
        calls("h")
        return ("f", x, y)

    assert f(1, b=2) == ("f", 1, 2)
    assert h(1, 2) == ("f", 1, 2)
    assert calls == ["f"]


def test_disable_calls_straight_through(monkeypatch, calls):
    """TWAT_CACHE_DISABLE=1 makes decorators call through, with the same attributes."""
    monkeypatch.setenv("TWAT_CACHE_DISABLE", "1")

    @mcache
    def f(x):
        calls(x)
        return x

    @mcache
    async def g(x):
        calls(x)
        return x

    assert f(1) == f(1) == 1
    assert asyncio.run(g(2)) == 2
    assert inspect.iscoroutinefunction(g)
    assert calls == [1, 1, 2]
    assert f.cache_info().hits == 0
    assert f.cache_parameters()["engine"] == "disabled"
    assert f.cache_delete(1) is False
    assert f.cache_clear() is None


class FlakyEngine(MemoryStore):
    """A memory engine whose storage fails the way a broken cache would."""

    name: ClassVar[str] = "flaky"

    class _Broken(dict[Any, Any]):
        def __getitem__(self, key):
            raise OSError("disk on fire")

        def __setitem__(self, key, value):
            raise OSError("disk on fire")

    def make_mapping(self, config: CacheConfig) -> Any:
        return self._Broken()


def test_engine_faults_never_reach_the_caller(calls, log):
    """A failing engine: every call returns the right value, faults logged once and counted."""
    register_engine(FlakyEngine)

    @mcache(engine="flaky")
    def f(x):
        calls(x)
        return x + 1

    assert [f(1), f(1), f(2)] == [2, 2, 3]
    assert calls == [1, 1, 2]
    stats = get_stats(f.cache_parameters()["name"])
    assert stats["errors"] == 3
    assert len([m for m in log if "disk on fire" in m]) == 1


def test_unpicklable_and_odd_values_are_cached_in_memory(calls):
    """Memory engines keep any object, including lambdas and generators' results."""

    @mcache
    def f(x):
        calls(x)
        return lambda: x

    assert f(1)() == 1
    assert f(1)() == 1
    assert calls == [1]


def test_a_returned_coroutine_or_generator_is_never_cached(calls):
    """A sync callable returning a coroutine (a lambda over an async def, a sync wrapper from
    another decorator) or a generator: a hit handed back the consumed object ("cannot reuse
    already awaited coroutine", an empty generator). Such a value is never stored: each call
    gets its own, from its own computation."""

    async def fetch(x):
        calls(x)
        return x * 2

    later = mcache(lambda x: fetch(x))

    async def twice():
        return [await later(1), await later(1)]

    assert asyncio.run(twice()) == [2, 2]
    assert calls == [1, 1]

    @bcache
    def numbers(n):
        calls(n)
        return (i for i in range(n))

    @mcache
    def letters(n):
        calls(n)
        return (chr(97 + i) for i in range(n))

    assert [list(numbers(3)), list(numbers(3))] == [[0, 1, 2], [0, 1, 2]]
    assert [list(letters(2)), list(letters(2))] == [["a", "b"], ["a", "b"]]
    assert calls == [1, 1, 3, 3, 2, 2]
    assert letters.cache_info().currsize == 0
    assert get_stats()[numbers.cache_parameters()["name"]]["errors"] == 0
