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
import atexit
import contextvars
import inspect
import math
import multiprocessing
import threading
import time
import types
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from twat_cache import policy
from twat_cache._explain import CacheExplanation, Written, changed_parts, version_parts, version_tag
from twat_cache._log import warn_once
from twat_cache._threads import executor
from twat_cache._types import MISSING, CacheInfo
from twat_cache.call import flight as flight_module
from twat_cache.call.flight import ABANDONED, COMPUTING, ERROR, VALUE, Flight, Flights
from twat_cache.config import CacheConfig
from twat_cache.encoding import namespaced_digest
from twat_cache.engines.base import Store
from twat_cache.exceptions import CacheKeyError, SerializationError
from twat_cache.keys import KeyPlan, Token, all_safe, callable_name, runs

__all__ = ["BOTH", "POLICY", "RW", "CallPath", "Ticket"]

#: A failed read: the call computes, and a write failing after it is not counted again.
FAULT: Any = object()
#: What each policy means for one call: (read the cache, write the cache).
#: Whether a call reads the store and whether it writes it.
RW = tuple[bool, bool]
BOTH: RW = (True, True)
POLICY: dict[str, RW] = {
    "disabled": (False, False),
    "refreshing": (False, True),
    "readonly": (True, False),
}
#: Fleet counters (``get_stats()["fleet"]``): a costly miss, or a worker's, is sent with its
#: computation; other calls after this many calls or seconds, whichever comes first (checked every
#: :data:`FLEET_CHECK` calls), when stats are read, and at exit.
FLEET_CALLS = 1000
FLEET_SECONDS = 1.0
FLEET_CHECK = 16

#: A miss whose computation took this long sends its count at once (the write is then a
#: small part of the miss); so does every miss in a worker process (pool workers idle for
#: long, and may never exit through ``atexit``). Cheaper misses go out with the hits.
_COSTLY = 0.005


def _in_worker() -> bool:
    """True in a child process of a pool (multiprocessing, loky, Dask's nanny)."""
    return multiprocessing.parent_process() is not None


_fleet_paths: weakref.WeakSet[CallPath] = weakref.WeakSet()
_fleet_atexit: list[bool] = []


def flush_fleets() -> None:
    """Send every call path's unsent counts (at exit: the fleet misses nothing)."""
    for path in list(_fleet_paths):
        path.flush_fleet(log=False)  # a server gone by now is no news at exit


