"""Never a wrong value, never a hang: the call path under hostile and careless use (issue 9).

Each test names the family it guards; the same behaviour is checked on every engine and for
sync and async functions where both apply.
"""

from __future__ import annotations

import array
import asyncio
import datetime as dt
import functools
import gc
import inspect
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
import zoneinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import Calls
from twat_cache import (
    Backend,
    CacheKeyError,
    CacheOperationError,
    ConfigurationError,
    acache,
    bcache,
    clear_cache,
    get_stats,
    list_caches,
    mcache,
)
from twat_cache.registry import registry

MEMORY_ENGINES = ["cachebox", "cachetools", "functools"]


# -- 1. function identity ------------------------------------------------------------------


def test_closures_with_other_captured_values_never_share_persistent_entries(calls: Calls) -> None:
    """make(1) and make(100) are different functions: their bcache entries never mix."""

    def make(n: int) -> Any:
        @bcache
        def add(x: int) -> int:
            calls(n)
            return x + n

        return add

    one, hundred = make(1), make(100)
    assert [one(1), hundred(1), one(1), hundred(1)] == [2, 101, 2, 101]
    assert calls == [1, 100]
    names = [name for name in list_caches() if "add" in name]
    assert len(names) == 2
    clear_cache()
    assert one(1) == 2
    assert hundred(1) == 101
    assert calls == [1, 100, 1, 100]  # both were cleared


def test_two_lambdas_on_one_line_are_two_functions() -> None:
    """Lambdas share a qualified name and a source line, never a cache."""
    inc, tenfold = bcache(lambda x: x + 1), bcache(lambda x: x * 10)
    assert [inc(3), tenfold(3), inc(3), tenfold(3)] == [4, 30, 4, 30]


def test_methods_of_classes_from_a_factory_keep_their_own_entries() -> None:
    """A class factory makes classes whose methods read the factory's arguments."""

    def factory(offset: int) -> type:
        class Shifter:
            __slots__ = ()

            def __cache_key__(self) -> str:
                return "shifter"

            @bcache
            def shift(self, x: int) -> int:
                return x + offset

        return Shifter

    one, two = factory(1)(), factory(2)()
    assert [one.shift(1), two.shift(1), one.shift(1), two.shift(1)] == [2, 3, 2, 3]


