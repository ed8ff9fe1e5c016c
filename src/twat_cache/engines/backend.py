"""Custom storage: ``Backend`` (and ``AsyncBackend``) subclasses, adapted into an engine.

A backend stores bytes under str keys and knows nothing of serializers,
signing or expiry: :class:`BackendEngine` frames every value exactly as the
disk engines do, so a backend on a shared store gets the same integrity
checks and ``TWAT_CACHE_SECRET`` signing.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from twat_cache._types import MISSING
from twat_cache.config import CacheConfig
from twat_cache.engines.base import CacheEngine
from twat_cache.exceptions import CacheOperationError, ConfigurationError
from twat_cache.serializers import Codec, codec_for

__all__ = ["AsyncBackend", "Backend", "BackendEngine", "check_backend"]

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


class BackendEngine(CacheEngine):
    """Adapts a user :class:`Backend` (given, or made by a factory on first use)."""

    name: ClassVar[str] = "backend"

    def __init__(self, config: CacheConfig) -> None:
        super().__init__(config)
        self._spec = config.backend
        self._backend: Backend | None = None
        self._lock = threading.Lock()
        self.codec: Codec = codec_for(config.serializer, config.compress, config.secure)

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        if config.backend is None:
            return "no backend= given"
        return None

    @property
    def backend(self) -> Backend:
        """The backend, resolved from its factory on first use (never at import)."""
        backend = self._backend
        if backend is not None:
            return backend
        with self._lock:
            if self._backend is None:
                spec = self._spec
                obj = spec if _is_backend(spec) else spec()
                if isinstance(obj, AsyncBackend):
                    msg = (
                        f"backend {type(obj).__qualname__} is an AsyncBackend: "
                        "use it with an async def function, or pass a Backend"
                    )
                    raise CacheOperationError(msg)
                if not _is_backend(obj):
                    msg = f"backend factory {spec!r} returned {obj!r}, not a Backend"
                    raise CacheOperationError(msg)
                self._backend = obj
            return self._backend

    def get(self, key: Any) -> Any:
        try:
            data = self.backend.get(key)
        except KeyError:
            return MISSING
        value = self.codec.decode(key, bytes(data))
        if value is MISSING:
            self.backend.delete(key)
        return value

    def set(self, key: Any, value: Any, ttl: float | None = None) -> None:
        expire = time.time() + ttl if ttl else 0.0
        data = self.codec.encode(key, value, expire)
        if ttl == 0:
            return
        self.backend.set(key, data, ttl)

    def delete(self, key: Any) -> bool:
        return bool(self.backend.delete(key))

    def clear(self) -> None:
        self.backend.clear()

    def close(self) -> None:
        backend = self._backend
        if backend is not None and isinstance(backend, Backend):
            backend.close()
