"""The ``acache`` store: aiocache's in-process ``SimpleMemoryCache``, read without a coroutine.

Why not aiocache's own API on the hot path: ``SimpleMemoryCache.get`` runs
through its plugin and key-building decorators (about 20x an ``async def``
dict lookup here) and, with its default ``timeout``, wraps every call in
``asyncio.wait_for``, which creates a task per call. This store keeps
aiocache as the store — its dict and its per-key expiry timers on the event
loop, which free expired entries nobody reads — and the generated wrapper
reads that dict directly on a hit: no await, no task, no thread.

It uses three private parts of aiocache (``_cache``, ``_handlers``, ``_set``)
and checks all three when it starts; if a release changes them, the store
refuses to start and selection moves on to the memory chain.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Hashable, MutableMapping
from typing import Any, ClassVar

from twat_cache.config import CacheConfig
from twat_cache.engines.memory import MemoryStore, _Ordered, order_only

__all__ = ["AioCacheEngine"]


class AioCacheEngine(MemoryStore):
    """aiocache's ``SimpleMemoryCache`` as the ``acache`` store (LRU or FIFO, ttl, maxsize)."""

    name: ClassVar[str] = "aiocache"
    requires: ClassVar[str | None] = "aiocache"

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        return order_only(cls.name, config)

    def make_mapping(self, config: CacheConfig) -> MutableMapping[Hashable, Any]:
        from aiocache import SimpleMemoryCache

        # timeout=None: no asyncio.wait_for, hence no task per operation.
        cache = SimpleMemoryCache(timeout=None)
        if not (
            isinstance(getattr(cache, "_cache", None), dict)
            and isinstance(getattr(cache, "_handlers", None), dict)
            and inspect.iscoroutinefunction(getattr(cache, "_set", None))
        ):
            msg = "this aiocache release keeps its entries differently (_cache, _handlers, _set)"
            raise TypeError(msg)
        self._aio = cache
        # aiocache stores into (and expires from) our mapping, which keeps the order and
        # the bound; an unbounded cache needs no order at all: a plain dict reads fastest.
        mapping: MutableMapping[Hashable, Any]
        if config.maxsize is None:
            mapping = {}
        elif importlib.util.find_spec("cachebox") is not None:  # order and bound in Rust
            import cachebox

            kind: Any = cachebox.LRUCache if config.policy == "lru" else cachebox.FIFOCache
            mapping = kind(config.maxsize)
        else:
            mapping = _Ordered(config.maxsize, lru=config.policy == "lru")
        cache._cache = mapping
        return mapping

    async def aset(self, key: Hashable, value: Any, ttl: float | None) -> None:
        if not self.keep:
            return
        if ttl == 0:  # expires at once: nothing is kept, not even an older value
            self._drop(key)
            return
        # Through aiocache: its timer frees the entry when it expires, even if never read;
        # expiry itself is checked on every read (the stamp, or the deadline kept aside),
        # also from sync code, where ``set`` has no loop for a timer.
        await self._aio._set(key, self._stored(key, value, ttl), ttl=ttl)

    def _drop(self, key: Hashable) -> bool:
        handle = self._aio._handlers.pop(key, None)
        if handle is not None:
            handle.cancel()
        return super()._drop(key)

    def clear(self) -> None:
        for handle in list(self._aio._handlers.values()):
            handle.cancel()
        self._aio._handlers.clear()
        super().clear()

    def close(self) -> None:
        self.clear()