class CallPath:
    """Lookup, compute-once and store for one decorated function (sync or async)."""

    # Slots: every attribute read on a miss is a slot read (a class with more than 30
    # instance attributes loses CPython's shared-key fast path, about 2k instructions).
    __slots__ = (
        "__weakref__",
        "_fast_hit_cost",
        "_fleet_at",
        "_fleet_lock",
        "_fleet_next",
        "_olock",
        "_owned",
        "_sent",
        "claims",
        "config",
        "converting",
        "epoch",
        "errors",
        "fast_hits",
        "flights",
        "func",
        "hit_seconds",
        "hit_timed",
        "hits",
        "is_async",
        "lock",
        "metrics",
        "miss_seconds",
        "misses",
        "name",
        "plan",
        "reset_fast",
        "retired",
        "store",
        "timed",
        "ttl",
        "written",
    )

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
        self.is_async = inspect.iscoroutinefunction(runs(func))
        self.lock = config.lock
        self.flights = Flights()
        #: A memory miss claims its key's flight in one step (compute once in this process).
        self.claims = self.lock and store.in_process and not store.shared
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.miss_seconds = 0.0
        self.timed = 0
        #: Hits of the call path (not the generated hit path) and the time they took.
        self.hit_seconds = 0.0
        self.hit_timed = 0
        #: (hits, misses, errors) counted before the last reset: totals never go back.
        self.retired = (0, 0, 0)
        #: OpenTelemetry hooks (``_metrics.Recorder``) when a meter provider was set at
        #: decoration; ``None`` costs the slow path one test and the hit path nothing.
        self.metrics: Any = None
        self._fast_hit_cost: float | None = None
        #: The generated memory wrapper's own hit counter (and its reset).
        self.fast_hits: Callable[[], int] = _zero
        self.reset_fast: Callable[[], None] = _nothing
        #: The keys this process wrote, so ``cache_explain`` can tell evicted from new.
        self.written = Written()
        #: Bumped by every clear, delete and refresh: a computation that began before
        #: one returns its value but never stores it (it may predate what changed).
        self.epoch = 0
        #: Swaps the memory wrapper to its converting body (set by call/memory.py).
        self.converting: Callable[[], None] | None = None
        self._owned: dict[Token, set[Hashable]] = {}
        self._olock = threading.Lock()
        #: Shared stores count this function's calls for the whole fleet, in batches.
        self._sent = (0, 0)
        self._fleet_at = time.monotonic()
        self._fleet_lock = threading.Lock()
        self._fleet_next = FLEET_CHECK if store.shared else math.inf
        if store.shared:
            _fleet_paths.add(self)
            if not _fleet_atexit:
                _fleet_atexit.append(True)
                atexit.register(flush_fleets)
        if plan.method and store.in_process:
            plan.on_instance_death = self._instance_died

    # -- counters and faults -----------------------------------------------------------

    def counts(self) -> tuple[int, int, int]:
        """(hits, misses, errors) of this function in this process."""
        return self.hits + self.fast_hits(), self.misses, self.errors

    def totals(self) -> tuple[int, int, int]:
        """(hits, misses, errors) since decoration, clears included (monotonic counters)."""
        h, m, e = self.counts()
        rh, rm, re = self.retired
        return h + rh, m + rm, e + re

    def timings(self) -> dict[str, float | None]:
        """Mean compute time of misses, mean cost of hits, and what the hits saved.

        Misses and call-path hits are timed as they happen. Hits of the generated
        in-process hit path are not (a clock read would double their cost): they
        count at the cost measured once by :func:`twat_cache._metrics.fast_hit_seconds`.
        """
        mean = self.miss_seconds / self.timed if self.timed else None
        fast = self.fast_hits()
        hits = self.hits + fast
        hit_seconds, hit_timed = self.hit_seconds, self.hit_timed
        if fast:
            if self._fast_hit_cost is None:
                from twat_cache._metrics import fast_hit_seconds  # stats only

                self._fast_hit_cost = fast_hit_seconds(self.store)
            if self._fast_hit_cost is not None:
                hit_seconds += fast * self._fast_hit_cost
                hit_timed += fast
        return {
            "mean_miss_seconds": mean,
            "mean_hit_seconds": hit_seconds / hit_timed if hit_timed else None,
            "saved_seconds": hits * mean if mean is not None else 0.0,
        }

    def reset(self) -> None:
        """Zero the counters and forget remembered keys (after a clear)."""
        if self.store.shared:
            with self._fleet_lock:
                self._sent = (0, 0)
                self._fleet_at = time.monotonic()
                try:
                    self.store.reset_counts()
                except Exception as exc:
                    self.fault("fleet reset", exc, quiet=True)
        self.retired = self.totals()
        self.hits = self.misses = self.errors = self.timed = self.hit_timed = 0
        self.miss_seconds = self.hit_seconds = 0.0
        self.reset_fast()
        self.plan.forget()
        self.written.clear()
        with self._olock:
            self._owned.clear()

    def _fleet_due(self) -> bool:
        """Checked every :data:`FLEET_CHECK` calls: is a batch of counts due?"""
        calls = self.hits + self.misses
        self._fleet_next = calls + FLEET_CHECK
        sent = self._sent[0] + self._sent[1]
        return calls - sent >= FLEET_CALLS or time.monotonic() - self._fleet_at >= FLEET_SECONDS

    def _flush_due(self, elapsed: float) -> bool:
        """After a value computed in ``elapsed`` seconds for a shared store: send the counts
        now? A costly miss or a worker's, yes; else when a batch is due (checked every
        :data:`FLEET_CHECK` calls, as on the way in)."""
        if elapsed >= _COSTLY or _in_worker():
            return True
        return self.hits + self.misses >= self._fleet_next and self._fleet_due()

    def flush_fleet(self, log: bool = True) -> None:
        """Add this process's counts since the last batch to the store's fleet counters.

        A fault keeps them for the next batch (logged once, when ``log``); a
        batch already being sent by another thread is not waited for.
        """
        batch = self._fleet_take()
        if batch is None:
            return
        sent = None
        try:
            self.store.add_counts(batch[0] - self._sent[0], batch[1] - self._sent[1])
            sent = batch
        except Exception as exc:
            if log:
                self.fault("fleet count", exc, quiet=True)
        finally:
            self._fleet_done(sent)

    async def aflush_fleet(self) -> None:
        """:meth:`flush_fleet` for coroutines (through the store's async client)."""
        batch = self._fleet_take()
        if batch is None:
            return
        sent = None
        try:
            await self.store.aadd_counts(batch[0] - self._sent[0], batch[1] - self._sent[1])
            sent = batch
        except Exception as exc:
            self.fault("fleet count", exc, quiet=True)
        finally:
            self._fleet_done(sent)

    def _fleet_take(self) -> tuple[int, int] | None:
        """Take the batch lock and this process's (hits, misses) now; ``None`` (lock not
        taken) when another thread is sending or nothing is new since the last batch."""
        if not self._fleet_lock.acquire(blocking=False):
            return None
        counts = (self.hits + self.fast_hits(), self.misses)
        if counts == self._sent:
            self._fleet_lock.release()
            return None
        return counts

    def _fleet_done(self, sent: tuple[int, int] | None) -> None:
        """Release the batch lock; remember what was sent (``None``: kept for the next)."""
        if sent is not None:
            self._sent = sent
            self._fleet_at = time.monotonic()
        self._fleet_lock.release()

    def fault(self, phase: str, exc: BaseException, quiet: bool = False) -> None:
        """Count a store fault (unless this call counted one already); log it once per cause."""
        if not quiet:
            self.errors += 1
        warn_once(
            (self.name, type(exc).__name__),
            f"twat_cache: cache {self.name!r} ({self.store.name}) {phase} failed: "
            f"{type(exc).__name__}: {exc}; the function's own result is used",
        )

    def one_shot(self, value: Any) -> int:
        """A computed coroutine, generator or async generator: usable once, by its own
        caller. Never stored (a hit would hand out the consumed object: "cannot reuse
        already awaited coroutine"), never handed to waiters (each computes its own);
        logged once. Returns the flight's outcome for that."""
        warn_once(
            (self.name, "one-shot"),
            f"twat_cache: {callable_name(self.func)} returned a {type(value).__name__}, "
            "which can be used only once: it is not cached (decorate the async def itself, "
            "whose awaited result is cached, or return a list instead of a generator)",
        )
        return ABANDONED

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
            if self.metrics is not None and store.in_process:
                self._set_counting(store, key, value)
            else:
                store.set(key, value, self.ttl)
        except Exception as exc:
            self.fault("write", exc, quiet)
            return
        self._saved(key)

    def _saved(self, key: Hashable) -> None:
        """Remember a key written: for ``cache_explain``, and for its instance's death."""
        self.written.add(key)
        if type(key) is tuple and key and type(key[0]) is Token:
            self._own(key)

    def _set_counting(self, store: Store, key: Hashable, value: Any) -> None:
        """``store.set``, reporting the entries it pushed out (a bounded store when full)."""
        before = len(store)
        fresh = key not in store.mapping
        store.set(key, value, self.ttl)
        evicted = before + fresh - len(store)
        if evicted > 0:
            self.metrics.evicted(evicted)

    def invalidate(self) -> None:
        """Computations in flight now will not store their values (see ``epoch``)."""
        self.epoch += 1

    def _supersede(self, key: Hashable, me: object) -> None:
        """A computation of ``key`` in flight now will not store its value, and later
        callers do not wait for it (with no flights, ``lock=False``: none in flight does)."""
        if not self.lock:
            self.invalidate()
        else:
            self.flights.supersede(key, me)

    def forget(self, store: Store, key: Hashable) -> bool:
        """``cache_delete``: drop the entry, and what a computation in flight would store."""
        self._supersede(key, None)
        return self.drop(store, key)

    async def aforget(self, store: Store, key: Hashable) -> bool:
        self._supersede(key, None)
        return await self.adrop(store, key)

    def drop(self, store: Store, key: Hashable) -> bool:
        self.written.discard(key)
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
        self._saved(key)

    async def adrop(self, store: Store, key: Hashable) -> bool:
        self.written.discard(key)
        try:
            return await store.adelete(key)
        except Exception as exc:
            self.fault("delete", exc)
            return False

    def _read_failed(self, exc: Exception, quiet: bool) -> bool:
        """Count a failed read; True when the entry itself is damaged, not the store."""
        self.fault("read", exc, quiet)
        return isinstance(exc, SerializationError)

    # -- a call in three steps: begin, the user's function, done (or failed) -----------------
    #
    # The generated wrapper calls the user's function itself, between ``begin`` and
    # ``done``, so a cold recursive function costs two frames per level (the wrapper and
    # the function), as deep as ``functools.lru_cache`` goes; and the user's exception
    # never passes through an ``except`` block of ours.

    def begin_memory(self, raw: Any, plain: Callable[[Any], Hashable] | None) -> Any:
        """A miss (or an unhashable key, or a policy block) of the memory hit path.

        ``plain`` is ``None`` when ``raw`` is already the store key (the converting body);
        a first key that needed converting swaps that body in.
        """
        key = self._memory_key(raw, plain)
        if policy.ACTIVE:
            return self.begin(self.store, key, POLICY.get(policy.current() or "", BOTH))
        if key is raw and self.claims:  # the common miss: no flight, still not stored
            store = self.store
            flight = self.flights.claim(key, threading.get_ident(), store.mapping)
            if flight is not None:
                self.misses += 1
                return _ticket(self, store, key, flight, None, True, False)
        # The wrapper just missed this very key: no second look before joining the flight.
        return self.begin(self.store, key, looked=key is raw)

    def _memory_key(self, raw: Any, plain: Callable[[Any], Hashable] | None) -> Any:
        """The store key of a raw key the memory hit path missed; a first key that needed
        converting swaps in the converting body (once)."""
        if plain is None or all_safe(raw):  # the common key is its own plain key
            return raw
        key = plain(raw)
        if key is not raw and self.converting is not None:
            self.converting()
            self.converting = None
        return key

    def begin_store(self, raw: Any) -> Any:
        """A call on a store keyed by stable digests (disk, Redis, a backend)."""
        if self.hits + self.misses >= self._fleet_next and self._fleet_due():
            self.flush_fleet()
        start = time.perf_counter()  # a hit's cost includes its key digest
        rw = POLICY.get(policy.current() or "", BOTH) if policy.ACTIVE else BOTH
        return self.begin(self.store, self.plan.digest(raw), rw, start=start)

    def begin(
        self, store: Store, key: Hashable, rw: RW = BOTH, looked: bool = False, start: float = 0.0
    ) -> Any:
        """The stored value (a hit, or another caller's fresh result), or a :class:`Ticket`
        telling the caller to compute. Raises the exception of a computation it waited for.

        ``looked``: the caller has just missed this key itself; only the look after
        joining the flight (another thread may have stored it meanwhile) remains.
        ``start`` is when the call began (its key built since), for the hit's timing.
        """
        read, write = rw
        value: Any = MISSING
        if read and not looked:
            start = start or time.perf_counter()
            value = self.lookup(store, key)
        if value is not MISSING and value is not FAULT:
            self._timed_hit(start)
            return value
        quiet = value is FAULT  # counted once: a write failing after it is not counted again
        self.misses += 1
        me = threading.get_ident()
        if write and not read:  # a refresh: what is in flight now began before it
            self._supersede(key, me)
        flight, then = self._join(store, key, write, quiet, me)
        while then is _WAIT:
            why = self.flights.wait(flight, me)
            flight, then = self._rejoin(flight, why, store, key, write, quiet, me)
        if then is not _OWNER:
            return then
        lock = None
        try:
            if looked and not store.shared:  # the mapping is the whole store: no lock
                value = self._look_again(store, key, read, quiet)
            else:
                lock = self._enter(store, key)
                value = self.lookup(store, key, quiet) if read else MISSING
        except BaseException:
            self.flights.land(key, flight, ABANDONED, None)
            self._exit(lock)
            raise
        if value is MISSING or value is FAULT:
            return _ticket(self, store, key, flight, lock, True, quiet or value is FAULT)
        self._exit(lock)  # stored meanwhile elsewhere
        return self._landed_here(key, flight, value)

    def _look_again(self, store: Store, key: Hashable, read: bool, quiet: bool) -> Any:
        """The owner's look at a memory store it has just missed: another thread may have
        stored the key since (its flight landed before this one began). ``in`` first: a
        miss raises no ``KeyError``."""
        return self.lookup(store, key, quiet) if read and key in store.mapping else MISSING

    def _join(
        self, store: Store, key: Hashable, write: bool, quiet: bool, me: Any
    ) -> tuple[Any, Any]:
        """Join the key's flight as ``me`` (a thread or a task): ``(flight, _OWNER)`` to
        compute, ``(flight, _WAIT)`` to wait for its owner, or ``(None, ticket)`` to compute
        without a flight (no compute-once, or ``me`` re-entered its own computation)."""
        if not (write and self.lock):
            return None, _ticket(self, store, key, None, None, write, quiet)
        flight, owner = self.flights.join(key, me)
        if owner:
            return flight, _OWNER
        # Never wait for oneself (a thread id or a task), nor for a computation this call
        # runs inside (a task or thread it started): that would wait for ever.
        if flight.owner == me or flight in COMPUTING.get():
            return None, _ticket(self, store, key, None, None, False, quiet)
        return flight, _WAIT

    def _gave_up(self, store: Store, key: Hashable, write: bool, quiet: bool, why: str) -> Ticket:
        """The computation of ``key`` waits for this call (``why == "cycle"``), or took too
        long (its owner may wait for this call through a thread pool): compute here,
        without the flight."""
        if why == "timeout":
            warn_once(
                (self.name, "wait"),
                f"twat_cache: cache {self.name!r} waited {flight_module.WAIT_LIMIT:g} s for "
                "another caller computing the same arguments; computing them here instead "
                "(does that computation wait for this call?)",
            )
        return _ticket(self, store, key, None, None, write, quiet)

    def _rejoin(
        self,
        flight: Flight,
        why: str | None,
        store: Store,
        key: Hashable,
        write: bool,
        quiet: bool,
        me: Any,
    ) -> tuple[Any, Any]:
        """After waiting for ``flight``: ``(None, its result)`` (or its exception raised), or,
        when its owner was interrupted (abandoned), join afresh to take over; when the wait
        stopped short (``why``: a cycle, the time limit), ``(None, a ticket)`` to compute."""
        if why is not None:
            return None, self._gave_up(store, key, write, quiet, why)
        if flight.outcome != ABANDONED:
            return None, self._served(flight)
        return self._join(store, key, write, quiet, me)

    def _landed_here(self, key: Hashable, flight: Flight, value: Any) -> Any:
        self.flights.land(key, flight, VALUE, value)
        return self._served(flight)

    def _timed_hit(self, start: float) -> None:
        self.hits += 1
        self.hit_seconds += time.perf_counter() - start
        self.hit_timed += 1

    def _served(self, flight: Flight) -> Any:
        """A call served by another's computation: a hit (its miss was counted too early),
        or that computation's exception raised again."""
        self.misses -= 1
        if flight.outcome == ERROR:
            raise flight.result
        self.hits += 1
        return flight.result

    def _enter(self, store: Store, key: Hashable) -> Any:
        """Enter the store's cross-process lock on ``key``; ``None`` if it has none or fails."""
        if not (store.persistent or store.shared):
            return None
        try:
            lock = store.key_lock(str(key))
            if lock is not None:
                lock.__enter__()
        except Exception as exc:  # no lock (server down, timeout): compute anyway
            self.fault("lock", exc)
            return None
        return lock

    def _exit(self, lock: Any) -> None:
        if lock is not None:
            try:
                lock.__exit__(None, None, None)
            except Exception as exc:
                self.fault("unlock", exc)

    def run(
        self, store: Store, key: Hashable, args: tuple[Any, ...], kw: dict[str, Any], rw: RW = BOTH
    ) -> Any:
        """begin, call, done in one function (per-call options, ``cache_refresh``)."""
        ticket = self.begin(store, key, rw)
        if type(ticket) is not Ticket:
            return ticket
        try:
            value = self.func(*args, **kw)
        except BaseException as exc:
            ticket.failed(exc)
            raise
        return ticket.done(value)

    # -- the same for coroutines -----------------------------------------------------------

    async def abegin_memory(self, raw: Any, plain: Callable[[Any], Hashable] | None) -> Any:
        key = self._memory_key(raw, plain)
        if policy.ACTIVE:
            return await self.abegin(self.store, key, POLICY.get(policy.current() or "", BOTH))
        return await self.abegin(self.store, key, looked=key is raw)

    async def abegin_store(self, raw: Any) -> Any:
        if self.hits + self.misses >= self._fleet_next and self._fleet_due():
            await self.aflush_fleet()
        start = time.perf_counter()
        rw = POLICY.get(policy.current() or "", BOTH) if policy.ACTIVE else BOTH
        return await self.abegin(self.store, self.plan.digest(raw), rw, start=start)

    async def abegin(
        self, store: Store, key: Hashable, rw: RW = BOTH, looked: bool = False, start: float = 0.0
    ) -> Any:
        read, write = rw
        value: Any = MISSING
        if read and not looked:
            start = start or time.perf_counter()
            value = await self.alookup(store, key)
        if value is not MISSING and value is not FAULT:
            self._timed_hit(start)
            return value
        quiet = value is FAULT
        self.misses += 1
        me = asyncio.current_task()
        if write and not read:
            self._supersede(key, me)
        flight, then = self._join(store, key, write, quiet, me)
        while then is _WAIT:
            why = await self.flights.await_(flight, me)
            flight, then = self._rejoin(flight, why, store, key, write, quiet, me)
        if then is not _OWNER:
            return then
        lock = None
        try:
            if looked and not store.shared:
                value = self._look_again(store, key, read, quiet)
            else:
                lock = await self._aenter(store, key)
                value = await self.alookup(store, key, quiet) if read else MISSING
        except BaseException:
            self.flights.land(key, flight, ABANDONED, None)
            await self._aexit(lock)
            raise
        if value is MISSING or value is FAULT:
            return _ticket(self, store, key, flight, lock, True, quiet or value is FAULT)
        await self._aexit(lock)
        return self._landed_here(key, flight, value)

    async def _aenter(self, store: Store, key: Hashable) -> Any:
        if not (store.persistent or store.shared):
            return None
        try:
            lock = store.akey_lock(str(key))
            if lock is not None:
                await lock.__aenter__()
        except Exception as exc:
            self.fault("lock", exc)
            return None
        return lock

    async def _aexit(self, lock: Any) -> None:
        if lock is not None:
            try:
                await lock.__aexit__(None, None, None)
            except Exception as exc:
                self.fault("unlock", exc)

    async def arun(
        self, store: Store, key: Hashable, args: tuple[Any, ...], kw: dict[str, Any], rw: RW = BOTH
    ) -> Any:
        ticket = await self.abegin(store, key, rw)
        if type(ticket) is not Ticket:
            return ticket
        try:
            value = await self.func(*args, **kw)
        except BaseException as exc:
            await ticket.afailed(exc)
            raise
        return await ticket.adone(value)

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

    # -- cache_explain --------------------------------------------------------------------

    def explain(self, store: Store, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Whether ``f(*args, **kwargs)`` would hit ``store``, and if not why (a
        :class:`~twat_cache.CacheExplanation`). Never calls the function; a store
        fault is reported in the answer, never raised."""
        now = policy.current()
        if now in ("disabled", "refreshing"):
            return CacheExplanation(False, "disabled", f"inside twat_cache.{now}(): not read")
        plan = self.plan
        before = {**store.tracked_files(), **plan.file_states} if plan.file_parts else {}
        try:
            raw = plan.keyof(*args, **kwargs)
            key = plan.store_key(raw)
            status = store.peek(key)
        except CacheKeyError as exc:
            return CacheExplanation(False, "not_stored", f"the call cannot be keyed: {exc}")
        except Exception as exc:
            return CacheExplanation(
                False, "corrupt", f"the store cannot be read: {type(exc).__name__}: {exc}"
            )
        where = f"{store.name} cache {self.name!r}"
        if status == "hit":
            return CacheExplanation(True, "hit", f"stored in the {where}")
        if status == "expired":
            return CacheExplanation(False, "expired", f"the entry outlived ttl={self.ttl:g}s")
        if status == "corrupt":
            return CacheExplanation(False, "corrupt", f"the entry in the {where} is damaged")
        then, files = self._old_files(raw, before)
        if files and store.peek(self.plan.store_key(then)) in ("hit", "expired"):
            return CacheExplanation(False, "file_changed", f"{files} changed since it was stored")
        code = self._code_changed(store, raw) or self._code_changed(store, then)
        if code is not None:
            detail, found = code
            if files and found is then:
                detail += f"; {files} changed too"
            return CacheExplanation(False, "code_changed", detail)
        if self.ttl == 0 or self.config.maxsize == 0:
            return CacheExplanation(False, "not_stored", "ttl=0 or maxsize=0: nothing is kept")
        if now == "readonly":
            return CacheExplanation(False, "not_stored", "inside twat_cache.readonly(): not kept")
        return CacheExplanation(False, "new", "never computed with these arguments")

    def _old_files(self, raw: Any, before: dict[str, tuple[Any, ...]]) -> tuple[Any, str]:
        """The raw key with each ``files=`` argument's previous state (as last keyed and
        stored), and what changed (``""`` when no file did)."""
        changed: list[str] = []
        for pos, name in self.plan.file_parts.items():
            old, files = _old_state(raw[pos], before, self.plan.file_states)
            if files:
                raw = (*raw[:pos], old, *raw[pos + 1 :])
                changed.extend(f"{name}: {file}" for file in files)
        return raw, ", ".join(changed)

    def _code_changed(self, store: Store, raw: Any) -> tuple[str, Any] | None:
        """The call is stored under the code version the folder held before this one:
        what changed, and the raw key found."""
        record = store.version_record()
        if record is None or not store.persistent:
            return None
        tag = version_tag(self.config, self.plan.namespace)
        if record["tag"] == list(tag):
            return None
        old = (*record["tag"], *self.plan.namespace[len(tag) :])
        then = namespaced_digest(old, typed=self.plan.typed)(raw)
        if store.peek(then) not in ("hit", "expired"):
            return None
        changed = changed_parts(record.get("parts"), version_parts(self.func))
        names = ", ".join(label or callable_name(self.func) for label in changed)
        return f"code changed since it was stored: {names or 'version='}", raw

    async def aexplain(self, store: Store, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """:meth:`explain` for an ``async def`` function (the store is read in the pool)."""
        if store.native_async:  # its sync methods may not serve this event loop
            return await self._aexplain_native(store, args, kwargs)
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()  # the caller's policy block holds in the pool too
        return await loop.run_in_executor(executor(), ctx.run, self.explain, store, args, kwargs)

    async def _aexplain_native(
        self, store: Store, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        now = policy.current()
        if now in ("disabled", "refreshing"):
            return CacheExplanation(False, "disabled", f"inside twat_cache.{now}(): not read")
        try:
            value = await store.aget(self.plan.key_of_call(args, kwargs))
        except CacheKeyError as exc:
            return CacheExplanation(False, "not_stored", f"the call cannot be keyed: {exc}")
        except SerializationError:
            return CacheExplanation(False, "corrupt", f"the entry in {store.name} is damaged")
        except Exception as exc:
            return CacheExplanation(
                False, "corrupt", f"the store cannot be read: {type(exc).__name__}: {exc}"
            )
        if value is not MISSING:
            return CacheExplanation(True, "hit", f"stored in the {store.name} cache")
        return CacheExplanation(False, "new", "never computed with these arguments")

    def cache_info(self) -> CacheInfo:
        hits, misses, _ = self.counts()
        try:
            size = len(self.store)
        except Exception as exc:
            self.fault("size", exc)
            size = 0
        return CacheInfo(hits, misses, self.config.maxsize, size)


class Ticket:
    """A call that must compute: where its value goes, and the flight and lock it holds.

    Made by :func:`_ticket` (a class with a Python ``__init__`` costs every miss
    about 1,500 more instructions to build).
    """

    __slots__ = (
        "epoch",
        "flight",
        "inside",
        "key",
        "lock",
        "path",
        "quiet",
        "start",
        "store",
        "write",
    )

    path: CallPath
    store: Store
    key: Hashable
    flight: Flight | None
    lock: Any
    write: bool
    quiet: bool
    epoch: int
    #: A coroutine's flight is visible to the tasks it starts (see flight.COMPUTING):
    #: they compute instead of waiting for it. Not for sync functions (a context
    #: variable costs a miss 3,800 instructions); their threads are found waiting
    #: from flight to flight, or stop waiting after flight.WAIT_LIMIT.
    inside: contextvars.Token[tuple[Flight, ...]] | None
    start: float

    def done(self, value: Any) -> Any:
        """Store the fresh value (when asked), release the lock and the waiters; return it.

        The waiters get the value and the lock is released even when the write is
        interrupted (Ctrl-C, a ``BaseException`` from pickling): no later call waits for ever.
        The steps of :meth:`adone`; every sync miss passes here.
        """
        path = self.path
        elapsed = self._computed()
        flight = self.flight
        outcome = VALUE
        try:
            if type(value) in _ONE_SHOT:
                outcome = path.one_shot(value)
            elif self.write and self.epoch == path.epoch and (flight is None or not flight.stale):
                path.save(self.store, self.key, value, self.quiet)
        finally:  # (_landed, without its frame: a sync ticket is never ``inside``)
            if flight is not None:
                path.flights.land(self.key, flight, outcome, value)
            if self.lock is not None:
                path._exit(self.lock)
        shared = outcome == VALUE and path.store.shared
        if shared and path._flush_due(elapsed):
            path.flush_fleet()
        return value

    def failed(self, exc: BaseException) -> None:
        """The function raised: nothing is stored; waiters get the same exception (or, for an
        interrupt or a cancellation, one of them computes instead)."""
        self._landed(ERROR if isinstance(exc, Exception) else ABANDONED, exc, 0.0)
        self.path._exit(self.lock)

    async def adone(self, value: Any) -> Any:
        """:meth:`done` for coroutines; a cancellation during the write lands it all the same."""
        path = self.path
        elapsed = self._computed()
        outcome = VALUE
        try:
            if type(value) in _ONE_SHOT:
                outcome = path.one_shot(value)
            elif self.write and self._current():
                await path.asave(self.store, self.key, value, self.quiet)
        finally:
            due = self._landed(outcome, value, elapsed)
            await path._aexit(self.lock)
        if due:
            await path.aflush_fleet()
        return value

    async def afailed(self, exc: BaseException) -> None:
        self._landed(ERROR if isinstance(exc, Exception) else ABANDONED, exc, 0.0)
        await self.path._aexit(self.lock)

    def _outside(self) -> None:
        """Leave the computation's flight out of this context again."""
        inside, self.inside = self.inside, None
        if inside is not None:
            try:
                COMPUTING.reset(inside)
            except ValueError:  # ended in another context than it began (never by the wrappers)
                COMPUTING.set(tuple(f for f in COMPUTING.get() if f is not self.flight))

    def _current(self) -> bool:
        """No clear, delete or refresh of this key came since this computation began."""
        flight = self.flight
        return self.epoch == self.path.epoch and (flight is None or not flight.stale)

    def _computed(self) -> float:
        """Count the computation's time; return it."""
        path = self.path
        elapsed = time.perf_counter() - self.start
        path.miss_seconds += elapsed
        path.timed += 1
        if path.metrics is not None:
            path.metrics.computed(elapsed)
        return elapsed

    def _landed(self, outcome: int, result: Any, elapsed: float) -> bool:
        """Hand the outcome to the waiters; say whether the fleet counts are due a flush."""
        path = self.path
        if self.flight is not None:
            path.flights.land(self.key, self.flight, outcome, result)
            if self.inside is not None:
                self._outside()
        return outcome == VALUE and path.store.shared and path._flush_due(elapsed)


