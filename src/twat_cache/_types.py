"""Shared sentinels, small records and the protocol of a decorated function."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Final, Literal, NamedTuple, Protocol, TypeVar

from typing_extensions import ParamSpec

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class _Missing(enum.Enum):
    """A cache miss: distinct from ``None`` so that ``None`` can be cached."""

    MISSING = enum.auto()

    def __repr__(self) -> str:
        return "MISSING"


class _Unset(enum.Enum):
    """An argument that was not passed: distinct from ``None``, which means 'no limit'."""

    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "UNSET"


MISSING: Final = _Missing.MISSING
MissingType = Literal[_Missing.MISSING]
UNSET: Final = _Unset.UNSET
UnsetType = Literal[_Unset.UNSET]


class CacheInfo(NamedTuple):
    """Hit and miss counts, as returned by ``functools.lru_cache``'s ``cache_info()``."""

    hits: int
    misses: int
    maxsize: int | None
    currsize: int


class CachedFunction(Protocol[P, R_co]):
    """A function decorated by twat-cache: callable as before, plus cache controls."""

    __name__: str
    __qualname__: str

    @property
    def __wrapped__(self) -> Callable[P, R_co]:
        """The original, undecorated function."""

    @property
    def engine(self) -> Any:
        """The engine object in use; its ``name`` is e.g. ``"cachebox"``."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> None: ...
    def cache_parameters(self) -> dict[str, Any]: ...
    def cache_delete(self, *args: P.args, **kwargs: P.kwargs) -> bool: ...
    def cache_refresh(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    def cache_bypass(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
