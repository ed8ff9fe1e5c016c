"""CacheConfig validates every field once, names the bad field and value, reads env defaults."""

from __future__ import annotations

from datetime import timedelta

import pytest

from twat_cache import CacheConfig, ConfigurationError, create_cache_config, mcache


@pytest.mark.parametrize(
    ("options", "field", "value"),
    [
        ({"ttl": -1}, "ttl", "-1"),
        ({"ttl": float("nan")}, "ttl", "nan"),
        ({"ttl": float("inf")}, "ttl", "inf"),
        ({"ttl": "soon"}, "ttl", "'soon'"),
        ({"ttl": timedelta(seconds=-5)}, "ttl", "timedelta(days=-1"),
        ({"maxsize": -1}, "maxsize", "-1"),
        ({"maxsize": True}, "maxsize", "True"),
        ({"maxsize": 1.5}, "maxsize", "1.5"),
        ({"policy": "bogus"}, "policy", "'bogus'"),
        ({"folder_name": "../escape"}, "folder_name", "'../escape'"),
        ({"folder_name": "/etc"}, "folder_name", "'/etc'"),
        ({"folder_name": "a\x00b"}, "folder_name", "'a\\x00b'"),
        ({"cache_dir": "relative/path"}, "cache_dir", "'relative/path'"),
        ({"size_limit": 0}, "size_limit", "0"),
        ({"serializer": "yaml"}, "serializer", "'yaml'"),
        ({"redis_url": "http://localhost"}, "redis_url", "'http://localhost'"),
        ({"name": ""}, "name", "''"),
        ({"mmap_mode": "w"}, "mmap_mode", "'w'"),
        ({"mmap_mode": "r+"}, "mmap_mode", "'r+'"),
        ({"size_limit": 1.5}, "size_limit", "1.5"),
        ({"size_limit": -1e9}, "size_limit", "-1000000000.0"),
        ({"size_limit": float("inf")}, "size_limit", "inf"),
    ],
)
def test_bad_values_name_field_and_value(options, field, value):
    """A bad value raises ConfigurationError (a ValueError) naming the field and the value."""
    with pytest.raises(ConfigurationError) as info:
        create_cache_config(**options)
    assert isinstance(info.value, ValueError)
    assert field in str(info.value)
    assert value in str(info.value)


def test_bad_value_fails_at_decoration_time():
    """The decorator raises before any function is wrapped or called."""
    with pytest.raises(ConfigurationError, match="maxsize"):
        mcache(maxsize=-3)


def test_unknown_option_is_rejected():
    """An unknown keyword names itself (extra='forbid') and the option it resembles."""
    with pytest.raises(ConfigurationError, match="'maxsise'=3: did you mean 'maxsize'"):
        mcache(maxsise=3)


def test_policy_ttl_needs_ttl():
    """policy='ttl' without ttl is a configuration error."""
    with pytest.raises(ConfigurationError, match="policy"):
        CacheConfig(policy="ttl")


def test_positional_option_gets_a_clear_error():
    """``@mcache(128)`` (lru_cache style) says to pass options by keyword."""
    with pytest.raises(ConfigurationError, match=r"maxsize=128"):
        mcache(128)  # type: ignore[call-overload]


def test_config_is_frozen():
    """A CacheConfig cannot be changed after validation; variants come from model_copy."""
    config = CacheConfig(maxsize=3)
    with pytest.raises(ValueError, match="frozen"):
        config.maxsize = 4  # type: ignore[misc]
    assert config.model_copy(update={"maxsize": 4}).maxsize == 4


def test_timedelta_ttl_becomes_seconds():
    """A timedelta ttl is stored as float seconds."""
    assert create_cache_config(ttl=timedelta(minutes=2)).ttl == 120.0


def test_environment_defaults(monkeypatch):
    """TWAT_CACHE_* fill omitted fields when the config is created, not at import."""
    monkeypatch.setenv("TWAT_CACHE_TTL", "30")
    monkeypatch.setenv("TWAT_CACHE_MAXSIZE", "7")
    monkeypatch.setenv("TWAT_CACHE_ENGINE", "cachetools")
    monkeypatch.setenv("TWAT_CACHE_REDIS_URL", "redis://127.0.0.1:1/0")
    config = create_cache_config()
    assert (config.ttl, config.maxsize, config.engine) == (30.0, 7, "cachetools")
    assert config.redis_url == "redis://127.0.0.1:1/0"
    assert create_cache_config(maxsize=3, ttl=None).maxsize == 3
    assert create_cache_config(ttl=None).ttl is None


def test_bad_environment_default_names_the_variable(monkeypatch):
    """A bad environment value names the variable."""
    monkeypatch.setenv("TWAT_CACHE_MAXSIZE", "lots")
    with pytest.raises(ConfigurationError, match="TWAT_CACHE_MAXSIZE"):
        create_cache_config()


def test_preferred_engine_is_an_alias():
    """preferred_engine= and engine= mean the same; conflicting values are refused."""
    assert create_cache_config(preferred_engine="functools").engine == "functools"
    with pytest.raises(ConfigurationError):
        create_cache_config(engine="cachebox", preferred_engine="functools")


def test_unknown_engine_fails_at_decoration():
    """engine= naming no registered engine fails at decoration, listing the known ones."""
    with pytest.raises(ConfigurationError, match="nosuch") as info:
        mcache(engine="nosuch")(lambda: 1)
    assert "cachetools" in str(info.value)


def test_ignore_must_name_parameters():
    """ignore= names that are not parameters fail at decoration."""
    with pytest.raises(ConfigurationError, match="client"):

        @mcache(ignore=("client",))
        def f(x):
            return x
