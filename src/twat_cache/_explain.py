"""``f.cache_explain(...)``: whether a call would hit, and if not, why.

Why a separate answer type: a user debugging a pipeline wants one line
("code changed: helper mod.clean"), a test wants a field to compare. The
call path works the answer out (``CallPath.explain``) from what the store can
tell without reading more than it must (``Store.peek``) and, for a
persistent store, the record of the code version its folder holds.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from twat_cache.codeversion import _Walk
from twat_cache.config import CacheConfig

__all__ = ["CacheExplanation", "Reason", "version_parts", "version_tag"]

Reason = Literal[
    "hit",
    "new",
    "expired",
    "evicted",
    "code_changed",
    "file_changed",
    "corrupt",
    "not_stored",
    "disabled",
]


@dataclass(frozen=True)
class CacheExplanation:
    """Whether one call would be served from the cache, and if not, why.

    ``reason`` is one of ``"hit"``, ``"new"``, ``"expired"``, ``"evicted"``,
    ``"code_changed"``, ``"file_changed"``, ``"corrupt"``, ``"not_stored"``,
    ``"disabled"``; ``detail`` says more (which function, which file).

    >>> print(CacheExplanation(False, "new", "never computed with these arguments"))
    miss (new): never computed with these arguments
    """

    hit: bool
    reason: Reason
    detail: str = ""

    def __str__(self) -> str:
        head = "hit" if self.hit else f"miss ({self.reason})"
        return f"{head}: {self.detail}" if self.detail else head


def version_tag(config: CacheConfig, namespace: tuple[str, ...]) -> tuple[str, ...]:
    """The part of a key namespace that names the code version: name, ``version=`` and
    code digest, without the identity telling closures of one factory apart (they
    share a folder and a version, and must not remove each other's entries)."""
    return namespace[:2] if config.version is not None else namespace[:3]


def version_parts(func: Callable[..., Any]) -> dict[str, str]:
    """The digest of each function, class and constant the code version covers
    (``""`` is the function itself)."""
    walk = _Walk()
    walk.run(inspect.unwrap(func))
    return dict(walk.parts)


def changed_parts(old: Any, new: dict[str, str]) -> list[str]:
    """Names of what differs between two :func:`version_parts` (sorted; ``""`` first)."""
    if not isinstance(old, dict):
        return []
    return sorted(label for label in old.keys() | new.keys() if old.get(label) != new.get(label))
