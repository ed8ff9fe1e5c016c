"""Shared sentinels, small records and the protocol of a decorated function."""

from __future__ import annotations

import enum
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, TypeVar, overload

from typing_extensions import ParamSpec

if TYPE_CHECKING:  # explain.py imports the config, which imports this module
    from twat_cache._explain import CacheExplanation

P = ParamSpec("P")
R = TypeVar("R")


class _Missing(enum.Enum):
    """A cache miss: distinct from ``None`` so that ``None`` can be cached."""

    MISSING = enum.auto()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING


class CacheInfo(NamedTuple):
    """Hit and miss counts, as returned by ``functools.lru_cache``'s ``cache_info()``."""

    hits: int
    misses: int
    maxsize: int | None
    currsize: int


class CachedFunction(Protocol[P, R]):
    """A function decorated by twat-cache: callable as before, plus cache controls."""

    __wrapped__: Callable[P, R]
    __name__: str
    __qualname__: str

    @property
    def engine(self) -> Any:
        """The engine object in use; its ``name`` is e.g. ``"cachebox"``."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    def __get__(self, instance: object, owner: type | None = None) -> CachedFunction[..., R]:
        """Methods: bound access keeps the return type (arguments are not re-checked)."""

    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> None: ...
    def cache_parameters(self) -> dict[str, Any]: ...
    def cache_delete(self, *args: P.args, **kwargs: P.kwargs) -> bool: ...
    def cache_refresh(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    def cache_bypass(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    def cache_explain(self, *args: P.args, **kwargs: P.kwargs) -> CacheExplanation: ...


class AsyncCachedFunction(Protocol[P, R]):
    """An ``async def`` function decorated by twat-cache: the controls that touch it await."""

    __wrapped__: Callable[P, Coroutine[Any, Any, R]]
    __name__: str
    __qualname__: str

    @property
    def engine(self) -> Any:
        """The engine object in use; its ``name`` is e.g. ``"aiocache"``."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]: ...
    def __get__(self, instance: object, owner: type | None = None) -> AsyncCachedFunction[..., R]:
        """Methods: bound access keeps the return type (arguments are not re-checked)."""

    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> None: ...
    def cache_parameters(self) -> dict[str, Any]: ...
    def cache_delete(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, bool]: ...
    def cache_refresh(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]: ...
    def cache_bypass(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]: ...
    def cache_explain(
        self, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, CacheExplanation]: ...


class CacheDecorator(Protocol):
    """What a called decorator (``@acache(ttl=60)``) returns: sync or async, typed apart."""

    @overload
    def __call__(  # type: ignore[overload-overlap]  # a coroutine function is a callable too
        self, func: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncCachedFunction[P, R]: ...
    @overload
    def __call__(self, func: Callable[P, R], /) -> CachedFunction[P, R]: ...
