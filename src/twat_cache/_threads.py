"""Where sync and async meet: one thread pool for blocking store calls, one background loop.

Why: an ``async def`` function must never block its event loop on disk or
network I/O (a store without native coroutines runs in :func:`executor`), and
a sync function must be able to use an ``AsyncBackend`` (:func:`run_sync` runs
the coroutine on one shared background loop, never on the caller's loop).
Both are created on first use and forgotten in a forked child, which has
neither the parent's pool threads nor its loop thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["executor", "run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_executor: concurrent.futures.ThreadPoolExecutor | None = None
_loop: asyncio.AbstractEventLoop | None = None


def executor() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread pool every ``async def`` function uses for a blocking store's I/O."""
    global _executor
    if _executor is None:
        with _lock:
            if _executor is None:
                _executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=min(32, (os.cpu_count() or 1) + 4),
                    thread_name_prefix="twat_cache-io",
                )
    return _executor


def _forget_after_fork() -> None:
    global _executor, _loop, _lock
    _executor = _loop = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    if _loop is None:
        with _lock:
            if _loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="twat_cache-loop", daemon=True
                ).start()
                _loop = loop
    return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, on the shared background loop.

    Works whether or not the calling thread runs a loop of its own (the
    coroutine never runs on the caller's loop, so it cannot deadlock it).
    """
    return asyncio.run_coroutine_threadsafe(coro, _background_loop()).result()
