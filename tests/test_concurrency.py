"""Compute once: concurrent calls on one cold key run the function once."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from twat_cache import mcache


def test_32_threads_one_cold_key_compute_once(calls):
    """32 threads calling the same cold key run the function once and all get its value."""
    barrier = threading.Barrier(32)

    @mcache
    def slow(x):
        calls(x)
        time.sleep(0.2)
        return x * 2

    def call():
        barrier.wait()
        return slow(21)

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: call(), range(32)))
    assert results == [42] * 32
    assert calls == [21]
    assert not len(slow._twat_core.path.flights)  # the per-key lock table is empty afterwards


def test_lock_false_lets_threads_compute(calls):
    """lock=False trades duplicate work for no waiting (as cachetools without a lock)."""
    barrier = threading.Barrier(4)

    @mcache(lock=False)
    def slow(x):
        barrier.wait(timeout=5)  # all four are inside at once
        calls(x)
        return x

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(slow, [1, 1, 1, 1])) == [1, 1, 1, 1]
    assert len(calls) == 4


def test_different_keys_do_not_wait_on_each_other():
    """A slow key does not block a call for another key."""
    release = threading.Event()

    @mcache
    def f(x):
        if x == "slow":
            release.wait(timeout=10)
        return x

    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(f, "slow")
        fast = pool.submit(f, "fast")
        assert fast.result(timeout=5) == "fast"
        assert not slow.done()
        release.set()
        assert slow.result(timeout=5) == "slow"


def test_failed_computation_reaches_every_waiter_at_once(calls):
    """Callers who joined a computation that raises get that exception; nothing is cached."""
    barrier = threading.Barrier(8)

    @mcache
    def flaky(x):
        calls(x)
        time.sleep(0.05)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return x

    def call():
        barrier.wait()
        try:
            return flaky(1)
        except RuntimeError:
            return "error"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: call(), range(8)))
    # Each caller either joined the failing computation or came after it and computed anew.
    assert results.count("error") + results.count(1) == 8
    assert results.count("error") >= 1
    assert len(calls) == 1 + (results.count(1) > 0)
    assert flaky(1) == 1  # the failure was not stored


def test_pending_table_does_not_grow(calls):
    """Thousands of distinct keys leave no per-key lock behind."""

    @mcache(maxsize=10)
    def f(x):
        return x

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(f, range(5000)))
    assert not len(f._twat_core.path.flights)


def test_recursive_function_does_not_deadlock():
    """A function calling itself with the same key (through a fallback) does not hang."""
    depth = []

    @mcache
    def f(n):
        depth.append(n)
        if len(depth) < 3:
            return f(n)
        return n

    assert f(5) == 5


def test_200_tasks_one_cold_key_compute_once(calls):
    """200 asyncio tasks on one cold key await one computation."""

    @mcache
    async def fetch(x):
        calls(x)
        await asyncio.sleep(0.05)
        return x + 1

    async def main():
        return await asyncio.gather(*(fetch(1) for _ in range(200)))

    assert asyncio.run(main()) == [2] * 200
    assert calls == [1]
    assert not len(fetch._twat_core.path.flights)


def test_cancelled_owner_does_not_hang_waiters(calls):
    """Cancelling the task that computes lets a waiting task take over."""

    @mcache
    async def fetch(x):
        calls(x)
        await asyncio.sleep(0.1)
        return x

    async def main():
        owner = asyncio.create_task(fetch(1))
        await asyncio.sleep(0.01)
        waiters = [asyncio.create_task(fetch(1)) for _ in range(5)]
        await asyncio.sleep(0.01)
        owner.cancel()
        return await asyncio.wait_for(asyncio.gather(*waiters), timeout=5)

    assert asyncio.run(main()) == [1] * 5
    assert len(calls) == 2


def test_a_miss_claims_its_key_only_when_nobody_computes_or_stored_it():
    from twat_cache.call.flight import VALUE, Flights

    flights = Flights()
    first = flights.claim("k", "me", {})
    assert first is not None
    assert (first.owner, len(flights)) == ("me", 1)
    assert flights.claim("k", "other", {}) is None  # in flight: that caller joins and waits
    assert len(flights) == 1
    flights.land("k", first, VALUE, 1)
    assert (first.outcome, first.result, len(flights)) == (VALUE, 1, 0)
    assert flights.claim("k", "me", {"k": 1}) is None  # stored meanwhile: nothing to compute
    assert len(flights) == 0


def _finishes(fn, seconds=30.0):
    """Run ``fn`` in a daemon thread; its result, or a failure if it is still running."""
    out = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the call hung"
    return out[0]


def test_a_computation_waiting_for_its_own_key_in_a_thread_pool_does_not_hang(calls, monkeypatch):
    """f(x) submitting f(x) to a pool and waiting for it: the pool thread cannot know it is
    waited for, so it waits at most flight.WAIT_LIMIT, then computes (lru_cache computes twice)."""
    from twat_cache import bcache
    from twat_cache.call import flight

    monkeypatch.setattr(flight, "WAIT_LIMIT", 0.2)
    for deco in (mcache, bcache(name="waits_for_itself", version="1")):
        calls.clear()
        with ThreadPoolExecutor(1) as pool:

            @deco
            def f(x):
                calls(x)
                if len(calls) == 1:
                    return pool.submit(f, x).result()
                return x * 2

            assert _finishes(lambda: f(3)) == 6
            assert f(3) == 6
        assert calls == [3, 3]
        assert not len(f._twat_core.path.flights)


def test_a_computation_gathering_its_own_key_does_not_hang(calls):
    """An async f(x) awaiting gather(f(x)) (another task, the same key): the task it started
    computes instead of waiting for it, at once (no wait limit involved)."""
    from twat_cache import acache

    for deco in (mcache, acache):

        @deco
        async def f(x):
            calls(x)
            if len(calls) % 2:
                (value,) = await asyncio.gather(f(x))
                return value
            return x * 2

        async def main(f=f):
            return await f(3), await asyncio.to_thread(lambda: 1)

        assert _finishes(lambda: asyncio.run(main()), seconds=10) == (6, 1)
    assert len(calls) == 4


def test_a_coroutine_calling_its_own_key_through_another_thread_and_loop_does_not_hang(calls):
    """An async f(x) whose computation runs f(x) on a new loop in a thread that inherits its
    context (asyncio.to_thread): that call computes instead of waiting for its caller."""

    @mcache
    async def f(x):
        calls(x)
        if len(calls) == 1:
            return await asyncio.to_thread(lambda: asyncio.run(f(x)))
        return x * 2

    assert _finishes(lambda: asyncio.run(f(3)), seconds=10) == 6
    assert calls == [3, 3]


class _Interrupting:
    """A value whose first pickling is interrupted, as by Ctrl-C while a big value is written."""

    armed = True

    def __reduce__(self):
        if _Interrupting.armed:
            _Interrupting.armed = False
            raise KeyboardInterrupt
        return (_Interrupting, ())


def test_an_interrupt_while_storing_leaves_no_call_waiting(calls):
    """Ctrl-C during bcache's write: the next call of the key computes or hits, never hangs
    (the flight landed and the key lock was released)."""
    from twat_cache import bcache

    @bcache
    def f(x):
        calls(x)
        return _Interrupting()

    try:
        f(1)
    except KeyboardInterrupt:
        pass
    assert isinstance(_finishes(lambda: f(1), seconds=10), _Interrupting)
    assert calls == [1, 1]
    assert not len(f._twat_core.path.flights)
    assert isinstance(f(1), _Interrupting)  # a hit
    assert calls == [1, 1]


def test_a_cancellation_while_storing_leaves_no_call_waiting(calls):
    """A task cancelled (say by wait_for) while its fresh value is written: later calls of
    the key do not wait for ever, and the key lock is released."""
    from twat_cache import bcache

    pickling, release = threading.Event(), threading.Event()

    class Slow:
        def __reduce__(self):
            pickling.set()
            release.wait(10)
            return (int, (7,))

    @bcache
    async def f(x):
        calls(x)
        return Slow()

    async def main():
        owner = asyncio.ensure_future(f(1))
        await asyncio.to_thread(pickling.wait, 10)
        owner.cancel()
        try:
            await owner
        except asyncio.CancelledError:
            pass
        release.set()
        return await f(1)

    value = _finishes(lambda: asyncio.run(main()), seconds=20)
    assert value == 7 or isinstance(value, Slow)  # the stored value, or computed afresh
    assert not len(f._twat_core.path.flights)


def test_two_computations_waiting_for_each_other_do_not_hang(monkeypatch):
    """f(1) calling f(2) in one thread while f(2) calls f(1) in another (a cached walk of a
    graph with a cycle): each waited for the other's flight. The second to wait sees the
    cycle and computes instead, at once (the wait limit is out of reach here)."""
    from twat_cache.call import flight

    monkeypatch.setattr(flight, "WAIT_LIMIT", 3600.0)
    both = threading.Barrier(2)
    inner = []

    @mcache
    def walk(node):
        if node in inner:
            return 0
        inner.append(node)
        both.wait(10)  # both computations are in flight before either goes on
        return walk(3 - node) + 1

    def both_walks():
        with ThreadPoolExecutor(2) as pool:
            return sorted(pool.map(walk, [1, 2]))

    # One computes what it would wait for and the other waits for it ([1, 2]), or both
    # see the cycle at once and compute ([1, 1]): which is up to the threads.
    assert _finishes(both_walks, seconds=30) in ([1, 2], [1, 1])
    assert not len(walk._twat_core.path.flights)
    assert not flight._WAITING


def test_two_tasks_waiting_for_each_other_do_not_hang(monkeypatch):
    from twat_cache import acache
    from twat_cache.call import flight

    monkeypatch.setattr(flight, "WAIT_LIMIT", 3600.0)
    inner = []

    @acache
    async def walk(node, both):
        if node in inner:
            return 0
        inner.append(node)
        await both.wait()
        return await walk(3 - node, both) + 1

    async def main():
        both = Barrier2()
        return sorted(await asyncio.gather(walk(1, both), walk(2, both)))

    class Barrier2:
        def __init__(self):
            self.count, self.event = 0, asyncio.Event()

        async def wait(self):
            self.count += 1
            if self.count == 2:
                self.event.set()
            await self.event.wait()

        def __cache_key__(self):
            return "both"

    assert _finishes(lambda: asyncio.run(main()), seconds=30) == [1, 2]  # the second sees it
    assert not flight._WAITING
