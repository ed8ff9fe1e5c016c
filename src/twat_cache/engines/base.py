"""The one store contract: every engine stores and fetches through :class:`Store`.

Keys, statistics, compute-once locking and fault isolation live in the call
path (``twat_cache.call``); a store is a thin adapter over one library,
importing it in its constructor so that ``import twat_cache`` never imports
an optional package. ``CacheEngine`` and ``AsyncCacheEngine`` are the public
names of the same contract (a store serves sync and async functions alike).
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, MutableMapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, ClassVar

from twat_cache._threads import executor
from twat_cache._types import MISSING
from twat_cache.config import CacheConfig
from twat_cache.exceptions import SerializationError

__all__ = ["AsyncCacheEngine", "CacheEngine", "Store"]


class Store(ABC):
    """The one store contract every engine implements: store and fetch, nothing else.

    Keys, statistics, compute-once locking and fault isolation belong to the
    call path (``twat_cache.call``); a store never counts, never logs and never
    catches its own errors. It imports its library in ``__init__`` so that
    ``import twat_cache`` imports no optional package.

    ``ttl`` has one meaning everywhere: the seconds this entry lives, decided
    by the caller (the decorators pass the config's ``ttl``); ``None`` means it
    never expires and ``0`` means it expires at once (nothing is kept). A store
    that cannot honour a per-entry ``ttl`` refuses such a config in
    :meth:`unsupported`, so that selection moves on.

    Capabilities are declared, not guessed:

    - ``in_process``: values are live Python objects in this process, held in
      ``mapping`` (read directly by the generated hit path; ``KeyError`` is a
      miss, ``TypeError`` an unhashable key). When ``stamped`` is true each
      mapping value is ``(value, deadline)`` with a ``time.monotonic()``
      deadline (``math.inf`` for no expiry).
    - ``persistent``: entries outlive the process (the code version joins the
      key namespace); ``shared``: other processes read the same entries (keys
      are stable ``str`` digests, values go through the framed codec).
    - :meth:`key_lock`: a per-key lock across processes, or ``None``.
    - ``native_async``: ``aget``/``aset``/``adelete``/``aclear``/``akey_lock``
      are real coroutines; otherwise the defaults below run the sync methods in
      the shared thread pool (in-process stores override them to call directly).
    """

    name: ClassVar[str]
    requires: ClassVar[str | None] = None
    in_process: ClassVar[bool] = False
    persistent: ClassVar[bool] = False
    shared: ClassVar[bool] = False
    native_async: ClassVar[bool] = False
    #: ``(value, deadline)`` pairs in ``mapping`` (in-process stores only).
    stamped: bool = False
    mapping: MutableMapping[Hashable, Any]

    def __init__(self, config: CacheConfig) -> None:
        self.config = config

    @classmethod
    def is_available(cls) -> bool:
        """True when the library behind the store is installed (checked without importing)."""
        if cls.requires is None:
            return True
        try:
            return importlib.util.find_spec(cls.requires) is not None
        except (ImportError, ValueError):
            return False

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        """Why this store cannot serve ``config``, or ``None`` when it can."""
        return None

    @abstractmethod
    def get(self, key: Hashable) -> Any:
        """The stored value, or ``MISSING`` (never ``None`` for a miss)."""

    @abstractmethod
    def set(self, key: Hashable, value: Any, ttl: float | None) -> None:
        """Keep ``value`` for ``ttl`` seconds (``None``: no expiry; ``0``: not kept)."""

    @abstractmethod
    def delete(self, key: Hashable) -> bool:
        """Drop one entry; True if it was there."""

    @abstractmethod
    def clear(self) -> None:
        """Drop every entry of this cache (and only this cache's)."""

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release files, connections or threads; the store is not used afterwards."""

    def __len__(self) -> int:
        return 0

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key) is not MISSING

    def stats(self) -> dict[str, Any]:
        """Store-specific figures merged into ``get_stats()``."""
        return {}

    def add_counts(self, hits: int, misses: int) -> None:  # noqa: B027 - optional capability
        """Add this process's new hits and misses to the counters every process shares.

        Only shared stores keep such counters (``get_stats()["fleet"]``); the
        call path sends them in batches, never on a hit's fast path.
        """

    async def aadd_counts(self, hits: int, misses: int) -> None:
        """:meth:`add_counts` without blocking the event loop."""
        await _in_pool(self.add_counts, hits, misses)

    def fleet_counts(self) -> tuple[int, int] | None:
        """(hits, misses) summed over every process using this store, or ``None``."""
        return None

    def reset_counts(self) -> None:  # noqa: B027 - optional capability
        """Zero the shared counters (the cache was cleared)."""

    def adopt_version(  # noqa: B027 - optional: only persistent stores keep versions
        self, tag: tuple[str, ...], parts: Callable[[], dict[str, str]]
    ) -> None:
        """Entries are written under the code version ``tag`` from now on.

        A persistent store removes the entries of the version it held before
        on its first write under ``tag`` (they can never be read again);
        ``parts()`` names the functions the version covers, with their
        digests, so that ``cache_explain`` can say which one changed. Other
        stores ignore this.
        """

    def track_files(self, states: dict[str, tuple[Any, ...]]) -> None:  # noqa: B027 - optional
        """``states`` (path -> the state last keyed, kept up to date by the key plan) is
        recorded with each write, so that ``cache_explain`` in another process can tell a
        changed input file from a new call. Only persistent stores keep it."""

    def tracked_files(self) -> dict[str, tuple[Any, ...]]:
        """The file states recorded by :meth:`track_files` writes (any process)."""
        return {}

    def version_record(self) -> dict[str, Any] | None:
        """The code version the store's entries belong to, as recorded by
        :meth:`adopt_version` (``tag``, ``parts``, ``previous``); ``None`` when not kept."""
        return None

    def peek(self, key: Hashable) -> str:
        """What is stored under ``key``, for ``cache_explain``: ``"hit"``,
        ``"missing"``, ``"expired"`` or ``"corrupt"``. Never drops an entry
        where a store can tell without it (the default reads the value)."""
        try:
            value = self.get(key)
        except SerializationError:
            return "corrupt"
        return "missing" if value is MISSING else "hit"

    def key_lock(self, key: str) -> AbstractContextManager[object] | None:
        """A lock held across processes while one of them computes ``key``, or ``None``."""
        return None

    async def aget(self, key: Hashable) -> Any:
        """:meth:`get` without blocking the event loop."""
        return await _in_pool(self.get, key)

    async def aset(self, key: Hashable, value: Any, ttl: float | None) -> None:
        """:meth:`set` without blocking the event loop."""
        await _in_pool(self.set, key, value, ttl)

    async def adelete(self, key: Hashable) -> bool:
        """:meth:`delete` without blocking the event loop."""
        return bool(await _in_pool(self.delete, key))

    async def aclear(self) -> None:
        """:meth:`clear` without blocking the event loop."""
        await _in_pool(self.clear)

    def akey_lock(self, key: str) -> AbstractAsyncContextManager[object] | None:
        """:meth:`key_lock` for coroutines (entered and left in the thread pool)."""
        lock = self.key_lock(key)
        return None if lock is None else _PooledLock(lock)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


async def _in_pool(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(executor(), fn, *args)


class _PooledLock:
    """A blocking cross-process lock, entered and left in the shared pool.

    If the waiting task is cancelled, the pool thread that is still waiting
    for the lock gives it back as soon as it gets it (or it is given back at
    once, when it was already held), without needing the task's event loop,
    which may be closed by then: no other process waits for a holder that is gone.
    """

    __slots__ = ("_abandoned", "_entered", "_lock", "_mutex")

    def __init__(self, lock: AbstractContextManager[object]) -> None:
        self._lock = lock
        self._mutex = threading.Lock()
        self._abandoned = False
        self._entered = False

    def _enter(self) -> object:
        got = self._lock.__enter__()
        with self._mutex:
            if self._abandoned:
                self._lock.__exit__(None, None, None)
                return False
            self._entered = True
        return got

    async def __aenter__(self) -> object:
        fut = asyncio.get_running_loop().run_in_executor(executor(), self._enter)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            with self._mutex:
                self._abandoned = True
                entered = self._entered
            if entered:
                executor().submit(self._lock.__exit__, None, None, None)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await _in_pool(self._lock.__exit__, None, None, None)


#: The public names of the contract (API.md 5): one class serves sync and async functions.
CacheEngine = Store
AsyncCacheEngine = Store
