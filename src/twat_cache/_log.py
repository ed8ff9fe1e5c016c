"""Logging helpers: loguru, never configured by the library.

A fallback or a cache fault is logged once per cause at WARNING; users silence
everything with ``logger.disable("twat_cache")``.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

from loguru import logger

__all__ = ["logger", "reset_warnings", "warn_once"]

_seen: set[Hashable] = set()
_seen_lock = threading.Lock()


def warn_once(cause: Hashable, message: str) -> bool:
    """Log ``message`` at WARNING the first time ``cause`` is seen; True if it was logged."""
    with _seen_lock:
        if cause in _seen:
            return False
        _seen.add(cause)
    logger.opt(depth=1).warning(message)
    return True


def reset_warnings() -> None:
    """Forget which causes were logged (tests use it to see each warning again)."""
    with _seen_lock:
        _seen.clear()
