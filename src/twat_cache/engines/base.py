"""The engine contract: engines only store and fetch.

Keys, stats, validation, locking and fault isolation live in ``wrapper.py``;
an engine is a thin adapter over one library, importing it in its constructor
so that ``import twat_cache`` never imports an optional package.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Hashable, MutableMapping
from typing import Any, ClassVar

from twat_cache._types import MISSING
from twat_cache.config import CacheConfig

__all__ = ["CacheEngine", "MemoryEngine"]


class CacheEngine(ABC):
    """A storage engine: ``get`` returns ``MISSING`` on a miss, never ``None``.

    Subclasses set ``name`` (the library they wrap) and ``requires`` (the module
    that must be importable), and may refuse a config in :meth:`unsupported`
    so that selection moves on to the next engine of the chain.
    """

    name: ClassVar[str]
    requires: ClassVar[str | None] = None
    #: True when the engine keeps Python objects in this process and can be
    #: keyed by the plain argument tuple (the fast path of ``wrapper.py``).
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

    def close(self) -> None:  # noqa: B027 - most engines hold nothing to release
        """Release files, connections or threads held by the engine."""

    def __len__(self) -> int:
        return 0

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key) is not MISSING

    def stats(self) -> dict[str, Any]:
        """Engine-specific figures merged into ``get_stats()``."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


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
