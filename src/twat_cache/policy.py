"""Policy for a block of code: ``disabled()``, ``refreshing()``, ``readonly()``.

Held in a context variable, so a block applies to its own thread and asyncio
task only. ``ACTIVE`` counts the blocks entered anywhere right now: the hot
path reads only that int and looks at the context variable when it is not 0.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ACTIVE", "current", "disabled", "readonly", "refreshing"]

ACTIVE = 0
_state: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "twat_cache_policy", default=None
)
_lock = threading.Lock()


def current() -> str | None:
    """The policy in force for this thread or task: ``"disabled"``, ``"refreshing"``,
    ``"readonly"`` or ``None``."""
    return _state.get()


@contextmanager
def _policy(name: str) -> Iterator[None]:
    global ACTIVE
    token = _state.set(name)
    with _lock:
        ACTIVE += 1
    try:
        yield
    finally:
        with _lock:
            ACTIVE -= 1
        _state.reset(token)


def disabled() -> contextlib.AbstractContextManager[None]:
    """Call straight through: no cache is read or written."""
    return _policy("disabled")


def refreshing() -> contextlib.AbstractContextManager[None]:
    """Recompute every call and overwrite its entry."""
    return _policy("refreshing")


def readonly() -> contextlib.AbstractContextManager[None]:
    """Serve hits, store nothing."""
    return _policy("readonly")
