"""In-process engines of the ``mcache`` chain: cachebox > cachetools > functools."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterator, MutableMapping
from typing import Any, ClassVar, cast

from twat_cache.config import CacheConfig
from twat_cache.engines.base import MemoryEngine

__all__ = ["CacheBoxEngine", "CacheToolsEngine", "FunctoolsEngine"]


class CacheBoxEngine(MemoryEngine):
    """cachebox's Rust caches: thread-safe, the fastest hit of the chain."""

    name: ClassVar[str] = "cachebox"
    requires: ClassVar[str | None] = "cachebox"
    _CLASSES: ClassVar[dict[str, str]] = {
        "lru": "LRUCache",
        "lfu": "LFUCache",
        "fifo": "FIFOCache",
        "rr": "RRCache",
    }

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        if config.ttl is not None and config.policy not in ("ttl", "fifo"):
            return f"cachebox has no {config.policy.upper()} cache with expiry (ttl)"
        return None

    def __init__(self, config: CacheConfig) -> None:
        import cachebox  # optional engine, imported on use

        super().__init__(config)
        maxsize = config.maxsize or 0  # cachebox: 0 means unbounded
        if config.ttl is not None:
            # cachebox's stubs leave the key and value types to inference (Never here)
            self.mapping = cast(
                "MutableMapping[Hashable, Any]", cachebox.TTLCache(maxsize, config.ttl or 1e-9)
            )
        else:
            cache_cls = getattr(cachebox, self._CLASSES[config.policy])
            self.mapping = cache_cls(maxsize)


class _Locked(MutableMapping[Hashable, Any]):
    """A cachetools cache behind one lock: its reads reorder entries and are not thread-safe."""

    __slots__ = ("_cache", "_lock")

    def __init__(self, cache: MutableMapping[Hashable, Any]) -> None:
        self._cache = cache
        self._lock = threading.Lock()

    def __getitem__(self, key: Hashable) -> Any:
        with self._lock:
            return self._cache[key]

    def __setitem__(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._cache[key] = value

    def __delitem__(self, key: Hashable) -> None:
        with self._lock:
            del self._cache[key]

    def __iter__(self) -> Iterator[Hashable]:
        with self._lock:
            return iter(list(self._cache))

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


class CacheToolsEngine(MemoryEngine):
    """cachetools' caches (LRU, LFU, FIFO, RR, and LRU with expiry), guarded by a lock."""

    name: ClassVar[str] = "cachetools"
    requires: ClassVar[str | None] = "cachetools"

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        if config.ttl is not None and config.policy not in ("lru", "ttl"):
            return f"cachetools has no {config.policy.upper()} cache with expiry (ttl)"
        return None

    def __init__(self, config: CacheConfig) -> None:
        import cachetools  # imported on use, like every engine

        super().__init__(config)
        maxsize: float = math.inf if config.maxsize is None else max(config.maxsize, 1)
        cache: MutableMapping[Hashable, Any]
        if config.ttl is not None:
            cache = cachetools.TTLCache(maxsize, config.ttl)
        else:
            cache_cls = {
                "lru": cachetools.LRUCache,
                "lfu": cachetools.LFUCache,
                "fifo": cachetools.FIFOCache,
                "rr": cachetools.RRCache,
            }[config.policy]
            cache = cache_cls(maxsize)
        self.mapping = _Locked(cache)


class _Ordered(MutableMapping[Hashable, Any]):
    """LRU or FIFO order over the stdlib's ``OrderedDict``, with optional expiry."""

    __slots__ = ("_data", "_lock", "_lru", "_maxsize", "_ttl")

    def __init__(self, maxsize: int | None, ttl: float | None, lru: bool) -> None:
        self._data: OrderedDict[Hashable, tuple[Any, float]] = OrderedDict()
        self._maxsize = maxsize
        self._ttl = ttl
        self._lru = lru
        self._lock = threading.Lock()

    def __getitem__(self, key: Hashable) -> Any:
        value, deadline = self._data[key]
        if deadline and deadline <= time.monotonic():
            self._data.pop(key, None)
            raise KeyError(key)
        if self._lru:
            try:
                self._data.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile: still a valid hit
                pass
        return value

    def __setitem__(self, key: Hashable, value: Any) -> None:
        deadline = time.monotonic() + self._ttl if self._ttl is not None else 0.0
        with self._lock:
            self._data[key] = (value, deadline)
            self._data.move_to_end(key)
            if self._maxsize is not None:
                while len(self._data) > self._maxsize:
                    self._data.popitem(last=False)

    def __delitem__(self, key: Hashable) -> None:
        with self._lock:
            del self._data[key]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class FunctoolsEngine(MemoryEngine):
    """The standard library only: LRU or FIFO order, optional expiry; always available."""

    name: ClassVar[str] = "functools"

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        if config.policy in ("lfu", "rr"):
            return f"functools has no {config.policy.upper()} policy"
        return None

    def __init__(self, config: CacheConfig) -> None:
        super().__init__(config)
        self.mapping = _Ordered(config.maxsize, config.ttl, lru=config.policy != "fifo")
