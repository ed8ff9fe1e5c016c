"""The ``backend`` store: a user's :class:`Backend` or :class:`AsyncBackend` (``backend=``).

The backend (or the zero-argument callable returning it) is resolved on the
first call, not at decoration. It stores bytes under str keys; this store
frames every value with the shared codec (checked before deserializing,
signed when ``TWAT_CACHE_SECRET`` is set, carrying its own expiry). An async
backend used by a sync function runs on the shared background loop; a sync
backend used by an ``async def`` function runs in the shared thread pool.
A backend written the pydantic-cache way (``get`` and ``write``) works too:
``write`` serves as ``set``; ``delete`` and ``clear`` are optional.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, ClassVar

from twat_cache._threads import run_sync
from twat_cache._types import MISSING
from twat_cache.config import CacheConfig
from twat_cache.engines.backend import backend_methods
from twat_cache.engines.base import Store, _in_pool
from twat_cache.exceptions import CacheOperationError
from twat_cache.serializers import codec_for

__all__ = ["BackendEngine"]


class _Resolved:
    """A backend's methods, found once: coroutine functions or plain ones."""

    __slots__ = ("backend", "get", "is_async", "methods")

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.methods: dict[str, Callable[..., Any] | None] = backend_methods(backend)
        get = self.methods["get"]
        assert get is not None  # backend_methods refuses a backend without one
        self.get = get
        self.is_async = inspect.iscoroutinefunction(get)


class BackendEngine(Store):
    """A user :class:`Backend`/:class:`AsyncBackend` as a shared store."""

    name: ClassVar[str] = "backend"
    shared: ClassVar[bool] = True
    native_async: ClassVar[bool] = True

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        if config.backend is None:
            return "no backend= object given"
        return None

    def __init__(self, config: CacheConfig) -> None:
        super().__init__(config)
        self._spec = config.backend
        self._resolved: _Resolved | None = None
        self._resolve_lock = threading.Lock()
        self.codec = codec_for(config.serializer, config.compress, config.secure)

    def resolve(self) -> _Resolved:
        """The backend and its methods (resolved once, on first use)."""
        resolved = self._resolved
        if resolved is None:
            with self._resolve_lock:
                resolved = self._resolved
                if resolved is None:
                    backend = self._spec
                    if not backend_methods(backend, strict=False) and callable(backend):
                        backend = backend()
                    resolved = self._resolved = _Resolved(backend)
        return resolved

    def _method(self, name: str) -> tuple[Callable[..., Any], bool]:
        resolved = self.resolve()
        method = resolved.methods[name]
        if method is None:
            msg = (
                f"backend {type(resolved.backend).__qualname__} has no {name}() method: "
                f"cache_{'delete' if name == 'delete' else 'clear'} needs one"
            )
            raise CacheOperationError(msg)
        return method, resolved.is_async

    def _call(self, name: str, *args: Any) -> Any:
        method, is_async = self._method(name)
        return run_sync(method(*args)) if is_async else method(*args)

    async def _acall(self, name: str, *args: Any) -> Any:
        method, is_async = self._method(name)
        if is_async:
            return await method(*args)
        return await _in_pool(method, *args)

    def _decode(self, key: Hashable, data: Any) -> Any:
        if data is None:  # a backend returning None for a miss, as some do
            return MISSING
        return self.codec.decode(str(key), bytes(data))

    def _encode(self, key: Hashable, value: Any, ttl: float | None) -> bytes:
        return self.codec.encode(str(key), value, time.time() + ttl if ttl else 0.0)

    def get(self, key: Hashable) -> Any:
        try:
            data = self._call("get", str(key))
        except KeyError:
            return MISSING
        return self._decode(key, data)

    def _expired_at_once(self, key: Hashable) -> tuple[str, tuple[Any, ...]]:
        """What ``set(key, value, 0)`` calls: nothing is kept, not even an older value.

        ``delete`` where the backend has one; else an entry whose frame has
        already expired, which every read treats as a miss.
        """
        skey = str(key)
        if self.resolve().methods["delete"] is not None:
            return "delete", (skey,)
        # The frame has expired already; ttl 1 s lets the backend drop it soon after.
        return "set", (skey, self.codec.encode(skey, None, time.time()), 1.0)

    def set(self, key: Hashable, value: Any, ttl: float | None) -> None:
        if ttl == 0:
            name, args = self._expired_at_once(key)
            self._call(name, *args)
            return
        self._call("set", str(key), self._encode(key, value, ttl), ttl)

    def delete(self, key: Hashable) -> bool:
        return bool(self._call("delete", str(key)))

    def clear(self) -> None:
        self._call("clear")

    async def aget(self, key: Hashable) -> Any:
        try:
            data = await self._acall("get", str(key))
        except KeyError:
            return MISSING
        return self._decode(key, data)

    async def aset(self, key: Hashable, value: Any, ttl: float | None) -> None:
        if ttl == 0:
            name, args = self._expired_at_once(key)
            await self._acall(name, *args)
            return
        await self._acall("set", str(key), self._encode(key, value, ttl), ttl)

    async def adelete(self, key: Hashable) -> bool:
        return bool(await self._acall("delete", str(key)))

    async def aclear(self) -> None:
        await self._acall("clear")

    def __len__(self) -> int:
        """The backend's own ``len()`` when it has one (its entries), else 0 (unknown).

        A factory not called yet is not called for this: it is resolved on first use.
        """
        if self._resolved is None and not backend_methods(self._spec, strict=False):
            return 0
        backend = self.resolve().backend
        return len(backend) if hasattr(backend, "__len__") else 0

    def close(self) -> None:
        resolved = self._resolved
        if resolved is None:
            return
        close = getattr(resolved.backend, "close", None)
        if callable(close):
            result = close()
            if inspect.iscoroutine(result):
                run_sync(result)
