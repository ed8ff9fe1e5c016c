"""The call path behind every wrapper: look up, compute once, store, isolate faults.

One :class:`CallPath` per decorated function holds its store, key plan,
counters and in-flight table. Its sync and async paths sit side by side and
do the same steps:

1. ``lookup``: the store's value or ``MISSING``; a store fault is counted,
   logged once per cause and read as a miss (a damaged entry is dropped).
2. ``compute``: the first caller of a cold key computes (across processes
   too, under the store's key lock when it has one); callers of the same key
   wait for it (``flight.py``) and are counted as hits.
3. ``save``: ``store.set(key, value, ttl)``; a fault is counted and logged,
   the fresh value is returned all the same.

The user's function is called outside every ``except`` block, so its
exceptions reach the caller unchanged, with no cache-internal context, and
are never stored. This module is the only place that catches store errors.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from twat_cache import policy
from twat_cache._log import warn_once
from twat_cache._types import MISSING, CacheInfo
from twat_cache.call.flight import ABANDONED, ERROR, VALUE, Flights
from twat_cache.config import CacheConfig
from twat_cache.engines.base import Store
from twat_cache.exceptions import SerializationError
from twat_cache.keys import KeyPlan, Token

__all__ = ["POLICY", "CallPath"]

#: A failed read: the call computes, and a write failing after it is not counted again.
FAULT: Any = object()
#: What each policy means for one call: (read the cache, write the cache).
POLICY = {"disabled": (False, False), "refreshing": (False, True), "readonly": (True, False)}


class CallPath:
    """Lookup, compute-once and store for one decorated function (sync or async)."""

    def __init__(
        self,
        func: Callable[..., Any],
        config: CacheConfig,
        name: str,
        store: Store,
        plan: KeyPlan,
    ) -> None:
        self.func = func
        self.config = config
        self.name = name
        self.store = store
        self.plan = plan
        self.ttl = config.ttl
        self.is_async = inspect.iscoroutinefunction(func)
        self.lock = config.lock
        self.flights = Flights()
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.miss_seconds = 0.0
        self.timed = 0
        #: The generated memory wrapper's own hit counter (and its reset).
        self.fast_hits: Callable[[], int] = _zero
        self.reset_fast: Callable[[], None] = _nothing
        self._owned: dict[Token, set[Hashable]] = {}
        self._olock = threading.Lock()
        if plan.method and store.in_process:
            plan.on_instance_death = self._instance_died

    # -- counters and faults -----------------------------------------------------------

    def counts(self) -> tuple[int, int, int]:
        """(hits, misses, errors) of this function in this process."""
        return self.hits + self.fast_hits(), self.misses, self.errors

    def timings(self) -> dict[str, float | None]:
        """Mean compute time of misses and what the hits saved, measured here."""
        mean = self.miss_seconds / self.timed if self.timed else None
        hits = self.hits + self.fast_hits()
        return {
            "mean_miss_seconds": mean,
            "saved_seconds": hits * mean if mean is not None else 0.0,
        }

    def reset(self) -> None:
        """Zero the counters and forget remembered keys (after a clear)."""
        self.hits = self.misses = self.errors = self.timed = 0
        self.miss_seconds = 0.0
        self.reset_fast()
        self.plan.forget()
        with self._olock:
            self._owned.clear()

    def fault(self, phase: str, exc: BaseException, quiet: bool = False) -> None:
        """Count a store fault (unless this call counted one already); log it once per cause."""
        if not quiet:
            self.errors += 1
        warn_once(
            (self.name, type(exc).__name__),
            f"twat_cache: cache {self.name!r} ({self.store.name}) {phase} failed: "
            f"{type(exc).__name__}: {exc}; the function's own result is used",
        )

    # -- one guarded store operation each ------------------------------------------------

    def lookup(self, store: Store, key: Hashable, quiet: bool = False) -> Any:
        """The stored value, ``MISSING``, or ``FAULT`` when the store failed."""
        try:
            return store.get(key)
        except Exception as exc:
            damaged = self._read_failed(exc, quiet)
        if damaged:  # a damaged entry: drop it, then recompute and store afresh
            self.drop(store, key)
            return MISSING
        return FAULT

    def save(self, store: Store, key: Hashable, value: Any, quiet: bool = False) -> None:
        try:
            store.set(key, value, self.ttl)
        except Exception as exc:
            self.fault("write", exc, quiet)
            return
        if type(key) is tuple and key and type(key[0]) is Token:
            self._own(key)

    def drop(self, store: Store, key: Hashable) -> bool:
        try:
            return store.delete(key)
        except Exception as exc:
            self.fault("delete", exc)
            return False

    async def alookup(self, store: Store, key: Hashable, quiet: bool = False) -> Any:
        try:
            return await store.aget(key)
        except Exception as exc:
            damaged = self._read_failed(exc, quiet)
        if damaged:
            await self.adrop(store, key)
            return MISSING
        return FAULT

    async def asave(self, store: Store, key: Hashable, value: Any, quiet: bool = False) -> None:
        try:
            await store.aset(key, value, self.ttl)
        except Exception as exc:
            self.fault("write", exc, quiet)
            return
        if type(key) is tuple and key and type(key[0]) is Token:
            self._own(key)

    async def adrop(self, store: Store, key: Hashable) -> bool:
        try:
            return await store.adelete(key)
        except Exception as exc:
            self.fault("delete", exc)
            return False

    def _read_failed(self, exc: Exception, quiet: bool) -> bool:
        """Count a failed read; True when the entry itself is damaged, not the store."""
        self.fault("read", exc, quiet)
        return isinstance(exc, SerializationError)

    # -- the sync path ------------------------------------------------------------------------

    def memory_slow(self, raw: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Everything the generated memory hit path does not do itself."""
        read, write = POLICY.get(policy.current() or "", (True, True))
        if not (read or write):
            return self.func(*args, **kwargs)
        return self.run(self.store, self.plan.plain(raw), args, kwargs, read, write)

    def call(self, raw: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A call on a store keyed by stable digests (disk, Redis, a backend)."""
        read, write = (True, True)
        if policy.ACTIVE:
            read, write = POLICY.get(policy.current() or "", (True, True))
            if not (read or write):
                return self.func(*args, **kwargs)
        return self.run(self.store, self.plan.digest(raw), args, kwargs, read, write)

    def run(
        self,
        store: Store,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        read: bool = True,
        write: bool = True,
    ) -> Any:
        """Read (unless ``read`` is false), else compute, and store (when ``write``)."""
        quiet = False
        if read:
            value = self.lookup(store, key)
            if value is FAULT:  # counted once: a write that fails after it is not counted again
                quiet = True
            elif value is not MISSING:
                self.hits += 1
                return value
        if not write:
            self.misses += 1
            return self.func(*args, **kwargs)
        if not self.lock:
            self.misses += 1
            value = self.timed_call(args, kwargs)
            self.save(store, key, value, quiet)
            return value
        me = threading.get_ident()
        while True:
            flight, owner = self.flights.join(key, me)
            if owner:
                break
            if flight.owner == me:  # re-entered with the same key: never wait for oneself
                self.misses += 1
                return self.func(*args, **kwargs)
            self.flights.wait(flight)
            if flight.outcome == VALUE:
                self.hits += 1
                return flight.result
            if flight.outcome == ERROR:
                raise flight.result
            # abandoned (the owner was interrupted): take over
        outcome, result = ABANDONED, None
        try:
            result = self._compute(store, key, args, kwargs, read, quiet)
            outcome = VALUE
            return result
        except Exception as exc:
            outcome, result = ERROR, exc
            raise
        finally:
            self.flights.land(key, flight, outcome, result)

    def _compute(
        self,
        store: Store,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        read: bool,
        quiet: bool,
    ) -> Any:
        """The owner's part: look again (under the cross-process lock), compute, store."""
        lock = None
        if store.persistent or store.shared:
            try:
                lock = store.key_lock(str(key))
                if lock is not None:
                    lock.__enter__()
            except Exception as exc:  # no lock (server down, timeout): compute anyway
                self.fault("lock", exc)
                lock = None
        try:
            if read:
                value = self.lookup(store, key, quiet)  # stored meanwhile by another thread or process
                if value is not MISSING and value is not FAULT:
                    self.hits += 1
                    return value
            self.misses += 1
            value = self.timed_call(args, kwargs)
            self.save(store, key, value, quiet)
            return value
        finally:
            if lock is not None:
                try:
                    lock.__exit__(None, None, None)
                except Exception as exc:
                    self.fault("unlock", exc)

    def timed_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        start = time.perf_counter()
        value = self.func(*args, **kwargs)
        self.miss_seconds += time.perf_counter() - start
        self.timed += 1
        return value

    # -- the async path, step for step ---------------------------------------------------------

    async def amemory_slow(self, raw: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        read, write = POLICY.get(policy.current() or "", (True, True))
        if not (read or write):
            return await self.func(*args, **kwargs)
        return await self.arun(self.store, self.plan.plain(raw), args, kwargs, read, write)

    async def acall(self, raw: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        read, write = (True, True)
        if policy.ACTIVE:
            read, write = POLICY.get(policy.current() or "", (True, True))
            if not (read or write):
                return await self.func(*args, **kwargs)
        return await self.arun(self.store, self.plan.digest(raw), args, kwargs, read, write)

    async def arun(
        self,
        store: Store,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        read: bool = True,
        write: bool = True,
    ) -> Any:
        quiet = False
        if read:
            value = await self.alookup(store, key)
            if value is FAULT:  # counted once: a write that fails after it is not counted again
                quiet = True
            elif value is not MISSING:
                self.hits += 1
                return value
        if not write:
            self.misses += 1
            return await self.func(*args, **kwargs)
        if not self.lock:
            self.misses += 1
            value = await self.atimed_call(args, kwargs)
            await self.asave(store, key, value, quiet)
            return value
        me = asyncio.current_task()
        while True:
            flight, owner = self.flights.join(key, me)
            if owner:
                break
            if flight.owner is me:  # the coroutine awaits itself: compute, never wait
                self.misses += 1
                return await self.func(*args, **kwargs)
            await self.flights.await_(flight)
            if flight.outcome == VALUE:
                self.hits += 1
                return flight.result
            if flight.outcome == ERROR:
                raise flight.result
        outcome, result = ABANDONED, None
        try:
            result = await self._acompute(store, key, args, kwargs, read, quiet)
            outcome = VALUE
            return result
        except Exception as exc:
            outcome, result = ERROR, exc
            raise
        finally:
            self.flights.land(key, flight, outcome, result)

    async def _acompute(
        self,
        store: Store,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        read: bool,
        quiet: bool,
    ) -> Any:
        lock = None
        if store.persistent or store.shared:
            try:
                lock = store.akey_lock(str(key))
                if lock is not None:
                    await lock.__aenter__()
            except Exception as exc:
                self.fault("lock", exc)
                lock = None
        try:
            if read:
                value = await self.alookup(store, key, quiet)
                if value is not MISSING and value is not FAULT:
                    self.hits += 1
                    return value
            self.misses += 1
            value = await self.atimed_call(args, kwargs)
            await self.asave(store, key, value, quiet)
            return value
        finally:
            if lock is not None:
                try:
                    await lock.__aexit__(None, None, None)
                except Exception as exc:
                    self.fault("unlock", exc)

    async def atimed_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        start = time.perf_counter()
        value = await self.func(*args, **kwargs)
        self.miss_seconds += time.perf_counter() - start
        self.timed += 1
        return value

    # -- entries of instances (in-process method caches) -------------------------------------

    def _own(self, key: tuple[Any, ...]) -> None:
        """Remember that ``key`` belongs to an instance, so it goes when the instance dies."""
        token = key[0]
        with self._olock:
            keys = self._owned.setdefault(token, set())
            keys.add(key)
            limit = self.config.maxsize
            if limit is not None and len(keys) > 2 * limit + 16:
                mapping = self.store.mapping
                keys.intersection_update([k for k in keys if k in mapping])

    def _instance_died(self, token: Token) -> None:
        with self._olock:
            keys = self._owned.pop(token, set())
        for key in keys:
            self.drop(self.store, key)

    # -- the lru_cache-style controls --------------------------------------------------------

    def cache_info(self) -> CacheInfo:
        hits, misses, _ = self.counts()
        try:
            size = len(self.store)
        except Exception as exc:
            self.fault("size", exc)
            size = 0
        return CacheInfo(hits, misses, self.config.maxsize, size)


def _zero() -> int:
    return 0


def _nothing() -> None:
    return None