def test_same_function_name_in_two_scripts_never_shares(tmp_path: Path) -> None:
    """Two scripts run as __main__ with a same-named function keep apart on one cache root."""
    for n, body in ((1, "x + 1"), (2, "x * 2")):
        (tmp_path / f"script{n}.py").write_text(
            textwrap.dedent(
                f"""
                from twat_cache import bcache
                @bcache
                def compute(x):
                    return {body}
                print(compute(10))
                """
            )
        )
    env = {**os.environ, "TWAT_CACHE_DIR": str(tmp_path / "root")}
    out = [
        subprocess.run(
            [sys.executable, str(tmp_path / f"script{n}.py")],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout.strip()
        for n in (1, 2, 1, 2)
    ]
    assert out == ["11", "20", "11", "20"]


def _power(base: int, exponent: int, modulo: int | None = None) -> int:
    return pow(base, exponent, modulo)


class Scaler:
    """A callable object; its ``__cache_key__`` says what tells two of them apart."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, x: int, offset: int = 0) -> int:
        return x * self.factor + offset

    def __cache_key__(self) -> int:
        return self.factor


class Opaque:
    def __call__(self, x: int) -> int:
        return x


@pytest.mark.parametrize("decorator", ["mcache", "bcache", "acache"])
def test_partials_and_callable_objects_are_functions_of_their_own(decorator: str) -> None:
    """partial(f, 2) and partial(f, 3), Scaler(2) and Scaler(3), are cached (as
    lru_cache caches them), never share entries, keep their signatures, and are listed
    apart; a builtin method such as str.upper is cached like a function."""
    dec = {"mcache": mcache, "bcache": bcache, "acache": acache}[decorator]
    two, three = dec(functools.partial(_power, 2)), dec(functools.partial(_power, 3))
    assert [two(5), three(5), two(5), two(exponent=5), three(2, 7)] == [32, 243, 32, 32, 2]
    assert (two.cache_info().hits, two.cache_info().misses) == (2, 1)
    assert inspect.signature(two) == inspect.signature(functools.partial(_power, 2))
    names = [name for name in list_caches() if "_power" in name]
    assert len(names) == 2
    double, triple = dec(Scaler(2)), dec(Scaler(3))
    assert [double(5), triple(5), double(5), double(5, offset=1)] == [10, 15, 10, 11]
    assert (double.cache_info().hits, double.cache_info().misses) == (1, 2)
    assert inspect.signature(double) == inspect.signature(Scaler(2))
    upper = dec(str.upper)
    assert [upper("ab"), upper("ab"), upper("cd")] == ["AB", "AB", "CD"]
    assert upper.cache_info().hits == 1
    # Bound methods: the object they are bound to is part of what the function is.
    by_two, by_three = dec(Scaler(2).__call__), dec(Scaler(3).__call__)
    assert [by_two(5), by_three(5), by_two(5)] == [10, 15, 10]
    ab, xy = dec("ab".upper), dec("xy".upper)
    assert [ab(), xy(), ab()] == ["AB", "XY", "AB"]


class AsyncScaler(Scaler):
    async def __call__(self, x: int, offset: int = 0) -> int:  # type: ignore[override]
        return x * self.factor + offset


class Counter:
    def __call__(self, n: int) -> Any:
        yield from range(n)


@pytest.mark.parametrize("decorator", ["mcache", "bcache", "acache"])
def test_callables_that_run_coroutines_are_awaited_before_caching(decorator: str) -> None:
    """An object with ``async def __call__`` (or a partial of an ``async def``) is cached as
    a coroutine function: its value is stored, never the coroutine (whose second await
    raised RuntimeError); an object whose ``__call__`` is a generator is refused."""
    dec = {"mcache": mcache, "bcache": bcache, "acache": acache}[decorator]
    double = dec(AsyncScaler(2))
    offset = dec(functools.partial(AsyncScaler(3), offset=1))

    async def main() -> list[int]:
        return [await double(5), await double(5), await offset(5), await offset(5)]

    assert asyncio.run(main()) == [10, 10, 16, 16]
    assert (double.cache_info().hits, double.cache_info().misses) == (1, 1)
    with pytest.raises(ConfigurationError, match="generator"):
        dec(Counter())


def test_a_callable_object_that_cannot_be_keyed_is_named() -> None:
    """bcache of an object, or of a method bound to one, whose state cannot be keyed:
    CacheKeyError naming it (two such objects would otherwise share entries)."""
    with pytest.raises(CacheKeyError, match="the callable object"):
        bcache(Opaque())(1)
    with pytest.raises(CacheKeyError, match="the object its method is bound to"):
        bcache(Opaque().__call__)(1)


def test_a_captured_value_that_cannot_be_keyed_is_named_at_the_first_call() -> None:
    """bcache on a closure over an unkeyable object: CacheKeyError naming the variable."""
    lock = threading.Lock()

    @bcache
    def guarded(x: int) -> int:
        with lock:
            return x

    with pytest.raises(CacheKeyError, match="'lock'"):
        guarded(1)


# -- 2. equal keys only for equal values -----------------------------------------------
#
# Values whose ``==`` ignores what they carry: the same instant in two zones, the two
# 01:30s of the night clocks go back, 1.0 and 1.00 as Decimals, -0.0 and 0.0 inside a
# list. Each pair gives two results on every decorator, sync and async; an equal value
# built afresh is a hit.

_EASTERN = zoneinfo.ZoneInfo("America/New_York")
_NOON = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc)
_EQUAL_BUT_DIFFERENT = {
    "same instant, two zones": (
        lambda: _NOON,
        lambda: _NOON.astimezone(dt.timezone(dt.timedelta(hours=1))),
    ),
    "the repeated hour (fold)": (
        lambda: dt.datetime(2021, 11, 7, 1, 30, tzinfo=_EASTERN),
        lambda: dt.datetime(2021, 11, 7, 1, 30, fold=1, tzinfo=_EASTERN),
    ),
    "a naive fold": (
        lambda: dt.datetime(2021, 11, 7, 1, 30),
        lambda: dt.datetime(2021, 11, 7, 1, 30, fold=1),
    ),
    "aware times": (
        lambda: dt.time(12, tzinfo=dt.timezone.utc),
        lambda: dt.time(12, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    ),
    "Decimal exponents": (lambda: Decimal("1.0"), lambda: Decimal("1.00")),
    "-0.0 in a list": (lambda: [0.0, 1], lambda: [-0.0, 1]),
    "-0.0 in a dict": (lambda: {"x": 0.0}, lambda: {"x": -0.0}),
    "NumPy -0.0": (lambda: np.float64(0.0), lambda: np.float64(-0.0)),
    "NumPy float32 -0.0": (lambda: np.float32(0.0), lambda: np.float32(-0.0)),
    "complex -0.0 in a list": (lambda: [complex(1, 0.0)], lambda: [complex(1, -0.0)]),
    "array type codes": (lambda: array.array("i", [1]), lambda: array.array("q", [1])),
    "array contents": (lambda: array.array("d", [1.0]), lambda: array.array("d", [2.0])),
}
_DECORATORS = {
    "mcache": lambda: mcache(),
    "mcache typed": lambda: mcache(typed=True),
    "mcache cachetools": lambda: mcache(engine="cachetools"),
    "bcache": lambda: bcache(),
    "acache": lambda: acache(),
}


@pytest.mark.parametrize("decorator", list(_DECORATORS))
@pytest.mark.parametrize("pair", list(_EQUAL_BUT_DIFFERENT))
@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_values_equal_by_eq_but_different_never_share_a_result(
    decorator: str, pair: str, sync: bool
) -> None:
    """``a == b``, yet ``f(b)`` is never ``f(a)``'s result; a rebuilt ``a`` hits."""
    make_a, make_b = _EQUAL_BUT_DIFFERENT[pair]
    runs: list[str] = []

    def describe(x: Any) -> str:
        runs.append(repr(x))
        return repr(x) + (f" {x.utcoffset()}" if isinstance(x, (dt.datetime, dt.time)) else "")

    async def adescribe(x: Any) -> str:
        return describe(x)

    cached = _DECORATORS[decorator]()(describe if sync else adescribe)

    def call(x: Any) -> str:
        return cached(x) if sync else asyncio.run(cached(x))

    a, b = make_a(), make_b()
    assert call(a) == describe(a)
    assert call(b) == describe(b)
    assert call(make_a()) == describe(a)
    assert len(runs) == 2 + 3  # two computations, three direct calls


# -- 4b. an invalidation during a computation is never undone --------------------------
#
# A computation that began before a clear, a delete or a refresh of its key returns its
# value to its caller but never stores it: the next call computes afresh (today's data),
# and a refresh computes anew instead of waiting for the older computation.

_INVALIDATIONS = ["cache_clear", "clear_cache", "cache_delete", "cache_refresh"]


def _make_reader(decorator: str, lock: bool, data: dict[str, int], wait: Any) -> Any:
    dec = {"mcache": mcache, "bcache": bcache, "acache": acache}[decorator]

    def read(k: int) -> int:
        value = data["v"]
        if value == 1:  # the first computation: held until the test lets it go
            wait()
        return value

    return dec(lock=lock)(read)


@pytest.mark.parametrize("invalidation", _INVALIDATIONS)
@pytest.mark.parametrize("lock", [True, False], ids=["lock", "nolock"])
@pytest.mark.parametrize("decorator", ["mcache", "bcache", "acache"])
def test_an_invalidation_during_a_computation_is_never_undone(
    decorator: str, lock: bool, invalidation: str
) -> None:
    """The older computation's value never lands after the invalidation (sync)."""
    data = {"v": 1}
    entered, release = threading.Event(), threading.Event()

    def wait() -> None:
        entered.set()
        release.wait(30)

    read = _make_reader(decorator, lock, data, wait)
    first = threading.Thread(target=read, args=(7,))
    first.start()
    assert entered.wait(30)
    data["v"] = 2
    if invalidation == "cache_refresh":
        refreshed: list[int] = []
        second = threading.Thread(target=lambda: refreshed.append(read.cache_refresh(7)))
        second.start()
        deadline = time.monotonic() + 30
        while read.cache_info().misses < 2 and time.monotonic() < deadline:
            time.sleep(0.001)  # the refresh has begun (it counts a miss first)
        release.set()
        second.join(30)
        assert refreshed == [2]  # computed anew, never the older computation's 1
    else:
        if invalidation == "clear_cache":
            clear_cache(read.cache_parameters()["name"])
        else:
            getattr(read, invalidation)(*([7] if invalidation == "cache_delete" else []))
        release.set()
    first.join(30)
    assert read(7) == 2


@pytest.mark.parametrize("invalidation", _INVALIDATIONS)
@pytest.mark.parametrize("decorator", ["mcache", "bcache", "acache"])
def test_an_invalidation_during_an_async_computation_is_never_undone(
    decorator: str, invalidation: str
) -> None:
    """The same for a coroutine, the invalidation coming from another task."""

    async def scenario() -> int:
        data = {"v": 1}
        entered, release = asyncio.Event(), asyncio.Event()
        dec = {"mcache": mcache, "bcache": bcache, "acache": acache}[decorator]

        @dec(name="reader")  # it captures events: name= says it is one cache on purpose
        async def read(k: int) -> int:
            value = data["v"]
            if value == 1:
                entered.set()
                await release.wait()
            return value

        first = asyncio.create_task(read(7))
        await entered.wait()
        data["v"] = 2
        if invalidation == "cache_refresh":
            second = asyncio.create_task(read.cache_refresh(7))
            while read.cache_info().misses < 2:
                await asyncio.sleep(0)
            release.set()
            assert await second == 2
        else:
            if invalidation == "clear_cache":
                clear_cache(read.cache_parameters()["name"])
            elif invalidation == "cache_delete":
                await read.cache_delete(7)
            else:
                read.cache_clear()
            release.set()
        assert await first == 1  # its own caller still gets what it computed
        return await read(7)

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == 2


# -- 3. objects that say how to key them ------------------------------------------------


class Doc:
    def __init__(self, text: str) -> None:
        self.text = text

    def __cache_key__(self) -> str:
        return self.text


class Draft(Doc):
    pass


@pytest.mark.parametrize("engine", MEMORY_ENGINES)
def test_cache_key_objects_are_keyed_by_it_in_memory(engine: str, calls: Calls) -> None:
    """Two equal Doc objects hit; a subclass with an equal key never gets the parent's result."""

    @mcache(engine=engine)
    def kind(doc: Doc) -> str:
        calls(type(doc).__name__)
        return type(doc).__name__

    assert [kind(Doc("abc")), kind(Doc("abc")), kind(Draft("abc"))] == ["Doc", "Doc", "Draft"]
    assert calls == ["Doc", "Draft"]


# -- 4. methods ---------------------------------------------------------------------------


class Account:
    def __init__(self, owner: int) -> None:
        self.owner = owner

    @mcache
    def statement(self, month: int) -> tuple[int, int]:
        return (self.owner, month)


def test_clearing_during_method_calls_never_attaches_a_result_to_another_instance() -> None:
    """One thread clears every cache in a loop while another calls methods of new instances."""
    stop = threading.Event()

    def clearer() -> None:
        while not stop.is_set():
            Account.statement.cache_clear()
            clear_cache()

    thread = threading.Thread(target=clearer)
    thread.start()
    wrong = 0
    try:
        deadline = time.monotonic() + 1.0
        i = 0
        while time.monotonic() < deadline:
            i += 1
            if Account(i).statement(1) != (i, 1):
                wrong += 1
    finally:
        stop.set()
        thread.join()
    assert wrong == 0
    assert i > 100


def test_method_controls_work_through_an_instance(calls: Calls) -> None:
    """a.f.cache_delete(x) and a.f.cache_refresh(x) find a's entry."""

    class Meter:
        def __init__(self, base: int) -> None:
            self.base = base

        @mcache
        def read(self, x: int) -> int:
            calls(x)
            return self.base + x

    a, b = Meter(10), Meter(20)
    assert [a.read(1), b.read(1)] == [11, 21]
    assert a.read.cache_delete(1) is True
    assert a.read.cache_delete(1) is False
    assert b.read(1) == 21  # b's entry stayed
    a.base = 100
    assert a.read.cache_refresh(1) == 101
    assert a.read(1) == 101
    assert calls == [1, 1, 1]


# -- 6. re-entrancy -------------------------------------------------------------------------


@pytest.mark.parametrize("lock", [True, False])
@pytest.mark.parametrize("engine", MEMORY_ENGINES)
def test_arguments_whose_eq_and_hash_call_the_cache_never_deadlock(engine: str, lock: bool) -> None:
    """__hash__ and __eq__ that call the same cached function: right values, no hang."""
    hashes: list[int] = []

    class Key:
        def __init__(self, n: int) -> None:
            self.n = n

        def __hash__(self) -> int:
            hashes.append(self.n)
            size(0)
            return hash(self.n)

        def __eq__(self, other: object) -> bool:
            size(0)
            return isinstance(other, Key) and other.n == self.n

    @mcache(engine=engine, lock=lock)
    def size(k: Any) -> int:
        return k if isinstance(k, int) else k.n * 10

    done: list[list[int]] = []
    worker = threading.Thread(
        target=lambda: done.append([size(Key(3)), size(Key(3)), size(Key(2))]), daemon=True
    )
    worker.start()
    worker.join(20)
    assert done == [[30, 30, 20]], "the call hung"
    hashes.clear()
    size(Key(3))  # a hit
    assert len(hashes) <= 2


# -- 7. fork --------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_never_waits_for_the_parents_computation() -> None:
    """A child forked while a thread computes a key computes it itself, at once."""
    started, release = threading.Event(), threading.Event()

    @mcache
    def slow(x: int) -> str:
        if os.getpid() == parent:
            started.set()
            release.wait(30)
        return f"computed in {os.getpid()}"

    parent = os.getpid()
    thread = threading.Thread(target=slow, args=(1,))
    thread.start()
    assert started.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: must not wait for a computation that will never land here
        try:
            ok = slow(1) == f"computed in {os.getpid()}"
        finally:
            os._exit(0 if ok else 1)
    try:
        deadline = time.monotonic() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung waiting for the parent's computation")
            time.sleep(0.02)
        assert os.WIFEXITED(status)
        assert os.WEXITSTATUS(status) == 0
    finally:
        release.set()
        thread.join()


# -- 8. async -----------------------------------------------------------------------------


def test_an_async_function_awaiting_itself_raises_promptly() -> None:
    """The async form of unbounded self-recursion raises RecursionError, like the sync form."""

    @acache
    async def selfish(x: int) -> int:
        return await selfish(x)

    async def main() -> str:
        try:
            await asyncio.wait_for(selfish(1), 20)
        except RecursionError:
            return "RecursionError"
        return "returned"

    assert asyncio.run(main()) == "RecursionError"


def test_compute_once_holds_across_event_loops_in_threads(calls: Calls) -> None:
    """4 threads, each running its own loop with 20 tasks on one cold key: one computation."""
    barrier = threading.Barrier(4)

    @acache
    async def slow(x: int) -> int:
        calls(x)
        await asyncio.sleep(0.3)
        return x

    results: list[list[int]] = []

    def run() -> None:
        async def main() -> list[int]:
            return await asyncio.gather(*(slow(7) for _ in range(20)))

        barrier.wait()
        results.append(asyncio.run(main()))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [[7] * 20] * 4
    assert calls == [7]
    assert slow.cache_info().hits == 79


def test_a_cancelled_waiter_on_a_cross_process_lock_releases_it(tmp_path: Path) -> None:
    """A task cancelled while waiting for another process's key lock leaves no lock behind."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
            import os, time
            from pathlib import Path
            from twat_cache.config import CacheConfig
            from twat_cache.engines.disk import DiskCacheEngine
            store = DiskCacheEngine(CacheConfig(cache_dir={str(tmp_path)!r}, name="locked"))
            with store.key_lock("k"):
                Path({str(tmp_path / "held")!r}).touch()
                time.sleep(1.5)
            print("released")
            """
            ),
        ],
        env=dict(os.environ),
    )
    from twat_cache.config import CacheConfig
    from twat_cache.engines.disk import DiskCacheEngine

    store = DiskCacheEngine(CacheConfig(cache_dir=tmp_path, name="locked"))
    deadline = time.monotonic() + 20
    while not (tmp_path / "held").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)

    async def main() -> None:
        lock = store.akey_lock("k")
        assert lock is not None
        task = asyncio.ensure_future(lock.__aenter__())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    holder.wait(20)
    lock = store.key_lock("k")
    assert lock is not None
    start = time.monotonic()
    with lock as acquired:  # free again: taken at once, not after the 60 s timeout
        assert acquired
    assert time.monotonic() - start < 10
    store.close()


