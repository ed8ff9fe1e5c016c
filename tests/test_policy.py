"""The policy context variable itself: per thread, per task, nesting, decorator forms.

What each policy does to a cached call is tested with the call path; here the
question is only which policy ``current()`` reports where, and that ``ACTIVE``
counts the open blocks.
"""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import twat_cache
from twat_cache import ConfigurationError, disabled, readonly, refreshing
from twat_cache import policy as policy_module
from twat_cache.policy import Policy, current

POLICIES = {"disabled": disabled, "refreshing": refreshing, "readonly": readonly}


def test_outside_any_block_there_is_no_policy():
    """With no block open, current() is None and ACTIVE is 0 (the hot path's fast test)."""
    assert current() is None
    assert policy_module.ACTIVE == 0


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_with_block_sets_and_restores(name):
    """Inside ``with policy():`` current() names it; after the block it is gone again."""
    with POLICIES[name]() as block:
        assert current() == name
        assert policy_module.ACTIVE == 1
        assert block.name == name
    assert current() is None
    assert policy_module.ACTIVE == 0


def test_exceptions_still_restore_the_outer_policy():
    """A block left by an exception restores the outer policy and the count."""
    with readonly():
        with pytest.raises(KeyError), disabled():
            raise KeyError("x")
        assert current() == "readonly"
        assert policy_module.ACTIVE == 1
    assert current() is None


@given(st.lists(st.sampled_from(sorted(POLICIES)), max_size=8))
def test_nesting_innermost_wins_and_unwinds(names):
    """Any nesting of blocks: the innermost names the policy; each exit restores its outer."""
    seen: list[str | None] = []

    def enter(depth: int) -> None:
        if depth == len(names):
            return
        with POLICIES[names[depth]]():
            assert current() == names[depth]
            assert depth + 1 == policy_module.ACTIVE
            enter(depth + 1)
            seen.append(current())

    enter(0)
    assert seen == list(reversed(names))
    assert current() is None
    assert policy_module.ACTIVE == 0


def test_one_object_can_be_reentered():
    """The same policy object nested in itself unwinds to the right state each time."""
    block = refreshing()
    with block:
        with block:
            assert policy_module.ACTIVE == 2
        assert current() == "refreshing"
    assert current() is None


def test_a_block_applies_to_its_own_thread_only():
    """A block open in one thread leaves another thread's policy unchanged (and vice versa)."""
    inside = threading.Event()
    release = threading.Event()
    other: list[str | None] = []

    def worker() -> None:
        with disabled():
            inside.set()
            release.wait(30)
            other.append(current())

    thread = threading.Thread(target=worker)
    thread.start()
    assert inside.wait(30)
    try:
        assert current() is None  # this thread: no policy, though a block is open elsewhere
        assert policy_module.ACTIVE == 1  # the count sees every thread
        with readonly():
            assert current() == "readonly"
    finally:
        release.set()
        thread.join(30)
    assert other == ["disabled"]
    assert policy_module.ACTIVE == 0


def test_new_threads_start_without_the_policy():
    """A thread started inside a block does not inherit it (threads start a fresh context)."""
    seen: list[str | None] = []
    with disabled():
        thread = threading.Thread(target=lambda: seen.append(current()))
        thread.start()
        thread.join(30)
    assert seen == [None]


def test_a_block_applies_to_its_own_task_only():
    """Two tasks of one loop: a block in one is not seen by the other, even while it waits."""

    async def main() -> tuple[list[str | None], list[str | None]]:
        entered = asyncio.Event()
        done = asyncio.Event()
        first: list[str | None] = []
        second: list[str | None] = []

        async def with_block() -> None:
            with refreshing():
                entered.set()
                await done.wait()
                first.append(current())

        async def without() -> None:
            await entered.wait()
            second.append(current())
            done.set()

        await asyncio.gather(with_block(), without())
        return first, second

    assert asyncio.run(main()) == (["refreshing"], [None])


def test_tasks_created_inside_a_block_inherit_it_while_it_is_open():
    """A task created inside a block sees its policy while the block is open; one created
    outside does not; a task outliving the block falls back to the enclosing open block."""

    async def main() -> list[str | None]:
        async def probe() -> str | None:
            await asyncio.sleep(0)
            return current()

        with disabled():
            with readonly():
                gathered = await asyncio.gather(probe(), probe())
                escaping = asyncio.create_task(probe())
            outliving_inner = await escaping
            escaping = asyncio.create_task(probe())
        outliving_all = await escaping
        outside = await asyncio.create_task(probe())
        return [*gathered, outliving_inner, outliving_all, outside]

    assert asyncio.run(main()) == ["readonly", "readonly", "disabled", None, None]


