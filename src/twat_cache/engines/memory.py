"""In-process stores of the ``mcache`` chain: cachebox > cachetools > functools.

Each keeps live Python objects in ``mapping``, which the generated hit path
reads directly. With a ``ttl`` (any policy) every entry is stamped
``(value, deadline)``, so expiry is per entry and exact, and the policy
(LRU, LFU, FIFO, RR) stays the library's own; expired entries are dropped
when read and swept every so often, so an unbounded cache does not grow
with dead entries. Keys are always plain (see ``keys.py``): no user code
runs inside a store's lock.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Iterator, MutableMapping
from typing import Any, ClassVar

from twat_cache._types import MISSING
from twat_cache.config import CacheConfig
from twat_cache.engines.base import Store

__all__ = ["CacheBoxEngine", "CacheToolsEngine", "FunctoolsEngine", "MemoryStore"]

_SWEEP_EVERY = 1024


class MemoryStore(Store):
    """The in-process store contract over one mapping; subclasses build the mapping."""

    in_process: ClassVar[bool] = True

    def __init__(self, config: CacheConfig) -> None:
        super().__init__(config)
        self.stamped = config.ttl is not None
        self.keep = config.maxsize != 0  # as lru_cache(maxsize=0): never store
        #: Deadlines of entries given their own ttl in an unstamped store (CacheContext).
        self._deadlines: dict[Hashable, float] = {}
        self._sets = 0
        self.mapping = self.make_mapping(config)

    def make_mapping(self, config: CacheConfig) -> MutableMapping[Hashable, Any]:
        """The library's cache object (bounded by ``maxsize``, with the config's policy)."""
        raise NotImplementedError

    def get(self, key: Hashable) -> Any:
        try:
            stored = self.mapping[key]
        except KeyError:
            return MISSING
        if self.stamped:
            value, deadline = stored
            if deadline <= time.monotonic():
                self._drop(key)
                return MISSING
            return value
        if self._deadlines:
            deadline = self._deadlines.get(key)
            if deadline is not None and deadline <= time.monotonic():
                self._drop(key)
                return MISSING
        return stored

    def peek(self, key: Hashable) -> str:
        """Read without dropping: an expired entry is reported as such."""
        try:
            stored = self.mapping[key]
        except KeyError:
            return "missing"
        deadline = stored[1] if self.stamped else self._deadlines.get(key, math.inf)
        return "expired" if deadline <= time.monotonic() else "hit"

    def set(self, key: Hashable, value: Any, ttl: float | None) -> None:
        if ttl is None and not self.stamped and not self._deadlines:  # nothing here expires
            if self.keep:
                self.mapping[key] = value
            return
        if not self.keep:
            return
        elif ttl == 0:  # expires at once: nothing is kept, not even an older value
            self._drop(key)
            return
        else:
            self.mapping[key] = self._stored(key, value, ttl)
        self._sets += 1
        if self._sets >= _SWEEP_EVERY:
            self._sets = 0
            self.sweep()

    def _stored(self, key: Hashable, value: Any, ttl: float | None) -> Any:
        """What the mapping keeps for ``value``: stamped with its deadline, or as it is
        (a deadline of its own, if any, kept aside)."""
        deadline = math.inf if ttl is None else time.monotonic() + ttl
        if self.stamped:
            return (value, deadline)
        if ttl is not None:
            self._deadlines[key] = deadline
        elif self._deadlines:
            self._deadlines.pop(key, None)
        return value

    def sweep(self) -> int:
        """Drop expired entries; how many went."""
        now = time.monotonic()
        if self.stamped:
            dead = [k for k, (_, deadline) in list(self.mapping.items()) if deadline <= now]
        else:
            dead = [k for k, deadline in list(self._deadlines.items()) if deadline <= now]
        for key in dead:
            self._drop(key)
        return len(dead)

    def _drop(self, key: Hashable) -> bool:
        self._deadlines.pop(key, None)
        try:
            del self.mapping[key]
        except KeyError:
            return False
        return True

    def delete(self, key: Hashable) -> bool:
        return self._drop(key)

    def clear(self) -> None:
        self.mapping.clear()
        self._deadlines.clear()

    def __len__(self) -> int:
        return len(self.mapping)

    # Nothing blocks here: the coroutine forms call straight through (no thread pool).
    async def aget(self, key: Hashable) -> Any:
        return self.get(key)

    async def aset(self, key: Hashable, value: Any, ttl: float | None) -> None:
        self.set(key, value, ttl)

    async def adelete(self, key: Hashable) -> bool:
        return self.delete(key)

    async def aclear(self) -> None:
        self.clear()


class CacheBoxEngine(MemoryStore):
    """cachebox's Rust caches: thread-safe, the fastest hit of the chain."""

    name: ClassVar[str] = "cachebox"
    requires: ClassVar[str | None] = "cachebox"
    _CLASSES: ClassVar[dict[str, str]] = {
        "lru": "LRUCache",
        "lfu": "LFUCache",
        "fifo": "FIFOCache",
        "rr": "RRCache",
        "ttl": "FIFOCache",  # expiry by the stamps; the oldest goes first when full
    }

    def make_mapping(self, config: CacheConfig) -> MutableMapping[Hashable, Any]:
        import cachebox  # optional engine: imported on use, never at import

        cache: MutableMapping[Hashable, Any] = getattr(cachebox, self._CLASSES[config.policy])(
            config.maxsize or 0  # cachebox: 0 means unbounded
        )
        return cache


