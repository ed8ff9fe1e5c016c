"""The decorators: overloads for bare and called use, then one call into ``wrapper.py``."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast, overload

from typing_extensions import TypedDict, Unpack

from twat_cache._types import AsyncCachedFunction, CacheDecorator, CachedFunction, P, R
from twat_cache.call import make_cached, make_passthrough
from twat_cache.config import Policy, caching_disabled, create_cache_config
from twat_cache.engines import CHAINS, choose_chain
from twat_cache.engines.backend import check_backend
from twat_cache.exceptions import ConfigurationError
from twat_cache.keys import runs

__all__ = ["CacheOptions", "acache", "bcache", "fcache", "mcache", "ucache"]

T = TypeVar("T")

#: ``acache``'s default bound: web handlers see hundreds to thousands of distinct
#: requests, and lru_cache's 128 recomputed a 200-key working set 2.4 times over.
ACACHE_MAXSIZE = 4096
MAXSIZE_VAR = "TWAT_CACHE_MAXSIZE"


class CacheOptions(TypedDict, total=False):
    """Keyword arguments every decorator accepts (validated by ``CacheConfig``)."""

    maxsize: int | None
    ttl: float | timedelta | None
    policy: Policy
    folder_name: str | None
    cache_dir: str | Path | None
    size_limit: int | float | None
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
    mmap_mode: Literal["r", "c"] | None
    files: tuple[str, ...] | list[str] | str
    file_key: Literal["mtime", "content"]
    redis_client: Any
    redis_connect_timeout: float
    redis_timeout: float
    redis_breaker_failures: int
    near: bool
    near_maxsize: int


def _decorate(kind: str, func: Any, options: dict[str, Any]) -> Any:
    """Validate now (decoration time), then wrap ``func`` or return a decorator that will."""
    descriptor = isinstance(func, (classmethod, staticmethod))
    if func is not None and not callable(func) and not descriptor:
        msg = (
            f"{kind}: the first positional argument must be the function to cache, "
            f"got {func!r}; pass options by keyword, e.g. @{kind}(maxsize={func!r})"
        )
        raise ConfigurationError(msg)
    given = frozenset(options)
    if kind == "acache" and "maxsize" not in options and not os.environ.get(MAXSIZE_VAR):
        options = {**options, "maxsize": ACACHE_MAXSIZE}
    config = create_cache_config(**options)
    check_backend(config.backend)

    def decorate(target: Any) -> Any:
        if isinstance(target, (classmethod, staticmethod)):
            return type(target)(decorate(target.__func__))
        inner = runs(target)  # a partial's function, an object's __call__
        if inspect.isgeneratorfunction(inner) or inspect.isasyncgenfunction(inner):
            msg = (
                f"{kind}: {getattr(target, '__qualname__', target)!r} is a generator function; "
                "a cache would hand every later caller the same, already consumed generator. "
                "Cache a function that returns a list (or a tuple) of its items instead"
            )
            raise ConfigurationError(msg)
        if caching_disabled():
            return make_passthrough(target, config)
        if kind == "ucache":  # the choice depends on the function: made here, once
            chain, why = choose_chain(target, config, given)
            return make_cached(target, config, chain, why=why)
        return make_cached(target, config, CHAINS[kind], why=f"{kind}'s chain")

    return decorate if func is None else decorate(func)


class _Decorator(Protocol):
    """The type of ``acache``, ``ucache``, ``bcache`` and ``fcache``: bare or called.

    Bare on a classmethod it keeps the classmethod; on an ``async def`` function it
    gives an awaitable cached function; on any other callable a cached one; called
    with options only, a decorator that does the same.
    """

    @overload
    def __call__(  # type: ignore[overload-overlap]  # a coroutine function is a callable too
        self, func: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncCachedFunction[P, R]: ...
    @overload  # (a classmethod object is not a callable: the order does not matter)
    def __call__(self, func: classmethod[T, P, R], /) -> classmethod[T, P, R]: ...
    @overload
    def __call__(self, func: Callable[P, R], /) -> CachedFunction[P, R]: ...
    @overload
    def __call__(self, func: None = None, /, **options: Unpack[CacheOptions]) -> CacheDecorator: ...


def _typed(decorator: Callable[..., Any]) -> _Decorator:
    """Give a decorator the overloads of ``_Decorator`` (written once); at run time a no-op."""
    return cast("_Decorator", decorator)


@overload
def mcache(func: classmethod[T, P, R], /) -> classmethod[T, P, R]: ...
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


@_typed
def acache(func: Any = None, /, **options: Any) -> Any:
    """Cache an ``async def`` function's results without ever blocking its loop.

    aiocache's in-process store first, else the memory chain read from the
    coroutine; a hit creates no task and no thread, and concurrent callers of
    one cold key await a single computation. The default ``maxsize`` is 4096
    (not ``lru_cache``'s 128): a web handler's working set is larger than a
    helper function's, and a bound that is too small recomputes it on every
    pass (``TWAT_CACHE_MAXSIZE`` or ``maxsize=`` override it). On an ``async def`` function,
    ``cache_delete``, ``cache_refresh`` and ``cache_bypass`` are awaitable.

    >>> import asyncio
    >>> @acache(ttl=60)
    ... async def double(x: int) -> int:
    ...     return 2 * x
    >>> asyncio.run(double(2)), double.cache_info().misses
    (4, 1)
    """
    return _decorate("acache", func, options)


@_typed
def ucache(func: Any = None, /, **options: Any) -> Any:
    """Pick the engine for you (API.md section 4), first match wins.

    ``engine=`` -> that engine's chain; ``redis_url=`` (or
    ``TWAT_CACHE_REDIS_URL``) -> redis; ``async def`` -> acache's chain;
    ``folder_name``/``cache_dir``/``size_limit``/``compress=True`` or a
    NumPy/pandas return annotation -> fcache's or bcache's chain; else mcache's.
    ``explain_selection(f)`` says what was picked and why.

    >>> @ucache
    ... def square(x: int) -> int:
    ...     return x * x
    >>> square(3), square.cache_parameters()["engine"] in ("cachebox", "cachetools", "functools")
    (9, True)
    """
    return _decorate("ucache", func, options)


@_typed
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


@_typed
def fcache(func: Any = None, /, **options: Any) -> Any:
    """Cache large results in files: joblib > klepto > memory.

    NumPy arrays are stored in the ``.npy`` layout and read back without
    pickle (``mmap_mode="r"`` maps them read-only instead of reading them);
    pandas, pyarrow and polars frames are Arrow IPC files (with ``mmap_mode="r"`` a
    pandas hit is read-only views of the mapped file); anything else goes through
    the serializer.

    >>> @fcache(folder_name="doctest")
    ... def squares(n: int) -> list[int]:
    ...     return [i * i for i in range(n)]
    >>> squares(4), squares(4), squares.cache_info().hits
    ([0, 1, 4, 9], [0, 1, 4, 9], 1)
    >>> squares.cache_clear()
    """
    return _decorate("fcache", func, options)
