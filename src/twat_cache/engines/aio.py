"""The ``acache`` engine: aiocache's in-process store, read without creating a coroutine.

Why not aiocache's own API on the hot path: ``SimpleMemoryCache.get`` runs
through its plugin and key-building decorators (about 20x an ``async def``
dict lookup here) and, with its default ``timeout``, wraps every call in
``asyncio.wait_for``, which creates a task per call. This engine keeps
aiocache as the store (its dict and its per-key expiry timers on the event
loop, which free expired entries without a read) and calls its backend
methods directly on a miss, while the wrapper reads the dict through
:class:`_Entries` on a hit: no await, no task, no thread.

Each entry is ``(value, deadline)``, so expiry is exact even when the loop
that scheduled aiocache's timer has since closed; ``maxsize`` evicts the
oldest (``fifo``) or least recently used (``lru``) entry.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping
from typing import Any, ClassVar

from twat_cache._types import MISSING
from twat_cache.config import CacheConfig
from twat_cache.engines.base import AsyncCacheEngine

__all__ = ["AioCacheEngine"]


class _Entries(Mapping[Hashable, Any]):
    """The wrapper's view of the store: ``KeyError`` for a missing or expired entry."""

    __slots__ = ("_data", "_lru")

    def __init__(self, data: OrderedDict[Hashable, tuple[Any, float]], lru: bool) -> None:
        self._data = data
        self._lru = lru

    def __getitem__(self, key: Hashable) -> Any:
        value, deadline = self._data[key]
        if deadline and deadline <= time.monotonic():
            raise KeyError(key)
        if self._lru:
            try:
                self._data.move_to_end(key)
            except KeyError:  # evicted meanwhile by another thread: still a valid hit
                pass
        return value

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)


class AioCacheEngine(AsyncCacheEngine):
    """aiocache's ``SimpleMemoryCache`` as the ``acache`` engine (LRU or FIFO, ttl, maxsize)."""

    name: ClassVar[str] = "aiocache"
    requires: ClassVar[str | None] = "aiocache"
    in_memory: ClassVar[bool] = True

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        if config.policy in ("lfu", "rr"):
            return f"aiocache has no {config.policy.upper()} policy"
        return None

    def __init__(self, config: CacheConfig) -> None:
        from aiocache import SimpleMemoryCache

        super().__init__(config)
        # timeout=None: no asyncio.wait_for, hence no task per operation.
        self._cache = SimpleMemoryCache(timeout=None)
        if not isinstance(getattr(self._cache, "_cache", None), dict):
            msg = "this aiocache version does not keep its entries in a dict"
            raise TypeError(msg)
        self._data: OrderedDict[Hashable, tuple[Any, float]] = OrderedDict()
        self._cache._cache = self._data  # aiocache stores into (and expires from) our dict
        bounded = config.maxsize is not None
        self.mapping = _Entries(self._data, lru=bounded and config.policy != "fifo")

    def _deadline(self, ttl: float | None) -> float:
        return time.monotonic() + ttl if ttl else 0.0

    async def get(self, key: Hashable) -> Any:
        try:
            return self.mapping[key]
        except KeyError:
            return MISSING

    async def set(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        ttl = self.config.ttl if ttl is None else ttl
        if self.config.maxsize == 0 or ttl == 0:
            return  # as lru_cache(maxsize=0): never store
        await self._cache._set(key, (value, self._deadline(ttl)), ttl=ttl)
        self._data.move_to_end(key)
        limit = self.config.maxsize
        if limit is not None:
            while len(self._data) > limit:
                self._evict(next(iter(self._data)))

    def _evict(self, key: Hashable) -> bool:
        handle = self._cache._handlers.pop(key, None)
        if handle is not None:
            handle.cancel()
        return self._data.pop(key, MISSING) is not MISSING

    async def delete(self, key: Hashable) -> bool:
        return self._evict(key)

    async def clear(self) -> None:
        self.clear_sync()

    def clear_sync(self) -> None:
        for handle in list(self._cache._handlers.values()):
            handle.cancel()
        self._cache._handlers.clear()
        self._data.clear()

    def close(self) -> None:
        self.clear_sync()

    def __len__(self) -> int:
        return len(self._data)