def test_closed_block_is_not_revived_by_another_threads_block():
    """A task outliving its block sees no policy even while another thread has a block open."""
    inside = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with refreshing():
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    assert inside.wait(30)

    async def main() -> str | None:
        async def probe() -> str | None:
            await asyncio.sleep(0)
            return current()

        with readonly():
            escaping = asyncio.create_task(probe())
        return await escaping

    try:
        assert policy_module.ACTIVE == 1
        assert asyncio.run(main()) is None
    finally:
        release.set()
        thread.join(30)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_decorator_forms_on_sync_functions(name):
    """``@policy()`` and bare ``@policy`` run each call under it, keep the name and value."""
    make = POLICIES[name]

    @make()
    def called(x: int) -> tuple[int, str | None]:
        """Doc kept."""
        return x * 2, current()

    @make
    def bare(x: int) -> tuple[int, str | None]:
        return x + 1, current()

    assert called(3) == (6, name)
    assert bare(3) == (4, name)
    assert called.__name__ == "called"
    assert called.__doc__ == "Doc kept."
    assert current() is None
    assert policy_module.ACTIVE == 0


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_decorator_on_async_functions_holds_while_awaited(name):
    """On ``async def`` the policy holds across awaits, and the function stays a coroutine."""
    make = POLICIES[name]

    @make()
    async def fetch() -> list[str | None]:
        before = current()
        await asyncio.sleep(0)
        return [before, current()]

    @make
    async def bare() -> str | None:
        await asyncio.sleep(0)
        return current()

    assert inspect.iscoroutinefunction(fetch)
    assert inspect.iscoroutinefunction(bare)
    assert asyncio.run(fetch()) == [name, name]
    assert asyncio.run(bare()) == name
    assert policy_module.ACTIVE == 0


def test_decorated_function_raises_through_and_unwinds():
    """An exception from a decorated function propagates unchanged; no block stays open."""

    @disabled
    def boom() -> None:
        raise ValueError("mine")

    with pytest.raises(ValueError, match="mine"):
        boom()
    assert policy_module.ACTIVE == 0
    assert current() is None


def test_overlapping_calls_of_one_decorated_function_in_threads():
    """A decorated function called from many threads at once: each call has its own block."""
    barrier = threading.Barrier(4)
    seen: list[str | None] = []
    lock = threading.Lock()

    @readonly
    def work() -> None:
        barrier.wait(30)
        with lock:
            seen.append(current())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert seen == ["readonly"] * 4
    assert policy_module.ACTIVE == 0


def test_unknown_policy_name_is_a_configuration_error():
    """Policy("bogus") raises ConfigurationError naming the value and the valid names."""
    with pytest.raises(ConfigurationError, match=r"'bogus'.*'disabled', 'refreshing', 'readonly'"):
        Policy("bogus")  # type: ignore[arg-type]


def test_exported_from_the_package():
    """disabled, refreshing and readonly are public names of twat_cache."""
    for name in POLICIES:
        assert name in twat_cache.__all__
        assert getattr(twat_cache, name) is POLICIES[name]
    assert repr(disabled()) == "twat_cache.disabled()"


def test_one_object_open_in_two_tasks_ending_in_any_order():
    """NOCACHE = disabled() shared by tasks whose blocks end out of order: each ends its own
    block (no ValueError from the context variable), and caching resumes after both."""
    from twat_cache import mcache

    nocache = disabled()
    count = [0]

    @mcache
    def f(x):
        count[0] += 1
        return count[0]

    async def first(second_in, first_out):
        try:
            with nocache:
                await second_in.wait()
                assert current() == "disabled"
                return f(1)
        finally:
            first_out.set()

    async def second(second_in, first_out):
        with nocache:
            second_in.set()
            await first_out.wait()  # the first task's block ended while this one is open
            assert current() == "disabled"
            return f(1)

    async def main():
        second_in, first_out = asyncio.Event(), asyncio.Event()
        both = asyncio.gather(first(second_in, first_out), second(second_in, first_out))
        return await asyncio.wait_for(both, 10)

    assert f(1) == 1
    assert sorted(asyncio.run(main())) == [2, 3]  # both called through
    assert current() is None
    assert policy_module.ACTIVE == 0
    assert f(1) == f(1) == 1  # caching is back: the first value, never recomputed
    assert count == [3]


def test_one_object_open_in_two_threads_ending_in_any_order():
    nocache = refreshing()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen, errors = [], []

    def first():
        try:
            with nocache:
                first_in.set()
                assert second_in.wait(10)
        except BaseException as exc:
            errors.append(exc)
        finally:
            first_out.set()

    def second():
        try:
            assert first_in.wait(10)
            with nocache:
                second_in.set()
                assert first_out.wait(10)  # the first thread's block ended before this one
                seen.append(current())
            seen.append(current())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == []
    assert seen == ["refreshing", None]
    assert policy_module.ACTIVE == 0


@pytest.mark.parametrize("name", ["disabled", "refreshing", "readonly"])
def test_decorating_a_generator_function_is_refused(name):
    """Its body would run after the call returned, outside the block: refused, named."""
    make = getattr(twat_cache, name)

    def gen():
        yield 1

    async def agen():
        yield 1

    for func in (gen, agen):
        with pytest.raises(ConfigurationError, match=f"{func.__name__}.*generator function"):
            make(func)