class _Locked(MutableMapping[Hashable, Any]):
    """A cachetools cache behind one re-entrant lock: its reads reorder entries."""

    __slots__ = ("__weakref__", "_cache", "_lock")

    def __init__(self, cache: MutableMapping[Hashable, Any]) -> None:
        self._cache = cache
        self._lock = threading.RLock()
        _locked[id(self)] = self

    def __getitem__(self, key: Hashable) -> Any:
        with self._lock:
            return self._cache[key]

    def __setitem__(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._cache[key] = value

    def __delitem__(self, key: Hashable) -> None:
        with self._lock:
            del self._cache[key]

    def __contains__(self, key: object) -> bool:  # without a KeyError raised and caught
        with self._lock:
            return key in self._cache

    def __iter__(self) -> Iterator[Hashable]:
        with self._lock:
            return iter(list(self._cache))

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def after_fork(self) -> None:
        self._lock = threading.RLock()


class CacheToolsEngine(MemoryStore):
    """cachetools' caches (LRU, LFU, FIFO, RR), guarded by a lock."""

    name: ClassVar[str] = "cachetools"
    requires: ClassVar[str | None] = "cachetools"

    def make_mapping(self, config: CacheConfig) -> MutableMapping[Hashable, Any]:
        import cachetools  # imported on use, like every engine

        maxsize: float = math.inf if config.maxsize is None else max(config.maxsize, 1)
        cache_cls = {
            "lru": cachetools.LRUCache,
            "lfu": cachetools.LFUCache,
            "fifo": cachetools.FIFOCache,
            "rr": cachetools.RRCache,
            "ttl": cachetools.FIFOCache,
        }[config.policy]
        return _Locked(cache_cls(maxsize))


class _Ordered(_Locked):
    """LRU or FIFO order over the stdlib's ``OrderedDict``; reads take no lock."""

    __slots__ = ("_lru", "_maxsize")

    def __init__(self, maxsize: int | None, lru: bool) -> None:
        super().__init__(OrderedDict())
        self._maxsize = maxsize
        self._lru = lru

    def __getitem__(self, key: Hashable) -> Any:
        data = self._cache
        value = data[key]
        if self._lru:
            try:
                data.move_to_end(key)  # type: ignore[attr-defined]  # an OrderedDict
            except KeyError:  # evicted by another thread meanwhile: still a valid hit
                pass
        return value

    def __setitem__(self, key: Hashable, value: Any) -> None:
        data: Any = self._cache
        with self._lock:
            data[key] = value
            data.move_to_end(key)
            if self._maxsize is not None:
                while len(data) > self._maxsize:
                    data.popitem(last=False)


def order_only(name: str, config: CacheConfig) -> str | None:
    """Why a store that keeps entries in order (LRU or FIFO) cannot serve ``config``."""
    if config.policy in ("lfu", "rr"):
        return f"{name} has no {config.policy.upper()} policy"
    return None


class FunctoolsEngine(MemoryStore):
    """The standard library only: LRU or FIFO order, optional expiry; always available."""

    name: ClassVar[str] = "functools"

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        return order_only(cls.name, config)

    def make_mapping(self, config: CacheConfig) -> MutableMapping[Hashable, Any]:
        return _Ordered(config.maxsize, lru=config.policy == "lru")


#: Every lock-guarded mapping, by id (mappings compare by content, so no WeakSet).
_locked: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def _after_fork_in_child() -> None:
    """A lock another thread held at fork is never released in the child: make new ones."""
    for mapping in list(_locked.values()):
        mapping.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
