"""Custom storage: ``Backend`` (and ``AsyncBackend``) subclasses, adapted into an engine.

A backend stores bytes under str keys and knows nothing of serializers,
signing or expiry: ``engines.adapters.BackendEngine`` frames every value
exactly as the disk engines do, so a backend on a shared store gets the same
integrity checks and ``TWAT_CACHE_SECRET`` signing.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from twat_cache.exceptions import ConfigurationError

__all__ = ["AsyncBackend", "Backend", "backend_methods", "check_backend"]


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


def _write_as_set(write: Callable[..., Any]) -> Callable[..., Any]:
    """``write(key, value)`` (pydantic-cache's spelling) serving as ``set(key, value, ttl)``."""
    if inspect.iscoroutinefunction(write):

        async def aset(key: str, value: bytes, ttl: float | None) -> None:
            await write(key, value)

        return aset

    def set_(key: str, value: bytes, ttl: float | None) -> None:
        write(key, value)

    return set_


def backend_methods(obj: Any, *, strict: bool = True) -> dict[str, Callable[..., Any] | None]:
    """The storage methods of ``obj``: ``get`` and ``set`` (or ``write``), then the optional
    ``delete`` and ``clear`` (``None`` when absent).

    Raises:
        ConfigurationError: (``strict``) ``obj`` cannot get or cannot store; with
            ``strict=False`` an empty dict is returned instead.
    """
    if isinstance(obj, type):
        methods: dict[str, Callable[..., Any] | None] = {}
    else:
        get = getattr(obj, "get", None)
        store = getattr(obj, "set", None)
        if not callable(store):
            write = getattr(obj, "write", None)
            store = _write_as_set(write) if callable(write) else None
        methods = {
            "get": get if callable(get) else None,
            "set": store,
            "delete": getattr(obj, "delete", None),
            "clear": getattr(obj, "clear", None),
        }
    if methods.get("get") is None or methods.get("set") is None:
        if not strict:
            return {}
        missing = [name for name in ("get", "set") if methods.get(name) is None]
        msg = (
            f"CacheConfig.backend: invalid value {obj!r}: it has no "
            f"{' and no '.join(m if m == 'get' else 'set() or write()' for m in missing)} method, "
            "so nothing could ever be cached: give it get(key) and set(key, value, ttl)"
        )
        raise ConfigurationError(msg)
    for name in ("delete", "clear"):
        if not callable(methods[name]):
            methods[name] = None
    return methods


def check_backend(value: Any) -> None:
    """Fail at decoration for a ``backend=`` that can never cache.

    Accepts a backend object (``get`` plus ``set`` or ``write``) or a
    zero-argument callable returning one; a backend class that cannot be
    instantiated (abstract methods left) is refused now, not at the first call.

    Raises:
        ConfigurationError: naming the value and what is missing.
    """
    if value is None:
        return
    if isinstance(value, type):
        if inspect.isabstract(value):
            missing = ", ".join(sorted(getattr(value, "__abstractmethods__", ())))
            msg = (
                f"CacheConfig.backend: invalid value {value!r}: the class leaves {missing} "
                "abstract, so it can never be created; implement them"
            )
            raise ConfigurationError(msg)
        return
    if backend_methods(value, strict=False):
        return
    if callable(value):
        return
    backend_methods(value)  # raises, naming what is missing