# -- 9. failures under concurrency ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_waiters_of_a_failing_computation_get_its_exception_at_once(kind: str) -> None:
    """Callers joined to a computation that raises get that exception; it ran once."""
    runs: list[int] = []
    entered = threading.Event()

    if kind == "sync":
        waiting: set[int] = set()

        def parked(ident: int) -> bool:
            # A waiter has joined once its thread blocks in the flight's wait (call/flight.py).
            frame = sys._current_frames().get(ident)
            while frame is not None:
                if frame.f_code.co_name == "wait" and frame.f_code.co_filename.endswith(
                    "flight.py"
                ):
                    return True
                frame = frame.f_back
            return False

        @mcache
        def fail(x: int) -> int:
            runs.append(x)
            entered.set()
            # Raise only once all nine waiters have joined, however slow the machine.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (
                len(waiting) == 9 and all(parked(ident) for ident in waiting)
            ):
                time.sleep(0.005)
            raise ValueError("boom")

        errors: list[BaseException] = []

        def call() -> None:
            try:
                fail(1)
            except ValueError as exc:
                errors.append(exc)

        first = threading.Thread(target=call)
        first.start()
        assert entered.wait(10)
        others = [threading.Thread(target=call) for _ in range(9)]
        for t in others:
            t.start()
            assert t.ident is not None
            waiting.add(t.ident)
        for t in [first, *others]:
            t.join(30)
        assert len(errors) == 10
    else:

        @acache
        async def afail(x: int) -> int:
            runs.append(x)
            await asyncio.sleep(0.3)
            raise ValueError("boom")

        async def main() -> list[Any]:
            return await asyncio.gather(*(afail(1) for _ in range(10)), return_exceptions=True)

        outcomes = asyncio.run(main())
        assert all(isinstance(o, ValueError) for o in outcomes)
    assert runs == [1]


