"""acache, and async functions on every kind of engine: never block the loop."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from twat_cache import (
    AsyncBackend,
    Backend,
    acache,
    explain_selection,
    get_engine_manager,
    get_stats,
    mcache,
)
from twat_cache.engines import CHAINS
from twat_cache.engines.base import Store


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def test_acache_uses_aiocache_and_stays_a_coroutine_function(calls):
    """acache picks aiocache; the wrapper is still a coroutine function caching the result."""

    @acache
    async def fetch(x):
        calls(x)
        await asyncio.sleep(0)
        return {"x": x}

    assert inspect.iscoroutinefunction(fetch)

    async def main():
        return [await fetch(1), await fetch(1), await fetch(2)]

    assert run(main()) == [{"x": 1}, {"x": 1}, {"x": 2}]
    assert calls == [1, 2]
    assert fetch.cache_parameters()["engine"] == "aiocache"
    assert fetch.engine.name == "aiocache"
    assert fetch.cache_info().hits == 1
    assert "acache" in explain_selection(fetch)


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_a_hit_creates_no_task_and_no_thread(policy, calls):
    """Hits on aiocache (lru) or the memory fallback (lfu) create no task and start no thread."""

    @acache(maxsize=100, ttl=600 if policy == "lru" else None, policy=policy)
    async def fetch(x):
        calls(x)
        return x * 2

    created = []

    async def main():
        loop = asyncio.get_running_loop()
        await fetch(1)  # the miss
        threads = threading.active_count()

        def factory(loop, coro, **kwargs):
            created.append(coro)
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(factory)
        values = [await fetch(1) for _ in range(1000)]
        loop.set_task_factory(None)
        return values, threading.active_count() - threads

    values, new_threads = run(main())
    assert values == [2] * 1000
    assert created == []
    assert new_threads == 0
    assert calls == [1]
    assert fetch.cache_info().hits == 1000
    expected = "aiocache" if policy == "lru" else "cachebox"
    assert fetch.cache_parameters()["engine"] == expected


def test_ttl_expires_even_after_the_loop_that_stored_it_closed(calls):
    """Expiry is exact: an entry stored under one event loop expires under another."""

    @acache(ttl=0.1)
    async def f(x):
        calls(x)
        return x

    assert run(f(1)) == 1
    assert run(f(1)) == 1  # a hit from a second loop
    assert calls == [1]

    async def later():
        await asyncio.sleep(0.3)
        return await f(1)

    assert run(later()) == 1
    assert calls == [1, 1]


def test_maxsize_evicts_least_recently_used(calls):
    """maxsize=2 with LRU: the entry not used recently goes first."""

    @acache(maxsize=2)
    async def f(x):
        calls(x)
        return x

    async def main():
        for x in (1, 2, 1, 3, 1, 2):
            await f(x)

    run(main())
    assert calls == [1, 2, 3, 2]
    assert f.cache_info().currsize == 2


def test_maxsize_zero_never_stores(calls):
    """maxsize=0 caches nothing, as with lru_cache."""

    @acache(maxsize=0)
    async def f(x):
        calls(x)
        return x

    async def main():
        return [await f(1), await f(1)]

    assert run(main()) == [1, 1]
    assert calls == [1, 1]


def test_every_wrapper_method(calls):
    """cache_info/clear/parameters are plain; cache_delete/refresh/bypass are awaitable."""

    @acache(maxsize=10, name="methods")
    async def f(x):
        calls(x)
        return len(calls)

    async def main():
        assert await f(1) == 1
        assert await f(1) == 1
        assert await f.cache_delete(1) is True
        assert await f.cache_delete(1) is False
        assert await f(1) == 2
        assert await f.cache_refresh(1) == 3
        assert await f(1) == 3
        assert await f.cache_bypass(1) == 4
        assert await f(1) == 3  # bypass stored nothing
        assert f.__wrapped__.__name__ == "f"
        info = f.cache_info()
        f.cache_clear()
        return info

    info = run(main())
    assert (info.hits, info.maxsize, info.currsize) == (3, 10, 1)
    assert f.cache_info().currsize == 0
    assert f.cache_info().hits == 0
    params = f.cache_parameters()
    assert params["engine"] == "aiocache"
    assert params["is_async"] is True
    assert params["maxsize"] == 10
    assert get_stats("methods")["engine"] == "aiocache"


def test_200_concurrent_tasks_compute_once(calls):
    """200 tasks on one cold key await a single computation."""

    @acache
    async def fetch(x):
        calls(x)
        await asyncio.sleep(0.05)
        return x + 1

    async def main():
        return await asyncio.gather(*(fetch(1) for _ in range(200)))

    assert run(main()) == [2] * 200
    assert calls == [1]


def test_cancelling_the_computing_task_hands_over_to_a_waiter(calls):
    """Cancelling the task that computes never leaves the others hanging: one takes over."""
    started = []

    @acache
    async def fetch(x):
        calls(x)
        started.append(asyncio.current_task())
        await asyncio.sleep(0.1)
        return x * 10

    async def main():
        tasks = [asyncio.create_task(fetch(3)) for _ in range(50)]
        while not started:
            await asyncio.sleep(0)
        computing = started[0]
        computing.cancel()
        done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        return computing, tasks, done

    computing, tasks, done = run(main())
    index = tasks.index(computing)
    assert isinstance(done[index], asyncio.CancelledError)
    assert [d for i, d in enumerate(done) if i != index] == [30] * 49
    assert calls == [3, 3]  # the cancelled computation, then one waiter's


def test_acache_on_a_sync_function_works(calls):
    """Every store serves sync and async functions: acache on a plain function caches."""

    @acache(ttl=60)
    def f(x):
        calls(x)
        return x

    assert [f(1), f(1), f(2)] == [1, 1, 2]
    assert calls == [1, 2]
    assert f.cache_parameters()["engine"] == "aiocache"
    assert f.cache_info().hits == 1


def test_every_engine_is_one_store_contract():
    """aiocache and redis implement one contract, with native coroutines where they exist."""
    manager = get_engine_manager()
    for name in ("aiocache", "redis", "diskcache", "cachebox"):
        assert issubclass(manager.engine_class(name), Store)
    assert manager.engine_class("redis").native_async
    assert "aiocache" in manager.available()


# -- Backend and AsyncBackend, with sync and async functions ---------------------------


class FileBackend(Backend):
    """A real on-disk backend: one file per key. Records the threads that did its I/O."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.threads: set[int] = set()

    def get(self, key: str) -> bytes:
        self.threads.add(threading.get_ident())
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self.threads.add(threading.get_ident())
        (self.root / key).write_bytes(value)

    def delete(self, key: str) -> bool:
        try:
            (self.root / key).unlink()
        except FileNotFoundError:
            return False
        return True

    def clear(self) -> None:
        for path in self.root.iterdir():
            path.unlink()


