"""The decorators: overloads for bare and called use, then one call into ``wrapper.py``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, overload

from typing_extensions import TypedDict, Unpack

from twat_cache._types import CachedFunction, P, R
from twat_cache.config import Policy, caching_disabled, create_cache_config
from twat_cache.engines import BACKEND_CHAIN, CHAINS
from twat_cache.engines.backend import check_backend
from twat_cache.exceptions import ConfigurationError
from twat_cache.wrapper import make_cached, make_passthrough

__all__ = ["CacheOptions", "bcache", "fcache", "mcache"]

T = TypeVar("T")


class CacheOptions(TypedDict, total=False):
    """Keyword arguments every decorator accepts (validated by ``CacheConfig``)."""

    maxsize: int | None
    ttl: float | timedelta | None
    policy: Policy
    folder_name: str | None
    cache_dir: str | Path | None
    size_limit: int | None
    compress: bool
    serializer: Any
    key: Callable[..., Any] | None
    ignore: tuple[str, ...] | list[str] | str
    typed: bool
    name: str | None
    engine: str | None
    preferred_engine: str | None
    backend: Any
    redis_url: str | None
    secure: bool
    lock: bool
    version: str | None
    call_options: bool
    location_arg: str | None
    mmap_mode: str | None


def _decorate(kind: str, func: Any, options: dict[str, Any]) -> Any:
    """Validate now (decoration time), then wrap ``func`` or return a decorator that will."""
    if (
        func is not None
        and not callable(func)
        and not isinstance(func, (classmethod, staticmethod))
    ):
        msg = (
            f"{kind}: the first positional argument must be the function to cache, "
            f"got {func!r}; pass options by keyword, e.g. @{kind}(maxsize={func!r})"
        )
        raise ConfigurationError(msg)
    config = create_cache_config(**options)
    check_backend(config.backend)
    chain = BACKEND_CHAIN if config.backend is not None else CHAINS[kind]

    def decorate(target: Any) -> Any:
        if isinstance(target, (classmethod, staticmethod)):
            return type(target)(decorate(target.__func__))
        if caching_disabled():
            return make_passthrough(target, config)
        return make_cached(target, config, chain)

    return decorate if func is None else decorate(func)


@overload
def mcache(func: classmethod[T, P, R], /) -> classmethod[T, P, R]: ...
@overload
def mcache(func: staticmethod[P, R], /) -> staticmethod[P, R]: ...  # type: ignore[overload-overlap]
@overload
def mcache(func: Callable[P, R], /) -> CachedFunction[P, R]: ...
@overload
def mcache(
    func: None = None, /, **options: Unpack[CacheOptions]
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...
def mcache(func: Any = None, /, **options: Any) -> Any:
    """Cache results in process memory: cachebox > cachetools > functools.

    Works bare or called, on functions, ``async def`` functions and methods.

    >>> @mcache(maxsize=2)
    ... def double(x: int) -> int:
    ...     return 2 * x
    >>> double(2), double(2), double.cache_info().hits
    (4, 4, 1)
    """
    return _decorate("mcache", func, options)


@overload
def bcache(func: classmethod[T, P, R], /) -> classmethod[T, P, R]: ...
@overload
def bcache(func: staticmethod[P, R], /) -> staticmethod[P, R]: ...  # type: ignore[overload-overlap]
@overload
def bcache(func: Callable[P, R], /) -> CachedFunction[P, R]: ...
@overload
def bcache(
    func: None = None, /, **options: Unpack[CacheOptions]
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...
def bcache(func: Any = None, /, **options: Any) -> Any:
    """Cache results on disk, for many small and medium values: diskcache > klepto > memory.

    Entries survive the process and are shared by every process using the same
    cache folder; the function's source code and ``version=`` are part of the
    key, so editing the body starts a fresh cache.

    >>> @bcache(folder_name="doctest")
    ... def double(x: int) -> int:
    ...     return 2 * x
    >>> double(2), double(2), double.cache_info().hits
    (4, 4, 1)
    >>> double.cache_clear()
    """
    return _decorate("bcache", func, options)


@overload
def fcache(func: classmethod[T, P, R], /) -> classmethod[T, P, R]: ...
@overload
def fcache(func: staticmethod[P, R], /) -> staticmethod[P, R]: ...  # type: ignore[overload-overlap]
@overload
def fcache(func: Callable[P, R], /) -> CachedFunction[P, R]: ...
@overload
def fcache(
    func: None = None, /, **options: Unpack[CacheOptions]
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...
def fcache(func: Any = None, /, **options: Any) -> Any:
    """Cache large results in files: joblib > klepto > memory.

    NumPy arrays are stored in the ``.npy`` layout and read back without
    pickle (``mmap_mode="r"`` maps them read-only instead of reading them);
    pandas objects go through joblib; anything else through the serializer.

    >>> @fcache(folder_name="doctest")
    ... def squares(n: int) -> list[int]:
    ...     return [i * i for i in range(n)]
    >>> squares(4), squares(4), squares.cache_info().hits
    ([0, 1, 4, 9], [0, 1, 4, 9], 1)
    >>> squares.cache_clear()
    """
    return _decorate("fcache", func, options)
