"""Type-checked by ``mypy tests/typing`` (never run): async decorators keep signatures."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from typing_extensions import assert_type

from twat_cache import (
    AsyncCachedFunction,
    CachedFunction,
    CacheExplanation,
    CacheInfo,
    acache,
    ucache,
)


@acache
async def bare(x: int) -> str:
    return str(x)


@acache(ttl=60)
async def called(x: int, y: str = "a") -> list[int]:
    return [x]


@ucache
def plain(x: int) -> float:
    return float(x)


async def use() -> None:
    assert_type(await bare(1), str)
    assert_type(await called(2, y="b"), list[int])
    assert_type(await bare.cache_delete(1), bool)
    assert_type(await bare.cache_explain(1), CacheExplanation)
    assert_type(await bare.cache_refresh(1), str)
    assert_type(await called.cache_bypass(1), list[int])
    assert_type(bare.cache_info(), CacheInfo)


pending: Coroutine[Any, Any, str] = bare(1)
pending.close()
typed: AsyncCachedFunction[..., str] = bare
sync: CachedFunction[..., float] = plain
assert_type(plain(1), float)
bare("x").close()  # type: ignore[arg-type]
