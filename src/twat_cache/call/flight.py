"""Compute once: the one in-flight table shared by threads and asyncio tasks.

The first caller of a cold key owns its flight and computes; every other
caller of that key, in any thread or on any event loop, waits for the
outcome instead of computing again. A thread waits on an ``Event``; a task
awaits a future of its own loop, resolved thread-safely; so one key is
computed once across threads, tasks and loops alike.

Outcomes: a value (waiters return it), the user's exception (waiters raise
that same exception at once, nothing is stored), or *abandoned* (the owner
was cancelled or interrupted: one waiter takes over). A caller that is the
owner itself (the function re-entered with the same arguments), or that
descends from a coroutine owner's computation (a task it gathered, a thread
it started through ``asyncio.to_thread``: :data:`COMPUTING`), is told so
and computes without waiting, which can never deadlock; so is a caller
whose owner waits, through other flights, for the caller's own (f(1)
calling f(2) in one thread while f(2) calls f(1) in another). A waiter the
owner may be waiting for in a way no flight shows (the owner submitted the
same call to a thread pool and waits on its future) waits at most
:data:`WAIT_LIMIT` seconds, then computes itself: a program never hangs on a
flight. A forked child starts with empty tables: it never waits for a
computation of its parent's.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import weakref
from collections.abc import Hashable
from typing import Any

__all__ = ["ABANDONED", "COMPUTING", "ERROR", "VALUE", "WAIT_LIMIT", "Flight", "Flights"]

PENDING, VALUE, ERROR, ABANDONED = 0, 1, 2, 3

#: Seconds a caller waits for another's computation of its key before computing itself
#: (as long as a cross-process key lock is waited for, ``paths.LOCK_TIMEOUT``).
WAIT_LIMIT = 60.0

#: The flights whose computations this context runs inside (set by their owners, inherited
#: by the tasks and context-copying threads they start): those never wait for them.
COMPUTING: contextvars.ContextVar[tuple[Flight, ...]] = contextvars.ContextVar(
    "twat_cache_computing", default=()
)


class Flight:
    """One computation in progress.

    Made with no ``__init__`` (its owner set by the table): every attribute starts as
    the class's default and is set on the instance only when it changes.
    """

    #: The thread id or task computing it.
    owner: object = None
    outcome = PENDING
    #: Set when a delete or refresh of its key came meanwhile: its value is not stored.
    stale = False
    result: Any = None
    #: Made by the first waiting thread only: most flights are never waited for.
    event: threading.Event | None = None
    #: Tasks waiting for it, with their loops (the first waiting task makes the list).
    waiters: tuple[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]], ...] = ()


#: The flight each waiting thread (by id) or task waits for: the edges of the waits-for graph.
_WAITING: dict[object, Flight] = {}


def _closes_a_cycle(flight: Flight, me: object) -> bool:
    """Whether ``flight``'s owner waits, from flight to flight, for ``me``."""
    owner = flight.owner
    for _ in range(len(_WAITING) + 1):
        if owner == me:
            return True
        then = _WAITING.get(owner)
        if then is None:
            return False
        owner = then.owner
    return False


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Flights:
    """The in-flight computations of one cache, by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: dict[Hashable, Flight] = {}
        _all.add(self)

    def __len__(self) -> int:
        return len(self._table)

    def join(self, key: Hashable, me: object) -> tuple[Flight, bool]:
        """The flight of ``key`` and whether ``me`` now owns it (a new one) or must wait.

        No lock: ``setdefault`` is one atomic step for a store key (plain parts or a
        digest: its hash and equality run no Python code).
        """
        flight = Flight()
        flight.owner = me
        found = self._table.setdefault(key, flight)
        return found, found is flight

    def claim(self, key: Hashable, me: object, stored: Any) -> Flight | None:
        """A new flight of ``key`` owned by ``me``, or ``None`` when one is in flight already
        or ``key`` is in ``stored`` (a store's mapping) by now.

        An owner stores its value before its flight lands, so a key not in flight and not
        stored after the claim was not computed meanwhile.
        """
        flight = Flight()
        flight.owner = me
        if self._table.setdefault(key, flight) is not flight:  # (join, without its frame)
            return None
        if key in stored:  # stored between the caller's miss and this claim
            self.land(key, flight, ABANDONED, None)
            return None
        return flight

    def supersede(self, key: Hashable, me: object) -> None:
        """The flight of ``key`` (if any) stores nothing, and, unless ``me`` owns it (a
        refresh inside its own computation), later callers start afresh instead of
        waiting for it; its waiters so far still get its outcome."""
        with self._lock:
            flight = self._table.get(key)
            if flight is None:
                return
            flight.stale = True
            if flight.owner != me:
                del self._table[key]

    def land(self, key: Hashable, flight: Flight, outcome: int, result: Any) -> None:
        """End ``flight`` with its outcome and wake every waiter, sync and async."""
        lock = self._lock
        lock.acquire()  # not ``with``: this runs on every miss, and ``with`` costs twice as much
        try:
            if self._table.get(key) is flight:
                del self._table[key]
            flight.outcome, flight.result = outcome, result
            waiters, flight.waiters = flight.waiters, ()
            event = flight.event
        finally:
            lock.release()
        if event is not None:
            event.set()
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_wake, fut)
            except RuntimeError:  # that loop has closed: nobody is waiting there any more
                pass

    def wait(self, flight: Flight, me: object) -> str | None:
        """Block this thread (``me``) until ``flight`` lands: ``None``; or why not:
        ``"cycle"`` (its owner waits for ``me``), ``"timeout"`` (:data:`WAIT_LIMIT`)."""
        with self._lock:
            if flight.outcome != PENDING:
                return None
            event = flight.event
            if event is None:
                event = flight.event = threading.Event()
        # First wait, then look: of two closing a cycle, one sees it. A signal handler
        # may wait too while this thread waits: its entry is put back after.
        outer = _WAITING.get(me)
        _WAITING[me] = flight
        try:
            if _closes_a_cycle(flight, me):
                return "cycle"
            return None if event.wait(WAIT_LIMIT) else "timeout"
        finally:
            if outer is None:
                _WAITING.pop(me, None)
            else:
                _WAITING[me] = outer

    async def await_(self, flight: Flight, me: object) -> str | None:
        """:meth:`wait` for a task (``me``), woken from any thread or loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if flight.outcome != PENDING:
                return None
            flight.waiters = (*flight.waiters, (loop, fut))
        _WAITING[me] = flight
        timer = loop.call_later(WAIT_LIMIT, _wake, fut)
        try:
            if _closes_a_cycle(flight, me):
                return "cycle"
            await fut
        finally:
            timer.cancel()
            _WAITING.pop(me, None)
        return None if flight.outcome != PENDING else "timeout"

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._table = {}


_all: weakref.WeakSet[Flights] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    _WAITING.clear()
    for flights in list(_all):
        flights._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