def _ticket(
    path: CallPath,
    store: Store,
    key: Hashable,
    flight: Flight | None,
    lock: Any,
    write: bool,
    quiet: bool,
) -> Ticket:
    """A :class:`Ticket` for this computation, its clock started."""
    ticket: Ticket = _new(Ticket)
    ticket.path, ticket.store, ticket.key, ticket.flight = path, store, key, flight
    ticket.lock, ticket.write, ticket.quiet = lock, write, quiet
    ticket.epoch = path.epoch
    ticket.inside = (
        COMPUTING.set((*COMPUTING.get(), flight)) if flight is not None and path.is_async else None
    )
    ticket.start = time.perf_counter()
    return ticket


_new = object.__new__

#: Values usable once, by one caller: never stored or shared (see CallPath.one_shot).
_ONE_SHOT = frozenset({types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType})


def _old_state(
    state: Any, before: dict[str, tuple[Any, ...]], states: dict[str, tuple[Any, ...]]
) -> tuple[Any, list[str]]:
    """A ``files=`` key part as it was last keyed (each file's previous state, in a list,
    tuple or set of paths too), and the files that changed since."""
    if type(state) is not tuple or not state or type(state[0]) is not str:
        return state, []
    if state[0] in ("list", "tuple", "set", "frozenset"):  # (a file's state starts with its path)
        parts = [_old_state(part, before, states) for part in state[1:]]
        olds = [old for old, _ in parts]
        if state[0] in ("set", "frozenset"):
            olds.sort(key=repr)
        return (state[0], *olds), [file for _, files in parts for file in files]
    old = before.get(state[0])
    if old is None:
        return state, []
    states[state[0]] = old  # asking is not keying: the last keyed state stays
    return old, [state[0]] if old != state else []


#: What :meth:`CallPath._join` tells its caller to do with the flight.
_OWNER, _WAIT = object(), object()


def _zero() -> int:
    return 0


def _nothing() -> None:
    return None
