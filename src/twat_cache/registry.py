"""Live caches by name, with their counters: ``get_stats``, ``clear_cache``, ``list_caches``.

``CacheEngineManager`` (``engines/``) holds store *classes*; this registry
holds the *caches* decorators created: a name, a store, and the members
(decorated functions) using it, each seen only through :class:`Member`'s
three callables. The registry imports nothing from the call path.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from twat_cache.exceptions import CacheOperationError, ConfigurationError

if TYPE_CHECKING:
    from twat_cache.config import CacheConfig
    from twat_cache.engines.base import Store

__all__ = ["CacheEntry", "CacheRegistry", "Member", "clear_cache", "get_stats", "list_caches"]


class Member(Protocol):
    """What the registry needs of a function using a cache."""

    def counts(self) -> tuple[int, int, int]:
        """(hits, misses, errors) in this process."""

    def timings(self) -> dict[str, float | None]:
        """``mean_miss_seconds``, ``mean_hit_seconds`` and ``saved_seconds``."""

    def reset(self) -> None:
        """Zero the counters after the cache was cleared."""


@dataclass(eq=False)
class CacheEntry:
    """One named cache: its store, its config and the functions using it."""

    name: str
    store: Store
    config: CacheConfig
    fallback: str | None = None
    members: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    #: The code version of each function (module and qualified name) attached to it.
    versions: dict[str, str] = field(default_factory=dict)
    #: The keyed parameters (names and kinds) of the first function attached, and whose they
    #: are: the same raw key means the same call only for the same kinds of parameter.
    shape: tuple[tuple[str, str], ...] | None = None
    shaped_by: str = ""

    @property
    def engine(self) -> Store:
        """The store (the name users know from ``f.engine``)."""
        return self.store

    def stats(self) -> dict[str, Any]:
        """Counters summed over every function sharing this cache."""
        hits = misses = errors = 0
        miss_seconds = hit_seconds = 0.0
        timed = hit_timed = saved = 0.0
        for member in list(self.members):
            h, m, e = member.counts()
            hits, misses, errors = hits + h, misses + m, errors + e
            t = member.timings()
            saved += t["saved_seconds"] or 0.0
            if t["mean_miss_seconds"] is not None:
                miss_seconds += t["mean_miss_seconds"] * m
                timed += m
            if t.get("mean_hit_seconds") is not None:
                hit_seconds += (t["mean_hit_seconds"] or 0.0) * h
                hit_timed += h
        calls = hits + misses
        try:
            size = len(self.store)
        except Exception:  # a broken store must not break a stats call
            size = -1
            errors += 1
        stats: dict[str, Any] = {
            "hits": hits,
            "misses": misses,
            "hit_rate": hits / calls if calls else 0.0,
            "size": size,
            "maxsize": self.config.maxsize,
            "engine": self.store.name,
            "errors": errors,
            "fallback": self.fallback,
            "mean_miss_seconds": miss_seconds / timed if timed else None,
            "mean_hit_seconds": hit_seconds / hit_timed if hit_timed else None,
            "saved_seconds": saved,
            "bytes": None,
            "fleet": self._fleet(),
        }
        try:
            stats.update(self.store.stats())
        except Exception:  # store extras are optional
            stats["errors"] += 1
        return stats

    def _fleet(self) -> dict[str, int] | None:
        """Hits and misses of every process using a shared store (this one's sent first)."""
        if not self.store.shared:
            return None
        for member in list(self.members):
            flush = getattr(member, "flush_fleet", None)
            # a coroutine's counts go through its event loop's client (at misses, every second)
            if flush is not None and not getattr(member, "is_async", False):
                flush()
        try:
            counts = self.store.fleet_counts()
        except Exception:  # a broken store must not break a stats call
            return None
        return None if counts is None else {"hits": counts[0], "misses": counts[1]}

    def clear(self) -> None:
        """Drop every entry and reset the counters of each function using this cache."""
        for member in list(self.members):
            member.invalidate()  # nothing computed before the clear is stored after it
        self.store.clear()
        for member in list(self.members):
            member.reset()


class CacheRegistry:
    """Thread-safe map of cache name to :class:`CacheEntry`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, CacheEntry] = {}

    def attach(
        self,
        name: str,
        shared: bool,
        make: Callable[[], tuple[Store, str | None]],
        config: CacheConfig,
        identity: tuple[str, str] | None = None,
        shape: tuple[str, tuple[tuple[str, str], ...]] | None = None,
    ) -> CacheEntry:
        """The entry for ``name``: reused when ``shared`` (an explicit name), else made anew.

        A default name (module and qualified name) is re-made on purpose: a
        re-run notebook cell or a re-imported module gets a fresh cache rather
        than the results of the function's previous body. So is a shared name
        when ``identity`` (the function's qualified name and code version) shows
        the same function again with other code.

        ``shape`` is ``(function, its keyed parameters)``: a function joining a
        shared name whose functions take other parameters is refused, since the
        same key would stand for different calls (``f(1, b=2)``, ``g(1, c=2)``).

        Raises:
            ConfigurationError: ``name`` is the cache of functions with other parameters.
        """
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and shared:
                if identity is None:
                    return _shaped(entry, shape)
                function, version = identity
                if entry.versions.get(function, version) == version:
                    entry = _shaped(entry, shape)
                    entry.versions.setdefault(function, version)
                    return entry
            store, fallback = make()
            entry = CacheEntry(name, store, config, fallback)
            if identity is not None:
                entry.versions[identity[0]] = identity[1]
            self._entries[name] = _shaped(entry, shape)
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
        """Forget every cache (closing their stores); tests start from here."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            with contextlib.suppress(Exception):  # closing is best effort
                entry.store.close()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


def _shaped(entry: CacheEntry, shape: tuple[str, tuple[tuple[str, str], ...]] | None) -> CacheEntry:
    """``entry``, joined by a function keyed by the parameters ``shape`` names.

    Raises:
        ConfigurationError: the functions already sharing ``entry`` take other parameters.
    """
    if shape is None:
        return entry
    function, params = shape
    if entry.shape is None:
        entry.shaped_by, entry.shape = function, params
    elif [kind for _, kind in entry.shape] != [kind for _, kind in params]:
        # Keys are positional: the same kinds in the same order key alike whatever the
        # names (by_id(user_id) and load(uid) may share); other kinds may not.
        msg = (
            f"CacheConfig.name: invalid value {entry.name!r}: it is the cache of "
            f"{entry.shaped_by}{_params_text(entry.shape)}, and {function}"
            f"{_params_text(params)} takes other parameters, so one key would stand for "
            "different calls; give it another name=, or the same parameters"
        )
        raise ConfigurationError(msg)
    return entry


def _params_text(params: tuple[tuple[str, str], ...]) -> str:
    """``(a, *, c)``: keyed parameters as a signature reads (``(key=...)`` for none)."""
    if not params:
        return "(key=...)"
    parts: list[str] = []
    for name, kind in params:
        if kind == "KEYWORD_ONLY" and not any(p.startswith("*") for p in parts):
            parts.append("*")
        parts.append({"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(kind, "") + name)
    return f"({', '.join(parts)})"


registry = CacheRegistry()
if hasattr(os, "register_at_fork"):  # a lock held by another thread at fork is never released
    os.register_at_fork(after_in_child=registry._after_fork)


def get_stats(name: str | None = None) -> Any:
    """Hits, misses, hit_rate, size, maxsize, engine, errors and timings, for one cache or all.

    Raises:
        CacheOperationError: no cache has that name.
    """
    if name is not None:
        return registry.get(name).stats()
    return {entry.name: entry.stats() for entry in registry.entries()}


def clear_cache(name: str | None = None) -> None:
    """Drop every entry of one cache, or of every cache of this process.

    A name no function of this process uses reaches a persistent cache on
    disk under the cache root (found through its manifest). Clears every
    cache it can reach even when one fails, then raises one error naming
    those it could not clear.

    Raises:
        CacheOperationError: no cache has that name, or some could not be cleared.
    """
    if name is not None and name not in registry.names():
        _clear_on_disk(name)
        return
    entries = [registry.get(name)] if name is not None else registry.entries()
    failed: list[str] = []
    for entry in entries:
        try:
            entry.clear()
        except Exception as exc:
            failed.append(f"{entry.name!r} ({type(exc).__name__}: {exc})")
    if failed:
        msg = f"could not clear {len(failed)} cache(s): " + "; ".join(failed)
        raise CacheOperationError(msg)


def _clear_on_disk(name: str) -> None:
    """Clear the persistent cache ``name`` no function of this process has opened.

    It is found under the cache root by the manifest its engine wrote (by
    name, or by its folder relative to the root) and cleared through that
    engine, as ``twat-cache clear NAME`` does.
    """
    from twat_cache import _manage  # housekeeping: only when asked
    from twat_cache.paths import cache_root

    root = cache_root()
    found = _manage.find_caches(root)
    try:
        caches = _manage.select(found, name)
    except _manage.CacheLookupError as exc:
        if found and any(cache.name == name for cache in found):  # ambiguous: say which folders
            raise CacheOperationError(str(exc)) from None
        known = ", ".join(sorted({*registry.names(), *(cache.name for cache in found)})) or "none"
        msg = f"no cache named {name!r} in this process or under {root} (known caches: {known})"
        raise CacheOperationError(msg) from None
    try:
        _manage.clear(caches[0])
    except Exception as exc:
        msg = f"could not clear 1 cache(s): {name!r} ({type(exc).__name__}: {exc})"
        raise CacheOperationError(msg) from exc


def list_caches() -> list[str]:
    """Names of the caches created in this process, sorted."""
    return registry.names()