class DictAsyncBackend(AsyncBackend):
    """An async backend over a dict; awaits between steps like a network client would."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes:
        await asyncio.sleep(0)
        return self.data[key]

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        await asyncio.sleep(0)
        self.data[key] = value

    async def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    async def clear(self) -> None:
        self.data.clear()


@pytest.mark.parametrize("kind", ["sync backend", "async backend"])
def test_backends_serve_sync_and_async_functions(kind, tmp_path, calls):
    """Backend and AsyncBackend both work with sync and async functions (values as bytes)."""
    backend = FileBackend(tmp_path / "files") if kind == "sync backend" else DictAsyncBackend()

    @mcache(backend=lambda: backend, name="b")
    def sync_f(x):
        calls(("sync", x))
        return {"x": x}

    @mcache(backend=backend, name="b")
    async def async_f(x):
        calls(("async", x))
        return {"x": x}

    assert [sync_f(1), sync_f(1)] == [{"x": 1}, {"x": 1}]
    assert run(async_f(1)) == {"x": 1}  # same name, same key: stored by sync_f
    assert run(async_f(2)) == {"x": 2}
    assert sync_f(2) == {"x": 2}
    assert calls == [("sync", 1), ("async", 2)]
    assert sync_f.cache_parameters()["engine"] == "backend"
    assert run(async_f.cache_delete(2)) is True
    assert sync_f.cache_delete(2) is False


def test_async_function_runs_sync_disk_io_off_the_loop(tmp_path, calls):
    """A large store and its reads run in the pool: the loop keeps ticking meanwhile."""
    backend = FileBackend(tmp_path / "big")
    payload = b"x" * (32 * 1024 * 1024)

    @mcache(backend=backend)
    async def load(x):
        calls(x)
        return payload

    async def main():
        loop_thread = threading.get_ident()
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        first = await load(1)
        during_store = ticks - before
        before = ticks
        second = await load(1)
        during_hit = ticks - before
        stop = True
        await task
        return loop_thread, first, second, during_store, during_hit

    loop_thread, first, second, during_store, during_hit = run(main())
    assert first == second == payload
    assert calls == [1]
    assert during_store > 0
    assert during_hit > 0
    assert loop_thread not in backend.threads


def _disk_engines() -> list[Any]:
    names = [*CHAINS.get("bcache", ()), *CHAINS.get("fcache", ())]
    manager = get_engine_manager()
    found = []
    for name in dict.fromkeys(names):
        cls = manager.engine_class(name)
        if not cls.in_process and cls.is_available():
            found.append(name)
    return found or [
        pytest.param(None, marks=pytest.mark.skip(reason="no bcache/fcache engine in this build"))
    ]


@pytest.mark.parametrize("engine", _disk_engines())
def test_disk_engines_store_off_the_loop(engine, calls):
    """bcache/fcache engines on an async def: the large store runs in the pool."""
    payload = list(range(2_000_000))

    @mcache(engine=engine, folder_name="async-disk")
    async def load(x):
        calls(x)
        return payload

    async def main():
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        value = await load(1)
        during = ticks - before
        stop = True
        await task
        return value, during

    value, during = run(main())
    assert value == payload
    assert during > 0
    assert calls == [1]