def test_callers_served_by_another_computation_count_as_hits(calls: Calls) -> None:
    """8 threads on one cold key: 1 miss, 7 hits."""
    barrier = threading.Barrier(8)

    @mcache
    def slow(x: int) -> int:
        calls(x)
        time.sleep(0.2)
        return x

    def call() -> int:
        barrier.wait()
        return slow(3)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert calls == [3]
    info = slow.cache_info()
    assert (info.hits, info.misses) == (7, 1)


# -- 10. recursion depth --------------------------------------------------------------------


def _deepest(decorate: Any) -> int:
    @decorate
    def fib(n: int) -> int:
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    # The deepest n in 100, 110, ..., 990 that runs cold, found by bisection: a depth that
    # overflows overflows deeper too, and each cold probe costs n stores.
    lo, hi = 0, 90  # steps: fib(100 + 10 * step); lo - 1 ran, hi has not been shown to run
    while lo < hi:
        mid = (lo + hi) // 2
        fib.cache_clear()
        try:
            fib(100 + 10 * mid)
        except RecursionError:
            hi = mid
        else:
            lo = mid + 1
    return 0 if lo == 0 else 100 + 10 * (lo - 1)


def test_a_cold_recursive_function_goes_as_deep_as_lru_cache() -> None:
    """fib cold reaches the depth functools.lru_cache reaches, on mcache and bcache alike.

    Two frames per level, as lru_cache (the wrapper calls the function itself); the
    lookup and store at the deepest level add a few frames once, never per level
    (measured outside pytest: lru_cache 499, mcache 497, bcache 496).
    """
    import functools

    lru = _deepest(functools.lru_cache(maxsize=None))
    assert _deepest(mcache(maxsize=None)) >= lru - 20
    assert _deepest(bcache) >= lru - 20


