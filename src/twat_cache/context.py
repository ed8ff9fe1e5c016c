"""``CacheContext`` and ``engine_context``: one store used by hand, with the decorators' keys.

Why the same keys: an entry a context writes under ``k`` is the entry a
decorated one-parameter function ``f`` with the same ``name`` (and folder or
server; on disk also the same ``version``) stores for ``f(k)``, and the other
way round. Keys come from the same
:class:`~twat_cache.keys.KeyPlan` as the decorators', so the two can never
drift apart. ``ttl`` means what it means everywhere: omitted, the context's
own ``ttl``; ``None`` there, no expiry.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any

from twat_cache._types import MISSING
from twat_cache.config import create_cache_config
from twat_cache.engines import choose_chain, get_engine_manager
from twat_cache.engines.base import Store, _in_pool
from twat_cache.keys import KeyPlan
from twat_cache.registry import CacheEntry, registry
from twat_cache.serializers import resolve_serializer

__all__ = ["CacheContext", "engine_context"]

_DEFAULT_NAME = "twat_cache.context"
_UNSET: Any = object()


def _key_of(key: Any) -> Any:
    """Placeholder with one parameter: ``c.get(k)`` is keyed as a call ``f(k)``."""
    return key


class CacheContext:
    """One store, chosen by name, with get/set/delete/clear and ``in``; closed on exit.

    Takes the decorators' options (``folder_name``, ``ttl``, ``redis_url``,
    ``name``, ...). A memory store given a ``name`` is the very cache that
    decorators with that ``name`` use; other stores share entries through
    their storage (folder, server) and are closed when the context exits.
    Every store also offers the ``a``-prefixed coroutine methods and
    ``async with``.

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
        named = config.model_copy(
            update={"name": self.name, "serializer": resolve_serializer(config.serializer, None)}
        )
        manager = get_engine_manager()
        manager.check(config)
        chain, _ = choose_chain(_key_of, config, given)
        entry: CacheEntry | None = None
        self._owned = False
        if config.name is not None and config.name in registry.names():
            shared = registry.get(config.name)
            if shared.store.in_process:  # memory is shared only by being the same object
                entry = shared
        if entry is None:
            selection = manager.select(chain, named)
            store, fallback = selection.engine, selection.fallback
            if store.in_process and config.name is not None:
                entry = registry.attach(
                    self.name, shared=True, make=lambda: (store, fallback), config=config
                )
            else:
                entry = CacheEntry(self.name, store, config, fallback)
                self._owned = True
        self.store: Store = entry.store
        self.config = config
        self._plan = KeyPlan(
            _key_of,
            config,
            in_process=self.store.in_process,
            # No code of its own: a persistent decorated function shares its entries when
            # it has the same name= and version= (which then replaces its code version).
            namespace=(self.name, config.version or ""),
        )
        self._closed = False

    @property
    def engine(self) -> Store:
        """The store in use (its ``name`` is the engine's, e.g. ``"diskcache"``)."""
        return self.store

    def _key(self, key: Any) -> Hashable:
        return self._plan.key_of_call((key,), {})

    def _ttl(self, ttl: Any) -> float | None:
        if ttl is _UNSET:
            return self.config.ttl
        if ttl is None:
            return None
        return create_cache_config(ttl=ttl).ttl

    # -- sync API ----------------------------------------------------------------------

    def get(self, key: Any, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        value = self.store.get(self._key(key))
        return default if value is MISSING else value

    def set(self, key: Any, value: Any, ttl: Any = _UNSET) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (omitted: the context's ttl)."""
        self.store.set(self._key(key), value, self._ttl(ttl))

    def delete(self, key: Any) -> bool:
        """Drop ``key``; True if it was there."""
        return self.store.delete(self._key(key))

    def clear(self) -> None:
        """Drop every entry of this cache (only this cache's, on a shared store)."""
        self.store.clear()

    def __contains__(self, key: Any) -> bool:
        return self.store.get(self._key(key)) is not MISSING

    def close(self) -> None:
        """Release the engine's files or connections (a shared memory cache stays)."""
        if not self._closed:
            self._closed = True
            if self._owned:
                self.store.close()

    def __enter__(self) -> CacheContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- async API ---------------------------------------------------------------------

    async def aget(self, key: Any, default: Any = None) -> Any:
        """The coroutine form of :meth:`get`; never blocks the loop."""
        value = await self.store.aget(self._key(key))
        return default if value is MISSING else value

    async def aset(self, key: Any, value: Any, ttl: Any = _UNSET) -> None:
        """The coroutine form of :meth:`set`."""
        await self.store.aset(self._key(key), value, self._ttl(ttl))

    async def adelete(self, key: Any) -> bool:
        """The coroutine form of :meth:`delete`."""
        return await self.store.adelete(self._key(key))

    async def aclear(self) -> None:
        """The coroutine form of :meth:`clear`."""
        await self.store.aclear()

    async def acontains(self, key: Any) -> bool:
        """The coroutine form of ``key in c``."""
        return await self.aget(key, MISSING) is not MISSING

    async def aclose(self) -> None:
        """The coroutine form of :meth:`close`."""
        if not self._closed:
            self._closed = True
            if self._owned:
                await _in_pool(self.store.close)

    async def __aenter__(self) -> CacheContext:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<CacheContext name={self.name!r} engine={self.store.name!r}>"


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
