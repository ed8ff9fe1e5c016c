"""Custom storage: ``Backend`` (and ``AsyncBackend``) subclasses, adapted into an engine.

A backend stores bytes under str keys and knows nothing of serializers,
signing or expiry: ``engines.adapters.BackendEngine`` frames every value
exactly as the disk engines do, so a backend on a shared store gets the same
integrity checks and ``TWAT_CACHE_SECRET`` signing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from twat_cache.exceptions import ConfigurationError

__all__ = ["AsyncBackend", "Backend", "check_backend"]

_METHODS = ("get", "set", "delete", "clear")


class Backend(ABC):
    """Storage for a cache: bytes under str keys.

    >>> class DictBackend(Backend):
    ...     def __init__(self) -> None:
    ...         self.data: dict[str, bytes] = {}
    ...     def get(self, key: str) -> bytes:
    ...         return self.data[key]
    ...     def set(self, key: str, value: bytes, ttl: float | None) -> None:
    ...         self.data[key] = value
    ...     def delete(self, key: str) -> bool:
    ...         return self.data.pop(key, None) is not None
    ...     def clear(self) -> None:
    ...         self.data.clear()
    >>> isinstance(DictBackend(), Backend)
    True
    """

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; raises ``KeyError`` on a miss."""

    @abstractmethod
    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value``; ``ttl`` seconds is a hint (expiry is also checked on read)."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Drop ``key``; True if it was there."""

    @abstractmethod
    def clear(self) -> None:
        """Drop every key this backend holds."""

    def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing
        """Release connections or files (called when the cache is dropped)."""


class AsyncBackend(ABC):
    """:class:`Backend` with coroutine methods, for stores with an async client."""

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; raises ``KeyError`` on a miss."""

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value``; ``ttl`` seconds is a hint (expiry is also checked on read)."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Drop ``key``; True if it was there."""

    @abstractmethod
    async def clear(self) -> None:
        """Drop every key this backend holds."""

    async def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing
        """Release connections or files (called when the cache is dropped)."""


def _is_backend(obj: Any) -> bool:
    return isinstance(obj, (Backend, AsyncBackend)) or (
        not isinstance(obj, type) and all(callable(getattr(obj, m, None)) for m in _METHODS)
    )


def check_backend(value: Any) -> None:
    """Fail at decoration for a ``backend=`` that is neither a backend nor a factory of one.

    Raises:
        ConfigurationError: naming the value.
    """
    if value is not None and not (_is_backend(value) or callable(value)):
        msg = (
            f"CacheConfig.backend: invalid value {value!r}: must be a Backend, an "
            "AsyncBackend, or a zero-argument callable returning one"
        )
        raise ConfigurationError(msg)
