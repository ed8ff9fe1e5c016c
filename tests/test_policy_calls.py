"""What each policy block does to cached calls, on every decorator, sync and async."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from twat_cache import acache, bcache, disabled, mcache, readonly, refreshing, ucache

pytest_plugins = ["pytester"]

SYNC = {
    "mcache": lambda: mcache(name="p.m"),
    "bcache": lambda: bcache(name="p.b", folder_name="policy"),
    "ucache": lambda: ucache(name="p.u"),
}


def counted(kind: str) -> tuple[Callable[[int], Any], list[int]]:
    """A cached function returning (x, how many computations so far); and its call log."""
    calls: list[int] = []

    def compute(x: int) -> tuple[int, int]:
        calls.append(x)
        return x, len(calls)

    return SYNC[kind]()(compute), calls


@pytest.mark.parametrize("kind", sorted(SYNC))
def test_disabled_calls_straight_through(kind):
    """Inside disabled(): every call computes, nothing is read or stored."""
    f, calls = counted(kind)
    f(1)
    with disabled():
        assert f(1) == (1, 2)  # the stored (1, 1) is not read
        assert f(2) == (2, 3)
        assert f(2) == (2, 4)
    assert f(1) == (1, 1)  # the entry from before the block
    assert f(2) == (2, 5)  # nothing stored inside the block
    assert calls == [1, 1, 2, 2, 2]


@pytest.mark.parametrize("kind", sorted(SYNC))
def test_refreshing_recomputes_and_overwrites(kind):
    """Inside refreshing(): every call computes and its value replaces the stored one."""
    f, calls = counted(kind)
    assert f(1) == (1, 1)
    with refreshing():
        assert f(1) == (1, 2)
    assert f(1) == (1, 2)  # a hit on the refreshed value
    assert calls == [1, 1]


@pytest.mark.parametrize("kind", sorted(SYNC))
def test_readonly_serves_hits_and_stores_nothing(kind):
    """Inside readonly(): stored entries are hits; a miss computes, returns, stores nothing."""
    f, calls = counted(kind)
    f(1)
    with readonly():
        assert f(1) == (1, 1)  # a hit
        assert f(2) == (2, 2)  # computed
        assert f(2) == (2, 3)  # computed again: not stored
    assert f(2) == (2, 4)
    assert f(2) == (2, 4)
    assert calls == [1, 2, 2, 2]


def test_a_block_in_one_thread_leaves_other_threads_caching():
    """disabled() in the main thread: another thread's calls still hit."""
    f, calls = counted("mcache")
    f(1)
    seen: list[Any] = []
    with disabled():
        thread = threading.Thread(target=lambda: seen.append(f(1)))
        thread.start()
        thread.join(30)
    assert seen == [(1, 1)]
    assert calls == [1]


def test_policies_apply_to_async_functions_per_task():
    """acache under disabled() in one task recomputes; a sibling task meanwhile hits."""
    calls: list[int] = []

    @acache(name="p.a")
    async def fetch(x: int) -> tuple[int, int]:
        calls.append(x)
        return x, len(calls)

    async def main() -> tuple[Any, Any, Any]:
        await fetch(1)
        inside = asyncio.Event()
        release = asyncio.Event()

        async def without_cache() -> Any:
            with disabled():
                inside.set()
                await release.wait()
                return await fetch(1)

        async def with_cache() -> Any:
            await inside.wait()
            value = await fetch(1)
            release.set()
            return value

        a, b = await asyncio.gather(without_cache(), with_cache())
        with refreshing():
            c = await fetch(1)
        return a, b, c

    assert asyncio.run(main()) == ((1, 2), (1, 1), (1, 3))
    assert calls == [1, 1, 1]


def test_decorator_form_wraps_a_caller():
    """A function decorated with @disabled makes the cached calls inside it compute."""
    f, calls = counted("mcache")
    f(1)

    @disabled
    def caller() -> Any:
        return f(1)

    assert caller() == (1, 2)
    assert f(1) == (1, 1)
    assert calls == [1, 1]


def test_markers_switch_caching_in_a_test_suite(pytester):
    """The pytest markers put the test body under the policy: real cached calls recompute."""
    pytester.makepyfile(
        """
        import pytest
        from twat_cache import mcache

        calls = []

        @mcache
        def square(x):
            calls.append(x)
            return x * x

        def test_warm():
            square(3)
            assert calls == [3]

        @pytest.mark.twat_cache_disabled
        def test_disabled():
            square(3)
            assert calls == [3, 3]

        @pytest.mark.twat_cache_refreshing
        def test_refreshing():
            square(3)
            assert calls == [3, 3, 3]

        def test_cached_again():
            square(3)
            assert calls == [3, 3, 3]
        """
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        result = pytester.runpytest("-p", "twat_cache.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
