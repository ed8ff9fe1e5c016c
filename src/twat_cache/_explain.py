"""``f.cache_explain(...)``: whether a call would hit, and if not, why.

Why a separate answer type: a user debugging a pipeline wants one line
("code changed: helper mod.clean"), a test wants a field to compare. The
call path works the answer out (``CallPath.explain``) from what the store can
tell without reading more than it must (``Store.peek``) and, for a
persistent store, the record of the code version its folder holds.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from twat_cache.codeversion import _Walk
from twat_cache.config import CacheConfig

__all__ = [
    "CacheExplanation",
    "Reason",
    "Written",
    "refine",
    "version_parts",
    "version_tag",
]

Reason = Literal[
    "hit",
    "new",
    "expired",
    "evicted",
    "other_folder",
    "code_changed",
    "file_changed",
    "corrupt",
    "not_stored",
    "disabled",
]


@dataclass(frozen=True)
class CacheExplanation:
    """Whether one call would be served from the cache, and if not, why.

    ``reason`` is one of ``"hit"``, ``"new"``, ``"expired"``, ``"evicted"``,
    ``"other_folder"``, ``"code_changed"``, ``"file_changed"``, ``"corrupt"``, ``"not_stored"``,
    ``"disabled"``; ``detail`` says more (which function, which file).

    >>> print(CacheExplanation(False, "new", "never computed with these arguments"))
    miss (new): never computed with these arguments
    """

    hit: bool
    reason: Reason
    detail: str = ""

    def __str__(self) -> str:
        head = "hit" if self.hit else f"miss ({self.reason})"
        return f"{head}: {self.detail}" if self.detail else head


def version_tag(config: CacheConfig, namespace: tuple[str, ...]) -> tuple[str, ...]:
    """The part of a key namespace that names the code version: name, ``version=`` and
    code digest, without the identity telling closures of one factory apart (they
    share a folder and a version, and must not remove each other's entries)."""
    return namespace[:2] if config.version is not None else namespace[:3]


def version_parts(func: Callable[..., Any]) -> dict[str, str]:
    """The digest of each function, class and constant the code version covers
    (``""`` is the function itself)."""
    walk = _Walk()
    walk.run(inspect.unwrap(func))
    return dict(walk.parts)


def changed_parts(old: Any, new: dict[str, str]) -> list[str]:
    """Names of what differs between two :func:`version_parts` (sorted; ``""`` first)."""
    if not isinstance(old, dict):
        return []
    return sorted(label for label in old.keys() | new.keys() if old.get(label) != new.get(label))


class Written:
    """Hashes of the last ``limit`` keys this process wrote to one store.

    Why hashes: a key held here would keep the user's arguments alive after
    the store let them go. A miss whose key is here was pushed out (or expired
    and swept) rather than never computed; a collision can only turn a
    ``"new"`` into an ``"evicted"`` answer, never change what a call returns.
    Only misses and drops touch it: a hit never does.
    """

    __slots__ = ("_lock", "keys", "limit")

    def __init__(self, limit: int = 4096) -> None:
        self.keys: dict[int, None] = {}
        self.limit = limit
        self._lock = threading.Lock()

    def add(self, key: Hashable) -> None:
        """``key`` was written (past ``limit`` records, the oldest half go)."""
        keys = self.keys
        keys[hash(key)] = None  # one dict store under the GIL: no lock on the miss path
        if len(keys) > self.limit:
            with self._lock:
                for mark in list(keys)[: len(keys) // 2]:
                    keys.pop(mark, None)

    def discard(self, key: Hashable) -> None:
        """``key`` was deleted on purpose (``cache_delete``, a damaged entry)."""
        self.keys.pop(hash(key), None)  # one dict operation: atomic under the GIL

    def clear(self) -> None:
        """The cache was cleared: nothing written before was pushed out."""
        self.keys.clear()

    def __contains__(self, key: Hashable) -> bool:
        return hash(key) in self.keys


def refine(path: Any, store: Any, key: Hashable, written: Written, answer: Any) -> Any:
    """A ``"new"`` answer made precise: ``"evicted"`` when this process wrote ``key``
    and the store dropped it since, ``"other_folder"`` when the call is stored in this
    cache's folder under another ``cache_dir`` / ``folder_name`` (found through the
    manifests under the cache root and the store's own root)."""
    if not isinstance(answer, CacheExplanation) or answer.reason != "new":
        return answer
    if key in written:
        config = path.config
        bound = (
            f"maxsize={config.maxsize}"
            if store.in_process and config.maxsize
            else f"size_limit={config.size_limit}"
            if config.size_limit
            else ""
        )
        why = f"pushed out to keep {bound}" if bound else "dropped by the store"
        if path.ttl is not None:
            why += f" (or expired after ttl={path.ttl:g}s)"
        return CacheExplanation(False, "evicted", f"stored by this process earlier, {why}")
    if not store.persistent:
        return answer
    found = elsewhere(path.name, store, key)
    if found is None:
        return answer
    where, there = found
    if there:
        return CacheExplanation(False, "other_folder", f"stored under another folder: {where}")
    return CacheExplanation(False, "new", f"{answer.detail} (this cache also has {where})")


def elsewhere(name: str, store: Any, key: Hashable) -> tuple[str, bool] | None:
    """Another folder of the cache ``name``, and whether it holds ``key``: the first
    folder holding it, else the first found; ``None`` when there is none (or the
    cache root cannot be read)."""
    from twat_cache import _manage  # housekeeping: only when asked
    from twat_cache.paths import cache_root

    mine = Path(store.folder).resolve()
    roots = {Path(store.root).resolve(), cache_root().resolve()}
    first: str | None = None
    try:
        for root in sorted(roots):
            for cache in _manage.find_caches(root):
                if cache.name != name or cache.folder.resolve() == mine:
                    continue
                with _manage.opened(cache, repair=False) as other:
                    if other.peek(key) in ("hit", "expired"):
                        return cache.folder.as_posix(), True
                first = first or cache.folder.as_posix()
    except Exception:  # an unreadable folder: explain what this store tells
        return None
    return None if first is None else (first, False)
