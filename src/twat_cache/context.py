"""``CacheContext`` and ``engine_context``: one engine used by hand, with the decorators' keys.

Why the same keys: an entry a context writes under ``k`` is the entry a
decorated one-parameter function ``f`` with the same ``name`` (and folder or
server) stores for ``f(k)``, and the other way round. Keys are built by the
same code as the decorators' (``wrapper.CacheCore``), so the two can never
drift apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from twat_cache._types import MISSING
from twat_cache.config import create_cache_config
from twat_cache.engines import choose_chain, get_engine_manager
from twat_cache.engines.adapters import ThreadedEngine, executor
from twat_cache.engines.base import AnyEngine, AsyncCacheEngine, CacheEngine, MemoryEngine
from twat_cache.exceptions import CacheOperationError
from twat_cache.registry import CacheEntry, registry
from twat_cache.wrapper import CacheCore

__all__ = ["CacheContext", "engine_context"]

_DEFAULT_NAME = "twat_cache.context"


def _sync_key(key: Any) -> Any:
    """Placeholder with one parameter: ``c.get(k)`` is keyed as a call ``f(k)``."""
    return key


async def _async_key(key: Any) -> Any:
    return key


class CacheContext:
    """One engine, chosen by name, with get/set/delete/clear and ``in``; closed on exit.

    Takes the decorators' options (``folder_name``, ``ttl``, ``redis_url``,
    ``name``, ...). A memory engine given a ``name`` is the very cache that
    decorators with that ``name`` use; other engines share entries through
    their storage (folder, server) and are closed when the context exits.
    An async-only engine (``"aiocache"``) is used with ``async with`` and the
    ``a``-prefixed methods, which every engine offers.

    >>> with CacheContext(engine_name="functools", name="doc") as c:
    ...     c.set("k", 1)
    ...     c.get("k"), c.get("missing", default=0), "k" in c
    (1, 0, True)
    """

    def __init__(self, engine_name: str | None = None, **options: Any) -> None:
        given = frozenset(options) | ({"engine"} if engine_name else frozenset())
        if engine_name is not None:
            options["engine"] = engine_name
        config = create_cache_config(**options)
        self.name = config.name or _DEFAULT_NAME
        named = config.model_copy(update={"name": self.name})
        manager = get_engine_manager()
        manager.check(config)
        chain, _ = choose_chain(_sync_key, config, given)

        def make() -> tuple[AnyEngine, str | None]:
            selection = manager.select(chain, named, asynchronous=True)
            return selection.engine, selection.fallback

        entry: CacheEntry | None = None
        self._owned = False
        if config.name is not None and config.name in registry.names():
            shared = registry.get(config.name)
            if shared.engine.in_memory:  # memory is shared only by being the same object
                entry = shared
        if entry is None:
            engine, fallback = make()
            if engine.in_memory and config.name is not None:
                entry = registry.attach(
                    self.name, shared=True, make=lambda: (engine, fallback), config=config
                )
            else:
                entry = CacheEntry(self.name, engine, config, fallback)
                self._owned = True
        self.engine: AnyEngine = entry.engine
        self.config = config
        placeholder = _async_key if isinstance(self.engine, AsyncCacheEngine) else _sync_key
        self._core = CacheCore(placeholder, config, entry)
        self._aengine: AsyncCacheEngine | None = None
        if isinstance(self.engine, AsyncCacheEngine):
            self._aengine = self.engine
        elif not isinstance(self.engine, MemoryEngine):
            twin = self.engine.async_engine()
            self._aengine = twin if twin is not None else ThreadedEngine(self.engine)
        self._closed = False

    # -- keys and engine access --------------------------------------------------

    def _key(self, key: Any) -> Hashable:
        return self._core.key_for((key,), {})

    def _sync(self) -> CacheEngine:
        if not isinstance(self.engine, CacheEngine):
            msg = (
                f"engine {self.engine.name!r} is async-only: use `async with` and "
                "await c.aget(), c.aset(), c.adelete(), c.aclear()"
            )
            raise CacheOperationError(msg)
        return self.engine

    # -- sync API ----------------------------------------------------------------------

    def get(self, key: Any, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        value = self._sync().get(self._key(key))
        return default if value is MISSING else value

    def set(self, key: Any, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` (``ttl`` defaults to the context's)."""
        self._sync().set(self._key(key), value, self.config.ttl if ttl is None else ttl)

    def delete(self, key: Any) -> bool:
        """Drop ``key``; True if it was there."""
        return self._sync().delete(self._key(key))

    def clear(self) -> None:
        """Drop every entry of this cache (only this cache's, on a shared store)."""
        self._sync().clear()

    def __contains__(self, key: Any) -> bool:
        return self._sync().get(self._key(key)) is not MISSING

    def close(self) -> None:
        """Release the engine's files or connections (a shared memory cache stays)."""
        if not self._closed:
            self._closed = True
            if self._owned:
                self.engine.close()

    def __enter__(self) -> CacheContext:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- async API ---------------------------------------------------------------------

    async def aget(self, key: Any, default: Any = None) -> Any:
        """The coroutine form of :meth:`get`; never blocks the loop."""
        if self._aengine is None:
            return self.get(key, default)
        value = await self._aengine.get(self._key(key))
        return default if value is MISSING else value

    async def aset(self, key: Any, value: Any, ttl: float | None = None) -> None:
        """The coroutine form of :meth:`set`."""
        if self._aengine is None:
            self.set(key, value, ttl)
            return
        await self._aengine.set(self._key(key), value, self.config.ttl if ttl is None else ttl)

    async def adelete(self, key: Any) -> bool:
        """The coroutine form of :meth:`delete`."""
        if self._aengine is None:
            return self.delete(key)
        return await self._aengine.delete(self._key(key))

    async def aclear(self) -> None:
        """The coroutine form of :meth:`clear`."""
        if self._aengine is None:
            self.clear()
            return
        await self._aengine.clear()

    async def acontains(self, key: Any) -> bool:
        """The coroutine form of ``key in c``."""
        return await self.aget(key, MISSING) is not MISSING

    async def aclose(self) -> None:
        """The coroutine form of :meth:`close`."""
        if not self._closed:
            self._closed = True
            if self._owned:
                if isinstance(self.engine, AsyncCacheEngine):
                    await self.engine.aclose()
                else:
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(executor(), self.engine.close)

    async def __aenter__(self) -> CacheContext:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<CacheContext name={self.name!r} engine={self.engine.name!r}>"


@contextmanager
def engine_context(engine_name: str | None = None, **options: Any) -> Iterator[CacheContext]:
    """``with engine_context(...) as c``: a :class:`CacheContext`, closed on exit.

    >>> with engine_context("functools") as c:
    ...     c.set(1, "one")
    ...     c.get(1)
    'one'
    """
    with CacheContext(engine_name, **options) as context:
        yield context
