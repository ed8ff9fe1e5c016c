"""Compute once: the one in-flight table shared by threads and asyncio tasks.

The first caller of a cold key owns its flight and computes; every other
caller of that key, in any thread or on any event loop, waits for the
outcome instead of computing again. A thread waits on an ``Event``; a task
awaits a future of its own loop, resolved thread-safely; so one key is
computed once across threads, tasks and loops alike.

Outcomes: a value (waiters return it), the user's exception (waiters raise
that same exception at once, nothing is stored), or *abandoned* (the owner
was cancelled or interrupted: one waiter takes over). A caller that is the
owner itself (the function re-entered with the same arguments) is told so
and computes without waiting, which can never deadlock. A forked child
starts with empty tables: it never waits for a computation of its parent's.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Hashable
from typing import Any

__all__ = ["ABANDONED", "ERROR", "VALUE", "Flight", "Flights"]

PENDING, VALUE, ERROR, ABANDONED = 0, 1, 2, 3


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

    def wait(self, flight: Flight) -> None:
        """Block this thread until ``flight`` lands."""
        with self._lock:
            if flight.outcome != PENDING:
                return
            event = flight.event
            if event is None:
                event = flight.event = threading.Event()
        event.wait()

    async def await_(self, flight: Flight) -> None:
        """Suspend this task until ``flight`` lands (from any thread or loop)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if flight.outcome != PENDING:
                return
            flight.waiters = (*flight.waiters, (loop, fut))
        await fut

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._table = {}


_all: weakref.WeakSet[Flights] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for flights in list(_all):
        flights._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
