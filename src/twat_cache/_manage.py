"""Housekeeping of the persistent caches on disk, for the command line.

Why a module of its own: the registry only knows the caches of the current
process, while ``twat-cache list``/``stats``/``clear``/``prune`` run in a fresh
one. Caches are found by the manifest their engine leaves on its first write
(``engines/persistent.py``) and reopened through the same engine class, so
housekeeping uses the engine's own ``len``, ``clear`` and ``prune`` and never
guesses at a file layout. Values are never decoded here. No rich, no printing:
``__main__`` renders what these functions return.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from twat_cache.config import CacheConfig
from twat_cache.engines import get_engine_manager
from twat_cache.engines.persistent import MANIFEST, Manifest, PersistentEngine
from twat_cache.exceptions import TwatCacheError
from twat_cache.paths import slug

__all__ = [
    "CacheLookupError",
    "FoundCache",
    "clear",
    "describe",
    "find_caches",
    "opened",
    "over_size_limit",
    "prune",
    "select",
]


class CacheLookupError(TwatCacheError, LookupError):
    """A cache name that matches no cache, or more than one."""


@dataclass(frozen=True)
class FoundCache:
    """A cache folder found under a root, with the manifest its engine wrote."""

    manifest: Manifest
    folder: Path
    root: Path

    @property
    def name(self) -> str:
        """The name the cache is registered under (``name=`` or module.qualname)."""
        return self.manifest.name

    @property
    def where(self) -> str:
        """The folder relative to the root, as shown by ``list``."""
        try:
            return self.folder.relative_to(self.root).as_posix()
        except ValueError:
            return self.folder.as_posix()


def _engine_class(name: str) -> type[PersistentEngine] | None:
    try:
        cls = get_engine_manager().engine_class(name)
    except (TwatCacheError, ImportError, AttributeError):
        return None  # written by an engine this process has not registered
    return cls if isinstance(cls, type) and issubclass(cls, PersistentEngine) else None


def find_caches(root: Path) -> list[FoundCache]:
    """Every cache folder under ``root`` holding a manifest, sorted by name then folder.

    ``folder_name`` may be nested, so the whole tree is walked, except entry
    folders of the engine that owns a cache folder (klepto keeps one per
    entry). A manifest whose folder does not match its cache name (the folder
    was renamed or the file copied) is not a cache twat-cache could reopen,
    and is left out.
    """
    found: list[FoundCache] = []
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        if MANIFEST not in filenames:
            continue
        folder = Path(dirpath)
        try:
            manifest = Manifest.read(folder)
        except (OSError, ValueError):
            continue
        if slug(manifest.name) != folder.name:
            continue
        found.append(FoundCache(manifest, folder, root))
        cls = _engine_class(manifest.engine)
        if cls is not None and cls.entry_dirs:
            dirnames[:] = [d for d in dirnames if not d.startswith(cls.entry_dirs)]
    return sorted(found, key=lambda cache: (cache.name, cache.where))


def select(caches: list[FoundCache], name: str | None) -> list[FoundCache]:
    """The caches ``name`` designates: all of them for ``None``.

    A name is the cache's registered name, or its folder relative to the root
    (as ``list`` shows it), which tells apart two caches of the same name.

    Raises:
        CacheLookupError: no cache matches, or the name matches several folders.
    """
    if name is None:
        return caches
    matches = [cache for cache in caches if cache.name == name]
    if not matches:
        matches = [cache for cache in caches if cache.where == name.strip("/")]
    if len(matches) == 1:
        return matches
    if matches:
        folders = ", ".join(cache.where for cache in matches)
        msg = f"cache name {name!r} is ambiguous: give one of its folders ({folders})"
        raise CacheLookupError(msg)
    known = ", ".join(sorted({cache.name for cache in caches})) or "none"
    msg = f"no cache named {name!r} under {caches[0].root if caches else 'the cache root'}"
    raise CacheLookupError(f"{msg} (known caches: {known})")


@contextlib.contextmanager
def opened(
    cache: FoundCache, *, repair: bool = True, size_limit: bool = True
) -> Iterator[PersistentEngine]:
    """The cache reopened through the engine that wrote it, closed on exit.

    The config points at the very folder (its parent as the root, the same
    name) and carries the options housekeeping obeys (``ttl``, and
    ``size_limit`` unless ``size_limit=False``); the serializer stays the
    default, as nothing is decoded. ``repair=False`` keeps even damaged files
    and temp files: for reports.

    Raises:
        TwatCacheError: the engine is not registered in this process.
        ImportError: its library is not installed here.
    """
    cls = _engine_class(cache.manifest.engine)
    if cls is None:
        msg = f"engine {cache.manifest.engine!r} is not a persistent engine known here"
        raise TwatCacheError(msg)
    config = CacheConfig(
        cache_dir=cache.folder.parent,
        name=cache.manifest.name,
        ttl=cache.manifest.ttl,
        size_limit=cache.manifest.size_limit if size_limit else None,
        compress=cache.manifest.compress,
        secure=cache.manifest.secure,
    )
    engine = cls(config)
    engine.repair = repair
    try:
        yield engine
    finally:
        engine.close()


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def describe(cache: FoundCache, *, expired: bool = False) -> dict[str, Any]:
    """What ``list`` and ``stats`` show of one cache, as JSON-ready values.

    ``entries``, ``bytes`` and ``last_write`` are ``None``, and ``error`` says
    why, when the cache cannot be reopened here (its engine's library is not
    installed, or its files are damaged). ``expired`` adds how many entries
    are past their deadline (it reads every entry's header).
    """
    manifest = cache.manifest
    info: dict[str, Any] = {
        "name": manifest.name,
        "engine": manifest.engine,
        "folder": str(cache.folder),
        "entries": None,
        "bytes": None,
        "last_write": None,
    }
    if expired:
        info["expired"] = None
    info.update(
        created=_iso(manifest.created),
        ttl=manifest.ttl,
        size_limit=manifest.size_limit,
        folder_name=manifest.folder_name,
        serializer=manifest.serializer,
        compress=manifest.compress,
        error=None,
    )
    try:
        with opened(cache, repair=False) as engine:
            info["last_write"] = _iso(engine.last_write())
            info["entries"] = len(engine)
            info["bytes"] = engine.disk_bytes()
            if expired:
                info["expired"] = engine.expired()
    except Exception as exc:  # one unreadable cache must not hide the others
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info


def clear(cache: FoundCache) -> dict[str, Any]:
    """Drop every entry of one cache (its folder and manifest stay); what was removed.

    ``removed`` is ``None`` when the cache was too damaged to count its entries.
    """
    with opened(cache) as engine:
        try:
            before: int | None = len(engine)
        except Exception:  # damaged files: clear() starts the cache afresh all the same
            before = None
        engine.clear()
        return {
            "name": cache.name,
            "folder": str(cache.folder),
            "removed": None if before is None else before - len(engine),
            "entries": len(engine),
            "bytes": engine.disk_bytes(),
        }


def over_size_limit(cache: FoundCache) -> bool:
    """True when the cache has a ``size_limit`` and its folder holds more bytes than that.

    Pruning such a cache deletes live entries, which the command line confirms first.
    """
    limit = cache.manifest.size_limit
    if limit is None:
        return False
    with opened(cache, repair=False) as engine:
        return engine.disk_bytes() > limit


def prune(cache: FoundCache, *, size_limit: bool = True) -> dict[str, Any]:
    """Drop one cache's expired entries, then (unless ``size_limit=False``) its oldest
    entries beyond ``size_limit``; what was removed and what is left."""
    with opened(cache, size_limit=size_limit) as engine:
        removed = engine.prune()
        return {
            "name": cache.name,
            "folder": str(cache.folder),
            "removed": removed,
            "entries": len(engine),
            "bytes": engine.disk_bytes(),
        }