def test_a_self_referencing_argument_is_a_cache_key_error() -> None:
    """A list that contains itself cannot be keyed: CacheKeyError naming it, no RecursionError."""
    loop: list[Any] = []
    loop.append(loop)

    @mcache
    def size(items: list[Any]) -> int:
        return len(items)

    @bcache
    def bsize(items: list[Any]) -> int:
        return len(items)

    for f in (size, bsize):
        with pytest.raises(CacheKeyError, match="'items'"):
            f(loop)


# -- 11. every valid ttl works on every engine -----------------------------------------------


@pytest.mark.parametrize("ttl", [0, 1e-9, 0.5, 1e9, 1e19, 1e300])
@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo", "rr", "ttl"])
@pytest.mark.parametrize("engine", MEMORY_ENGINES)
def test_every_valid_ttl_works(engine: str, policy: str, ttl: float, calls: Calls) -> None:
    """No process abort, no error: a long ttl hits, ttl=0 never stores."""
    if engine == "functools" and policy in ("lfu", "rr"):
        pytest.skip("functools has no LFU or RR policy")

    @mcache(engine=engine, policy=policy, ttl=ttl)
    def echo(x: int) -> int:
        calls(x)
        return x

    assert [echo(1), echo(1)] == [1, 1]
    if ttl >= 1e9:
        assert calls == [1]
    if ttl == 0:
        assert calls == [1, 1]


