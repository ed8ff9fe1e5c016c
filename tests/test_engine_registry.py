"""The engine registry: availability, third-party engines and one fallback mechanism."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from tests.conftest import run_python
from twat_cache import (
    MISSING,
    CacheConfig,
    CacheEngine,
    ConfigurationError,
    EngineNotAvailableError,
    get_engine_manager,
    get_stats,
    mcache,
    register_engine,
)

_FALLBACK_SCRIPT = """
import json, sys
for name in {blocked!r}:
    sys.modules[name] = None  # the import of this engine's library now fails
from twat_cache import mcache, get_engine_manager
calls = []
@mcache
def f(x):
    calls.append(x)
    return x * 2
print(json.dumps({{"available": get_engine_manager().available(), "values": [f(2), f(2)],
                  "calls": calls, "engine": f.cache_parameters()["engine"],
                  "fallback": f.cache_parameters()["fallback"]}}))
"""


def test_manager_is_one_global_object():
    """get_engine_manager() returns the same registry every time."""
    assert get_engine_manager() is get_engine_manager()


def test_available_lists_installed_engines():
    """Installed memory engines are available; nothing optional is imported to know it."""
    available = get_engine_manager().available()
    assert {"cachebox", "cachetools", "functools"} <= set(available)


@pytest.mark.parametrize(
    ("blocked", "expected"),
    [
        ([], "cachebox"),
        (["cachebox"], "cachetools"),
        (["cachebox", "cachetools"], "functools"),
    ],
)
def test_fallback_when_engine_import_fails(blocked, expected):
    """A missing cachebox falls back to cachetools, then to functools; calls still work."""
    done = run_python(_FALLBACK_SCRIPT.format(blocked=blocked))
    result = json.loads(done.strip().splitlines()[-1])
    assert result["engine"] == expected
    assert result["values"] == [4, 4]
    assert result["calls"] == [2]
    for name in blocked:
        assert name not in result["available"]
        assert name in result["fallback"]


def test_fallback_is_logged_once_per_cause(log):
    """Choosing a later engine logs one WARNING naming wanted, used and why."""
    for _ in range(3):

        @mcache(policy="rr", engine="functools")  # functools has no RR policy
        def f(x):
            return x

        assert f(1) == 1
    fallback = [m for m in log if "wanted engine" in m]
    assert len(fallback) == 1
    assert "'functools'" in fallback[0]
    assert "'cachebox'" in fallback[0]


def test_ttl_with_any_policy_is_served_by_the_first_engine_quietly(log):
    """A ttl is served by cachebox for every policy: no fallback, nothing logged."""
    for policy in ("lru", "lfu", "fifo", "rr", "ttl"):

        @mcache(ttl=60, policy=policy)
        def f(x):
            return x

        assert f(1) == 1
        assert f.cache_parameters()["engine"] == "cachebox"
        assert f.cache_parameters()["fallback"] is None
    assert not [m for m in log if "wanted engine" in m]


def test_policy_moves_selection_to_an_engine_that_has_it():
    """A policy the preferred engine lacks picks the next engine that has it."""

    @mcache(engine="functools", policy="lfu")
    def f(x):
        return x

    assert f.cache_parameters()["engine"] == "cachebox"
    assert "functools" in f.cache_parameters()["fallback"]


def test_no_engine_can_serve_raises_clear_error():
    """When no engine of the chain can serve the config, the error lists each reason."""
    with pytest.raises(EngineNotAvailableError, match="functools") as info:
        get_engine_manager().select(["functools"], CacheConfig(policy="rr"))
    assert "RR" in str(info.value)


class DictEngine(CacheEngine):
    """A third-party engine in the documented shape: stores in a plain dict."""

    name: ClassVar[str] = "dictengine"
    instances: ClassVar[list[DictEngine]] = []

    def __init__(self, config: CacheConfig) -> None:
        super().__init__(config)
        self.data: dict[Any, Any] = {}
        DictEngine.instances.append(self)

    def get(self, key):
        return self.data.get(key, MISSING)

    def set(self, key, value, ttl=None):
        self.data[key] = value

    def delete(self, key):
        return self.data.pop(key, MISSING) is not MISSING

    def clear(self):
        self.data.clear()

    def __len__(self):
        return len(self.data)


def test_register_engine_joins_selection_by_name(calls):
    """A registered engine is chosen by engine= and keyed by stable str digests."""
    register_engine(DictEngine)
    assert "dictengine" in get_engine_manager().available()

    @mcache(engine="dictengine")
    def f(x, y=1):
        calls(x)
        return [x, y]

    assert f(1) == [1, 1]
    assert f(1, y=1) == [1, 1]
    assert calls == [1]
    engine = DictEngine.instances[-1]
    assert f.engine is engine
    (key,) = engine.data
    assert isinstance(key, str)
    assert len(key) == 32
    assert f.cache_delete(1) is True
    assert len(engine) == 0
    assert get_stats(f.cache_parameters()["name"])["engine"] == "dictengine"


def test_register_engine_rejects_incomplete_classes():
    """A class lacking the engine methods is refused with the missing names."""

    class Broken:
        name = "broken"

    with pytest.raises(ConfigurationError, match="get"):
        register_engine(Broken)  # type: ignore[arg-type]
