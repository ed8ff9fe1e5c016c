"""Type-checked by ``mypy tests/typing`` (never run): decorators keep signatures."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from typing_extensions import assert_type

from twat_cache import CachedFunction, CacheExplanation, CacheInfo, mcache


@mcache
def bare(x: int, y: str = "a") -> float:
    return float(x)


@mcache(maxsize=10, ttl=5.0, ignore=("y",))
def called(x: int, y: str = "a") -> list[int]:
    return [x]


@mcache
async def coro(x: int) -> str:
    return str(x)


class Service:
    @mcache
    @classmethod
    def build(cls, name: str) -> Service:
        return cls()

    @mcache
    def method(self, x: int) -> int:
        return x

    @mcache
    @staticmethod
    def scale(x: float) -> float:
        return x * 2


plain: Callable[[int, str], float] = bare
cached: CachedFunction[..., float] = bare
assert_type(bare(1), float)
assert_type(bare(1, y="b"), float)
assert_type(called(2), list[int])
pending: Coroutine[Any, Any, str] = coro(1)
pending.close()
assert_type(bare.cache_info(), CacheInfo)
assert_type(bare.cache_delete(1), bool)
assert_type(bare.cache_explain(1, "z"), CacheExplanation)
assert_type(bare.cache_refresh(1), float)
assert_type(bare.cache_bypass(1, "z"), float)
assert_type(bare.cache_parameters(), dict[str, Any])
assert_type(Service.build("n"), Service)
assert_type(Service.scale(1.0), float)
assert_type(Service().method(3), int)
assert_type(Service.method.cache_info(), CacheInfo)
bare.cache_clear()

bare("not an int")  # type: ignore[arg-type]
called(1, 2)  # type: ignore[arg-type]
