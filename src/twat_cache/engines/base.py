"""The engine contract: engines only store and fetch.

Keys, stats, validation, locking and fault isolation live in ``wrapper.py``;
an engine is a thin adapter over one library, importing it in its constructor
so that ``import twat_cache`` never imports an optional package.

Two kinds of engine share one description (:class:`EngineSpec`):
:class:`CacheEngine`, whose operations are plain calls, and
:class:`AsyncCacheEngine`, whose operations are coroutines and which only
``async def`` functions use. A sync engine may offer a native coroutine twin
through :meth:`CacheEngine.async_engine` (Redis does); any other sync engine
that does I/O is run off the event loop by the wrapper.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Hashable, MutableMapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from twat_cache._types import MISSING
from twat_cache.config import CacheConfig

if TYPE_CHECKING:
    from typing import TypeAlias

__all__ = [
    "AnyEngine",
    "AsyncCacheEngine",
    "CacheEngine",
    "EngineSpec",
    "MemoryEngine",
]


class EngineSpec:
    """What selection needs to know about an engine class, sync or async.

    Subclasses set ``name`` (the library they wrap) and ``requires`` (the module
    that must be importable), and may refuse a config in :meth:`unsupported`
    so that selection moves on to the next engine of the chain.
    """

    name: ClassVar[str]
    requires: ClassVar[str | None] = None
    #: True when the engine keeps Python objects in this process and can be
    #: keyed by the plain argument tuple (the fast path of ``wrapper.py``);
    #: such an engine exposes ``mapping``, read without a lock or an await.
    in_memory: ClassVar[bool] = False

    def __init__(self, config: CacheConfig) -> None:
        self.config = config

    @classmethod
    def is_available(cls) -> bool:
        """True when the library behind the engine is installed (checked without importing)."""
        if cls.requires is None:
            return True
        try:
            return importlib.util.find_spec(cls.requires) is not None
        except (ImportError, ValueError):
            return False

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        """Why this engine cannot serve ``config``, or ``None`` when it can."""
        return None

    def __len__(self) -> int:
        return 0

    def stats(self) -> dict[str, Any]:
        """Engine-specific figures merged into ``get_stats()``."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


class CacheEngine(EngineSpec, ABC):
    """A storage engine: ``get`` returns ``MISSING`` on a miss, never ``None``."""

    @abstractmethod
    def get(self, key: Hashable) -> Any:
        """The stored value, or ``MISSING``."""

    @abstractmethod
    def set(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        """Store ``value``; ``ttl`` overrides the config's ttl when the engine supports it."""

    @abstractmethod
    def delete(self, key: Hashable) -> bool:
        """Drop one entry; True if it was there."""

    @abstractmethod
    def clear(self) -> None:
        """Drop every entry of this cache."""

    def close(self) -> None:
        """Release files, connections or threads held by the engine."""

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key) is not MISSING

    def async_engine(self) -> AsyncCacheEngine | None:
        """A native coroutine twin sharing this engine's storage, or ``None``.

        ``None`` (the default) makes the wrapper run ``get``/``set`` of a
        non-memory engine in a shared thread pool for ``async def`` functions.
        """
        return None

    def key_lock(self, key: str) -> AbstractContextManager[object] | None:
        """A lock held across processes while one of them computes ``key``, or ``None``.

        Entering it may block until another process has stored the value; it
        expires on its own if that process dies.
        """
        return None


class AsyncCacheEngine(EngineSpec, ABC):
    """An engine whose operations are coroutines; only ``async def`` functions use it.

    ``clear_sync`` and ``close`` exist so that ``cache_clear()``,
    ``clear_cache()`` and registry resets, which are plain calls, can reach it.
    """

    @abstractmethod
    async def get(self, key: Hashable) -> Any:
        """The stored value, or ``MISSING``."""

    @abstractmethod
    async def set(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        """Store ``value``; ``ttl`` overrides the config's ttl."""

    @abstractmethod
    async def delete(self, key: Hashable) -> bool:
        """Drop one entry; True if it was there."""

    @abstractmethod
    async def clear(self) -> None:
        """Drop every entry of this cache."""

    @abstractmethod
    def clear_sync(self) -> None:
        """Drop every entry, from code that is not a coroutine."""

    async def aclose(self) -> None:
        """Release what the engine holds (the default calls :meth:`close`)."""
        self.close()

    def close(self) -> None:
        """Release what the engine holds, from code that is not a coroutine."""

    def key_lock(self, key: str) -> AbstractAsyncContextManager[object] | None:
        """The async form of :meth:`CacheEngine.key_lock`."""
        return None


AnyEngine: TypeAlias = "CacheEngine | AsyncCacheEngine"


class MemoryEngine(CacheEngine):
    """An in-process engine backed by a mapping of Python objects.

    The wrapper reads ``mapping[key]`` directly on the hot path (``KeyError`` is
    a miss, ``TypeError`` an unhashable key), so ``mapping`` must be safe to
    read from several threads at once; ``store`` is used on a miss.
    """

    in_memory: ClassVar[bool] = True
    mapping: MutableMapping[Hashable, Any]

    def get(self, key: Hashable) -> Any:
        try:
            return self.mapping[key]
        except KeyError:
            return MISSING

    def store(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` (a no-op when ``maxsize=0``, as with ``lru_cache``)."""
        if self.config.maxsize != 0 and self.config.ttl != 0:
            self.mapping[key] = value

    def set(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        self.store(key, value)

    def delete(self, key: Hashable) -> bool:
        try:
            del self.mapping[key]
        except KeyError:
            return False
        return True

    def clear(self) -> None:
        self.mapping.clear()

    def __len__(self) -> int:
        return len(self.mapping)