# -- 12. the user's exception is the user's --------------------------------------------------


@pytest.mark.parametrize("engine", [*MEMORY_ENGINES, "diskcache"])
def test_user_exceptions_carry_no_cache_context(engine: str) -> None:
    """An IndexError from the function has no cache-internal __context__ (no KeyError)."""
    decorator = bcache if engine == "diskcache" else mcache(engine=engine)

    @decorator
    def pick(items: tuple[int, ...], i: int) -> int:
        return items[i]

    with pytest.raises(IndexError) as info:
        pick((1, 2), 5)
    assert info.value.__context__ is None
    assert info.value.__cause__ is None


def test_keyboard_interrupt_releases_every_lock(calls: Calls) -> None:
    """An interrupted computation leaves no flight behind: the next call computes at once."""
    interrupt = [True]

    @mcache
    def work(x: int) -> int:
        calls(x)
        if interrupt[0]:
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        work(1)
    interrupt[0] = False
    assert work(1) == 1
    assert calls == [1, 1]
    assert len(work._twat_core.path.flights) == 0  # type: ignore[attr-defined]


# -- 13. setups that can never cache are said out loud -------------------------------------


class WriteOnlyStyle:
    """A backend the pydantic-cache way: get and write, nothing else."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes:
        return self.data[key]

    def write(self, key: str, value: bytes) -> None:
        self.data[key] = value


def test_a_get_and_write_backend_works_and_says_what_it_lacks(calls: Calls) -> None:
    """write serves as set; cache_delete and cache_clear name the missing method."""
    backend = WriteOnlyStyle()

    @mcache(backend=backend)
    def double(x: int) -> int:
        calls(x)
        return 2 * x

    assert [double(2), double(2)] == [4, 4]
    assert calls == [2]
    assert len(backend.data) == 1
    assert double.cache_delete(2) is False  # the fault is counted, never raised
    assert get_stats(double.cache_parameters()["name"])["errors"] == 1
    with pytest.raises(CacheOperationError, match="clear"):
        double.cache_clear()


def test_a_backend_class_that_cannot_store_is_refused_at_decoration() -> None:
    """A Backend subclass missing get/set (abstract) given as a factory: ConfigurationError now."""

    class Half(Backend):
        def get(self, key: str) -> bytes:
            raise KeyError(key)

    with pytest.raises(ConfigurationError, match="abstract"):
        mcache(backend=Half)

    class NoStore:
        def get(self, key: str) -> bytes:
            raise KeyError(key)

    with pytest.raises(ConfigurationError, match="set"):
        mcache(backend=NoStore())


def test_a_location_arg_that_is_not_a_path_uses_the_default_root(
    calls: Calls, cache_root: Path
) -> None:
    """location_arg given None or a number stores under the cache's own folder."""

    @bcache(location_arg="where")
    def load(x: int, where: Any = None) -> int:
        calls(x)
        return x

    assert [load(1, None), load(1, None), load(2, 5), load(2, 5)] == [1, 1, 2, 2]
    assert calls == [1, 2]


