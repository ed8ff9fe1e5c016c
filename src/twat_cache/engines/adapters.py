"""Bridges between sync and async: a thread pool for sync engines, a loop for async backends.

Why: an ``async def`` function must never block its event loop on disk or
network I/O, and a sync function must be able to use an ``AsyncBackend``.
:class:`ThreadedEngine` runs a sync engine's calls in one shared thread pool
(no thread per call); :func:`run_sync` runs a coroutine on one shared
background loop; :class:`BackendEngine` turns a user :class:`Backend` or
:class:`AsyncBackend` into an engine usable from both kinds of function.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import threading
import time
from collections.abc import Coroutine, Hashable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, ClassVar, TypeVar

from twat_cache._types import MISSING
from twat_cache.config import CacheConfig
from twat_cache.engines.backend import AsyncBackend, Backend
from twat_cache.engines.base import AsyncCacheEngine, CacheEngine
from twat_cache.exceptions import ConfigurationError
from twat_cache.serializers import codec_for

__all__ = ["BackendEngine", "ThreadedEngine", "executor", "run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_executor: concurrent.futures.ThreadPoolExecutor | None = None
_loop: asyncio.AbstractEventLoop | None = None


def executor() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread pool every ``async def`` function uses for a sync engine's I/O."""
    global _executor
    if _executor is None:
        with _lock:
            if _executor is None:
                _executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=min(32, (os.cpu_count() or 1) + 4),
                    thread_name_prefix="twat_cache-io",
                )
    return _executor


def _forget_after_fork() -> None:
    """A forked child has neither the parent's pool threads nor its loop thread."""
    global _executor, _loop, _lock
    _executor = _loop = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    if _loop is None:
        with _lock:
            if _loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="twat_cache-loop", daemon=True
                ).start()
                _loop = loop
    return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, on the shared background loop.

    Works whether or not the calling thread runs a loop of its own (the
    coroutine never runs on the caller's loop, so it cannot deadlock it).
    """
    return asyncio.run_coroutine_threadsafe(coro, _background_loop()).result()


class ThreadedEngine(AsyncCacheEngine):
    """A sync engine seen through coroutines that run its calls in the shared pool."""

    name: ClassVar[str] = "threaded"

    def __init__(self, engine: CacheEngine) -> None:
        super().__init__(engine.config)
        self.engine = engine

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor(), fn, *args)

    async def get(self, key: Hashable) -> Any:
        return await self._run(self.engine.get, key)

    async def set(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        await self._run(self.engine.set, key, value, ttl)

    async def delete(self, key: Hashable) -> bool:
        return bool(await self._run(self.engine.delete, key))

    async def clear(self) -> None:
        await self._run(self.engine.clear)

    def clear_sync(self) -> None:
        self.engine.clear()

    def key_lock(self, key: str) -> AbstractAsyncContextManager[object] | None:
        lock = self.engine.key_lock(key)
        return None if lock is None else _ThreadedLock(self, lock)

    async def aclose(self) -> None:
        await self._run(self.engine.close)

    def close(self) -> None:
        self.engine.close()

    def __len__(self) -> int:
        return len(self.engine)


class _ThreadedLock:
    """A sync engine's cross-process lock, entered and left in the shared pool."""

    def __init__(self, engine: ThreadedEngine, lock: AbstractContextManager[object]) -> None:
        self.engine = engine
        self.lock = lock

    async def __aenter__(self) -> object:
        return await self.engine._run(self.lock.__enter__)

    async def __aexit__(self, *exc_info: object) -> None:
        await self.engine._run(self.lock.__exit__, None, None, None)


class BackendEngine(CacheEngine):
    """A user :class:`Backend` or :class:`AsyncBackend` (``backend=``) as an engine.

    The backend (or the zero-argument callable returning it) is resolved on
    the first call, not at decoration. Values are stored as bytes, signed when
    ``TWAT_CACHE_SECRET`` is set. An async backend used by a sync function runs
    on the shared background loop; a sync backend used by an ``async def``
    function runs in the shared thread pool.
    """

    name: ClassVar[str] = "backend"

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        if config.backend is None:
            return "no backend= object given"
        return None

    def __init__(self, config: CacheConfig) -> None:
        super().__init__(config)
        self._spec = config.backend
        self._backend: Backend | AsyncBackend | None = None
        self._is_async = False
        self._resolve_lock = threading.Lock()
        self.codec = codec_for(config.serializer, config.compress, config.secure)

    def resolve(self) -> tuple[Any, bool]:
        """The backend object and whether its methods are coroutines (resolved once)."""
        backend = self._backend
        if backend is None:
            with self._resolve_lock:
                backend = self._backend
                if backend is None:
                    backend = self._spec
                    if not _looks_like_backend(backend) and callable(backend):
                        backend = backend()
                    if not _looks_like_backend(backend):
                        msg = (
                            f"CacheConfig.backend: invalid value {self._spec!r}: expected a "
                            "Backend/AsyncBackend object (get, set, delete, clear) or a "
                            "zero-argument callable returning one"
                        )
                        raise ConfigurationError(msg)
                    self._is_async = inspect.iscoroutinefunction(backend.get)
                    self._backend = backend
        return backend, self._is_async

    def get(self, key: Hashable) -> Any:
        backend, is_async = self.resolve()
        try:
            data = run_sync(backend.get(str(key))) if is_async else backend.get(str(key))
        except KeyError:
            return MISSING
        return self.codec.decode(str(key), bytes(data))

    def set(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        backend, is_async = self.resolve()
        ttl = self.config.ttl if ttl is None else ttl
        data = self.codec.encode(str(key), value, time.time() + ttl if ttl else 0.0)
        if is_async:
            run_sync(backend.set(str(key), data, ttl))
        else:
            backend.set(str(key), data, ttl)

    def delete(self, key: Hashable) -> bool:
        backend, is_async = self.resolve()
        return bool(run_sync(backend.delete(str(key))) if is_async else backend.delete(str(key)))

    def clear(self) -> None:
        backend, is_async = self.resolve()
        if is_async:
            run_sync(backend.clear())
        else:
            backend.clear()

    def async_engine(self) -> AsyncCacheEngine:
        return _AsyncBackendView(self)


class _AsyncBackendView(AsyncCacheEngine):
    """The coroutine side of :class:`BackendEngine`: awaits an async backend directly."""

    name: ClassVar[str] = "backend"

    def __init__(self, engine: BackendEngine) -> None:
        super().__init__(engine.config)
        self.engine = engine

    async def _call(self, method: str, *args: Any) -> Any:
        backend, is_async = self.engine.resolve()
        if is_async:
            return await getattr(backend, method)(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor(), getattr(backend, method), *args)

    async def get(self, key: Hashable) -> Any:
        try:
            data = await self._call("get", str(key))
        except KeyError:
            return MISSING
        return self.engine.codec.decode(str(key), bytes(data))

    async def set(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        ttl = self.config.ttl if ttl is None else ttl
        data = self.engine.codec.encode(str(key), value, time.time() + ttl if ttl else 0.0)
        await self._call("set", str(key), data, ttl)

    async def delete(self, key: Hashable) -> bool:
        return bool(await self._call("delete", str(key)))

    async def clear(self) -> None:
        await self._call("clear")

    def clear_sync(self) -> None:
        self.engine.clear()


def _looks_like_backend(obj: Any) -> bool:
    if isinstance(obj, (Backend, AsyncBackend)):
        return True
    return not isinstance(obj, type) and all(
        callable(getattr(obj, name, None)) for name in ("get", "set", "delete", "clear")
    )
