"""ucache's automatic choice (API.md section 4) and explain_selection."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from twat_cache import ConfigurationError, explain_selection, mcache, ucache
from twat_cache.config import create_cache_config
from twat_cache.engines import CHAINS, MEMORY_CHAIN, choose_chain

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def test_plain_function_gets_the_memory_chain(calls):
    """No engine, URL, location or large return type: mcache's chain."""

    @ucache
    def f(x):
        calls(x)
        return x

    assert [f(1), f(1)] == [1, 1]
    assert calls == [1]
    assert f.cache_parameters()["engine"] == "cachebox"
    assert "mcache's chain" in explain_selection(f)
    assert "'cachebox'" in explain_selection(f)


def test_engine_given_wins_over_everything(redis_url, calls):
    """engine= is the first rule: it beats redis_url and async def."""

    @ucache(engine="cachetools", redis_url=redis_url)
    async def f(x):
        calls(x)
        return x

    async def main():
        return [await f(1), await f(1)]

    assert asyncio.run(main()) == [1, 1]
    assert calls == [1]
    assert f.cache_parameters()["engine"] == "cachetools"
    assert "engine='cachetools' was given" in explain_selection(f)


def test_redis_url_picks_redis_sync_and_async(redis_url):
    """redis_url= picks redis, sync (redis-py) or async (redis.asyncio) to match the function."""

    @ucache(redis_url=redis_url)
    def sync_f(x):
        return x

    @ucache(redis_url=redis_url)
    async def async_f(x):
        return x

    assert sync_f(2) == 2
    assert asyncio.run(async_f(2)) == 2
    assert sync_f.cache_parameters()["engine"] == "redis"
    assert async_f.cache_parameters()["engine"] == "redis"
    assert "sync (redis-py)" in explain_selection(sync_f)
    assert "async (redis.asyncio)" in explain_selection(async_f)


def test_async_def_gets_the_async_chain(calls):
    """An async def function without engine or URL: acache's chain, aiocache first."""

    @ucache(folder_name="ignored-for-async")
    async def f(x):
        calls(x)
        return x

    assert asyncio.run(f(5)) == 5
    assert f.cache_parameters()["engine"] == "aiocache"
    assert "async def" in explain_selection(f)


@pytest.mark.parametrize("option", ["folder_name", "cache_dir", "size_limit"])
def test_location_options_pick_the_persistent_chain(option, tmp_path):
    """folder_name/cache_dir/size_limit given: bcache's chain (memory if not in this build)."""
    value = {"folder_name": "runs", "cache_dir": str(tmp_path), "size_limit": 10_000}[option]
    config = create_cache_config(**{option: value})

    def f(x):
        return x

    chain, why = choose_chain(f, config, {option})
    assert chain == CHAINS.get("bcache", MEMORY_CHAIN)
    assert option in why
    assert "bcache" in why


def test_environment_cache_dir_is_not_a_request_for_disk():
    """TWAT_CACHE_DIR (always set in tests) does not count as cache_dir= given."""

    @ucache
    def f(x):
        return x

    assert f(1) == 1
    assert f.cache_parameters()["cache_dir"] is not None  # from the environment
    assert "mcache's chain" in explain_selection(f)


def test_large_return_annotation_picks_the_large_object_chain():
    """A NumPy or pandas return annotation picks fcache's chain, without importing either."""

    def arr(x: int) -> np.ndarray:
        raise NotImplementedError

    def frame(x: int) -> pd.DataFrame | None:
        raise NotImplementedError

    def text(x: int) -> str:
        raise NotImplementedError

    config = create_cache_config()
    for func, large in ((arr, "numpy.ndarray"), (frame, "pandas.DataFrame")):
        chain, why = choose_chain(func, config, set())
        assert chain == CHAINS.get("fcache", MEMORY_CHAIN)
        assert large in why
    chain, why = choose_chain(text, config, set())
    assert chain == MEMORY_CHAIN


def test_large_return_annotation_with_real_numpy():
    """Real NumPy types (``numpy.typing.NDArray``) are recognised through their origin."""
    np = pytest.importorskip("numpy")
    npt = pytest.importorskip("numpy.typing")

    def f(x: int) -> npt.NDArray[np.float64]:
        return np.zeros(x)

    f.__annotations__["return"] = npt.NDArray[np.float64]
    chain, why = choose_chain(f, create_cache_config(), set())
    assert chain == CHAINS.get("fcache", MEMORY_CHAIN)
    assert "numpy.ndarray" in why


def test_explain_selection_names_a_fallback(log):
    """explain_selection tells which engine was wanted, which is used and why."""

    @ucache(engine="redis")
    def f(x):
        return x

    text = explain_selection(f)
    assert text.startswith("engine 'cachebox'")
    assert "fell back because redis: no redis_url given" in text


def test_explain_selection_works_for_every_decorator():
    """Any decorated function can be explained; anything else is an error."""

    @mcache
    def f(x):
        return x

    assert "mcache's chain" in explain_selection(f)
    with pytest.raises(ConfigurationError, match="not a function decorated by twat_cache"):
        explain_selection(len)
