"""Live caches by name, with their counters: ``get_stats``, ``clear_cache``, ``list_caches``.

``CacheEngineManager`` (``engines/``) holds engine *classes*; this registry
holds the *caches* decorators created. Two functions given the same ``name``
share one entry, hence one engine.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twat_cache.engines.base import AsyncCacheEngine
from twat_cache.exceptions import CacheOperationError

if TYPE_CHECKING:
    from twat_cache.config import CacheConfig
    from twat_cache.engines.base import AnyEngine
    from twat_cache.wrapper import CacheCore

__all__ = ["CacheRegistry", "clear_cache", "get_stats", "list_caches", "registry"]


@dataclass(eq=False)
class CacheEntry:
    """One named cache: its engine, its config and the decorated functions using it."""

    name: str
    engine: AnyEngine
    config: CacheConfig
    fallback: str | None = None
    cores: weakref.WeakSet[CacheCore] = field(default_factory=weakref.WeakSet)

    def stats(self) -> dict[str, Any]:
        """Counters summed over every function sharing this cache."""
        hits = misses = errors = 0
        for core in list(self.cores):
            h, m, e = core.counts()
            hits, misses, errors = hits + h, misses + m, errors + e
        calls = hits + misses
        try:
            size = len(self.engine)
        except Exception:  # a broken engine must not break a stats call
            size = -1
        stats: dict[str, Any] = {
            "hits": hits,
            "misses": misses,
            "hit_rate": hits / calls if calls else 0.0,
            "size": size,
            "maxsize": self.config.maxsize,
            "engine": self.engine.name,
            "errors": errors,
            "fallback": self.fallback,
        }
        try:
            stats.update(self.engine.stats())
        except Exception:  # engine extras are optional
            stats["errors"] += 1
        return stats

    def clear(self) -> None:
        """Drop every entry and reset the counters of each function using this cache."""
        if isinstance(self.engine, AsyncCacheEngine):
            self.engine.clear_sync()  # called from plain code: its clear() is a coroutine
        else:
            self.engine.clear()
        for core in list(self.cores):
            core.reset()


class CacheRegistry:
    """Thread-safe map of cache name to :class:`CacheEntry`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, CacheEntry] = {}

    def attach(
        self,
        name: str,
        shared: bool,
        make: Callable[[], tuple[AnyEngine, str | None]],
        config: CacheConfig,
    ) -> CacheEntry:
        """The entry for ``name``: reused when ``shared`` (an explicit name), else made anew.

        A default name (module and qualified name) is re-made on purpose: a
        re-run notebook cell or a re-imported module gets a fresh cache rather
        than the results of the function's previous body.
        """
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and shared:
                return entry
            engine, fallback = make()
            entry = CacheEntry(name, engine, config, fallback)
            self._entries[name] = entry
            return entry

    def get(self, name: str) -> CacheEntry:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                known = ", ".join(sorted(self._entries)) or "none"
                msg = f"no cache named {name!r} (known caches: {known})"
                raise CacheOperationError(msg)
            return entry

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def entries(self) -> list[CacheEntry]:
        with self._lock:
            return list(self._entries.values())

    def reset(self) -> None:
        """Forget every cache (closing their engines); tests start from here."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            with contextlib.suppress(Exception):  # closing is best effort
                entry.engine.close()


registry = CacheRegistry()


def get_stats(name: str | None = None) -> Any:
    """Hits, misses, hit_rate, size, maxsize, engine and errors, for one cache or all.

    Raises:
        CacheOperationError: no cache has that name.
    """
    if name is not None:
        return registry.get(name).stats()
    return {entry.name: entry.stats() for entry in registry.entries()}


def clear_cache(name: str | None = None) -> None:
    """Drop every entry of one registered cache, or of all of them.

    Raises:
        CacheOperationError: no cache has that name.
    """
    entries = [registry.get(name)] if name is not None else registry.entries()
    for entry in entries:
        entry.clear()


def list_caches() -> list[str]:
    """Names of the caches created in this process, sorted."""
    return registry.names()