# -- 14. clear_cache clears what it can ----------------------------------------------------


def test_clear_cache_clears_all_it_can_then_names_the_rest(calls: Calls) -> None:
    """One cache whose store fails to clear: the others are cleared, one error names it."""

    class NoClear:
        def __init__(self) -> None:
            self.data: dict[str, bytes] = {}

        def get(self, key: str) -> bytes:
            return self.data[key]

        def set(self, key: str, value: bytes, ttl: float | None) -> None:
            self.data[key] = value

    @mcache(backend=NoClear(), name="stubborn")
    def stubborn(x: int) -> int:
        return x

    @mcache(name="easy")
    def easy(x: int) -> int:
        calls(x)
        return x

    stubborn(1), easy(1)
    with pytest.raises(CacheOperationError, match="stubborn"):
        clear_cache()
    easy(1)
    assert calls == [1, 1]  # easy was cleared all the same


# -- 16. nothing keeps user arguments alive ------------------------------------------------


class Blob:
    def __init__(self, size: int) -> None:
        self.data = b"x" * size

    def __cache_key__(self) -> int:
        return len(self.data)


@pytest.mark.parametrize("decorator", ["bcache", "mcache"])
def test_arguments_are_not_kept_alive(decorator: str) -> None:
    """After a call (and after cache_clear), the arguments are garbage."""
    cached = bcache if decorator == "bcache" else mcache

    @cached
    def size(blob: Blob, text: str) -> int:
        return len(blob.data) + len(text)

    blob = Blob(1 << 20)
    ref = weakref.ref(blob)
    assert size(blob, "y" * 100) == (1 << 20) + 100
    del blob
    gc.collect()
    assert ref() is None
    size.cache_clear()
    assert registry.names()


@pytest.mark.parametrize("decorator", [mcache, bcache, acache])
def test_generator_functions_are_refused_at_decoration(decorator: Any) -> None:
    """A cached generator would be handed out exhausted: refused, naming the function."""

    def numbers(n: int) -> Any:
        yield from range(n)

    async def anumbers(n: int) -> Any:
        for i in range(n):
            yield i

    for target in (numbers, anumbers):
        with pytest.raises(ConfigurationError, match="generator"):
            decorator(target)
