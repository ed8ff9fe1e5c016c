"""Validated cache configuration.

Why: every decorator, context and engine reads one frozen ``CacheConfig``, so a
bad value is caught once, at decoration, with a message naming the field and
the value, and the hot path never validates anything.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from twat_cache.exceptions import ConfigurationError

__all__ = ["ENV_VARS", "CacheConfig", "Policy", "RedisTarget", "create_cache_config"]

Policy = Literal["lru", "lfu", "fifo", "rr", "ttl"]
SerializerName = Literal["pickle", "json", "typed"]

#: Environment variable -> config field, read by :func:`create_cache_config` at decoration.
ENV_VARS: Mapping[str, str] = {
    "TWAT_CACHE_DIR": "cache_dir",
    "TWAT_CACHE_TTL": "ttl",
    "TWAT_CACHE_MAXSIZE": "maxsize",
    "TWAT_CACHE_ENGINE": "engine",
    "TWAT_CACHE_REDIS_URL": "redis_url",
}


class CacheConfig(BaseModel):
    """Everything a cache needs to know, validated once.

    Build it with :func:`create_cache_config` (which also reads the
    ``TWAT_CACHE_*`` environment defaults) or directly; either way a bad value
    raises :class:`~twat_cache.ConfigurationError` naming the field and value.

    >>> CacheConfig(maxsize=10, ttl=timedelta(minutes=1)).ttl
    60.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    maxsize: Annotated[int, Field(ge=0, strict=True)] | None = 128
    ttl: float | None = None
    policy: Policy = "lru"
    folder_name: str | None = None
    cache_dir: Path | None = None
    size_limit: Annotated[int, Field(gt=0, strict=True)] | None = None
    compress: bool = False
    serializer: Any = "pickle"
    key: Callable[..., Any] | None = None
    ignore: tuple[str, ...] = ()
    typed: bool = False
    name: Annotated[str, Field(min_length=1)] | None = None
    engine: Annotated[str, Field(min_length=1)] | None = None
    backend: Any = None
    redis_url: str | None = None
    #: A ready redis-py client (``Redis``, ``RedisCluster`` or their asyncio forms),
    #: or a zero-argument callable returning one, resolved on first use.
    redis_client: Any = None
    #: Seconds to open a connection / to wait for an answer: a loaded server answering
    #: in 300 ms is slow, not down. With the breaker below (which also opens once
    #: failures in a row have cost 1 s), a dead or frozen server costs a call ~1 s.
    redis_connect_timeout: Annotated[float, Field(gt=0, le=60)] = 0.5
    redis_timeout: Annotated[float, Field(gt=0, le=60)] = 0.5
    #: Consecutive connection failures or timeouts before the shared cache is switched
    #: off for a cool-down (0.5 s, doubling to 4 s) and then probed again.
    #: Any answer from the server resets the count.
    redis_breaker_failures: Annotated[int, Field(ge=1, le=100, strict=True)] = 3
    #: An in-process copy of what was read from Redis, dropped when any process changes
    #: the entry (the server's client-side caching invalidation); at most ``near_maxsize``.
    near: bool = False
    near_maxsize: Annotated[int, Field(ge=1, strict=True)] = 10_000
    secure: bool = True
    lock: bool = True
    version: str | None = None
    call_options: bool = False
    location_arg: Annotated[str, Field(min_length=1)] | None = None
    mmap_mode: Literal["r", "c"] | None = None
    #: Parameters that are paths (str or os.PathLike) whose file state joins the key.
    files: tuple[str, ...] = ()
    #: How a ``files`` argument is keyed: ``"mtime"`` (size and modification time in
    #: nanoseconds, one ``stat``) or ``"content"`` (a hash of the bytes, read each call).
    file_key: Literal["mtime", "content"] = "mtime"

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _configuration_error(exc) from None
        if self.policy == "ttl" and self.ttl is None:
            msg = "CacheConfig.policy: invalid value 'ttl': policy 'ttl' needs ttl= (seconds)"
            raise ConfigurationError(msg)

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl_seconds(cls, value: Any) -> Any:
        if isinstance(value, timedelta):
            value = value.total_seconds()
        if isinstance(value, bool) or (not isinstance(value, (int, float)) and value is not None):
            msg = "must be seconds (a finite number >= 0), a timedelta, or None"
            raise ValueError(msg)
        if value is not None and (not math.isfinite(value) or value < 0):
            msg = "must be finite and >= 0"
            raise ValueError(msg)
        return None if value is None else float(value)

    @field_validator("size_limit", mode="before")
    @classmethod
    def _whole_bytes(cls, value: Any) -> Any:
        # cachecache and diskcache users write size_limit=10e9: a float naming whole bytes.
        if isinstance(value, float):
            if not (math.isfinite(value) and value.is_integer() and value > 0):
                msg = "must be a whole number of bytes > 0 (10e9 is fine, 1.5 is not)"
                raise ValueError(msg)
            return int(value)
        return value

    @field_validator("mmap_mode", mode="before")
    @classmethod
    def _read_only_map(cls, value: Any) -> Any:
        if value in ("r+", "w+"):
            msg = (
                "a writable map would let callers change the cached file (and the cache "
                "opens it read-only, so every read would fail); use 'r' (read-only), "
                "'c' (copy-on-write: changes stay in memory) or None"
            )
            raise ValueError(msg)
        return value

    @field_validator("folder_name")
    @classmethod
    def _folder_inside_root(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value or "\x00" in value:
            msg = "must be a non-empty folder name without NUL bytes"
            raise ValueError(msg)
        for flavour in (PurePosixPath, PureWindowsPath):
            path = flavour(value)
            if path.is_absolute() or path.anchor or ".." in path.parts:
                msg = "must be a relative folder inside the cache root (no '..', no absolute path)"
                raise ValueError(msg)
        return value

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _absolute_root(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, (str, os.PathLike)) or "\x00" in str(value):
            msg = "must be an absolute path"
            raise ValueError(msg)
        path = Path(value).expanduser()
        if not path.is_absolute():
            msg = "must be an absolute path"
            raise ValueError(msg)
        return path

    @field_validator("serializer")
    @classmethod
    def _known_serializer(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in ("pickle", "json", "typed"):
                msg = "must be 'pickle', 'json', 'typed' or an object with dumps() and loads()"
                raise ValueError(msg)
        elif not all(callable(getattr(value, m, None)) for m in ("dumps", "loads")):
            msg = "must be 'pickle', 'json', 'typed' or an object with dumps() and loads()"
            raise ValueError(msg)
        return value

    @field_validator("ignore", "files", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None:
            parse_redis_url(value)
        return value

    @field_validator("redis_client")
    @classmethod
    def _redis_client(cls, value: Any) -> Any:
        # A client is checked by its class's module, so validation imports nothing.
        if value is None or callable(value) or type(value).__module__.startswith("redis."):
            return value
        msg = (
            "must be a redis-py client (Redis, RedisCluster or their redis.asyncio forms) "
            "or a zero-argument callable returning one"
        )
        raise ValueError(msg)

    @field_validator("policy", mode="before")
    @classmethod
    def _lower_policy(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    def public_dict(self) -> dict[str, Any]:
        """The config as plain values, for ``cache_parameters()`` and the CLI."""
        data = self.model_dump()
        for field in ("key", "backend", "serializer", "redis_client"):
            value = data[field]
            if value is not None and not isinstance(value, str):
                data[field] = getattr(value, "__qualname__", type(value).__qualname__)
        if data["cache_dir"] is not None:
            data["cache_dir"] = str(data["cache_dir"])
        return data


class RedisTarget(NamedTuple):
    """What a ``redis_url`` points at, parsed once (at decoration, and by the store)."""

    kind: Literal["server", "cluster", "sentinel"]
    #: ``(host, port)`` of each cluster node or sentinel; empty for a plain server URL.
    nodes: tuple[tuple[str, int], ...]
    #: The Sentinel service (master group) name; ``None`` otherwise.
    service: str | None
    db: int
    username: str | None
    password: str | None


_REDIS_SCHEMES_TEXT = "redis://, rediss://, unix://, redis+cluster:// or redis+sentinel://"


def parse_redis_url(url: str) -> RedisTarget:
    """Parse a ``redis_url``; a plain server URL is left to redis-py's own parser.

    ``redis+cluster://[user:password@]host:port[,host:port...]`` and
    ``redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]``
    (default ports 6379 and 26379).

    Raises:
        ValueError: the URL's scheme, host list, service name or db is invalid.

    >>> parse_redis_url("redis+sentinel://a:26379,b/mymaster/2").nodes
    (('a', 26379), ('b', 26379))
    """
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisTarget("server", (), None, 0, None, None)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("redis+cluster", "redis+sentinel"):
        msg = f"must start with {_REDIS_SCHEMES_TEXT}"
        raise ValueError(msg)
    if "?" in rest or "#" in rest:
        msg = f"{scheme}:// URLs take no query or fragment"
        raise ValueError(msg)
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    default_port = 26379 if scheme == "redis+sentinel" else 6379
    nodes = tuple(_host_port(part, default_port) for part in hosts.split(","))
    parts = [part for part in path.split("/") if part] if path else []
    if scheme == "redis+cluster":
        if parts:
            msg = "a redis+cluster:// URL has no path (a cluster has only db 0)"
            raise ValueError(msg)
        return RedisTarget("cluster", nodes, None, 0, username, password)
    if not parts or len(parts) > 2:
        msg = "a redis+sentinel:// URL needs /service_name or /service_name/db after the hosts"
        raise ValueError(msg)
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            msg = f"db {parts[1]!r} after the service name must be a number >= 0"
            raise ValueError(msg)
        db = int(parts[1])
    return RedisTarget("sentinel", nodes, unquote(parts[0]), db, username, password)


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    """``(host, port)`` of ``host``, ``host:port`` or ``[ipv6]:port``."""
    if text.startswith("["):
        host, bracket, tail = text[1:].partition("]")
        port_text = tail.removeprefix(":") if bracket and tail.startswith(":") else None
        if not bracket or (tail and port_text is None):
            host = ""
    else:
        host, colon, port_text_raw = text.partition(":")
        port_text = port_text_raw if colon else None
    if not host or any(char.isspace() for char in host):
        msg = f"bad host {text!r}: expected host:port[,host:port...]"
        raise ValueError(msg)
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        msg = f"bad port in {text!r}: expected a number from 1 to 65535"
        raise ValueError(msg)
    return host, int(port_text)


def _configuration_error(exc: ValidationError) -> ConfigurationError:
    """Turn pydantic's report into one message naming each bad field and value."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(loc) for loc in error["loc"]) or "config"
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown option {field!r}={error['input']!r}{_suggestion(field)}")
            continue
        reason = error["msg"].removeprefix("Value error, ")
        parts.append(f"CacheConfig.{field}: invalid value {error['input']!r}: {reason}")
    return ConfigurationError("; ".join(parts))


def _suggestion(option: str) -> str:
    """``": did you mean 'maxsize'?"`` for a misspelt option, else nothing."""
    import difflib  # only a misspelt option needs it: not loaded on the way to a decoration

    valid = [*CacheConfig.model_fields, "preferred_engine"]
    close = difflib.get_close_matches(option, valid, n=1)
    return f": did you mean {close[0]!r}?" if close else ""


def _unusable_root(path: Path) -> str | None:
    """Why no cache could ever be written under ``path``, or ``None``.

    Looks at ``path`` or, while it does not exist yet, the nearest folder
    above it that does (where it would be created).
    """
    probe = path
    while True:
        try:
            st = os.stat(probe)
            break
        except (FileNotFoundError, NotADirectoryError):
            if probe == probe.parent:
                return None
            probe = probe.parent
        except OSError as exc:
            return f"cannot be reached ({exc.strerror})"
    if not stat.S_ISDIR(st.st_mode):
        if probe == path:
            return "is a file, not a folder"
        return f"lies under {str(probe)!r}, which is a file, not a folder"
    effective = os.access in os.supports_effective_ids
    if not os.access(probe, os.W_OK | os.X_OK, effective_ids=effective):
        if probe == path:
            return "is not writable by this user"
        return f"would be created in {str(probe)!r}, which is not writable by this user"
    return None


def _env_value(var: str, field: str, raw: str) -> Any:
    """Parse one environment default; a bad one is a ConfigurationError naming the variable."""
    if field == "ttl":
        try:
            return float(raw)
        except ValueError:
            msg = f"environment variable {var}: invalid value {raw!r}: must be seconds"
            raise ConfigurationError(msg) from None
    if field == "maxsize":
        if raw.strip().lower() in ("none", "unbounded", ""):
            return None
        try:
            return int(raw)
        except ValueError:
            msg = f"environment variable {var}: invalid value {raw!r}: must be an integer"
            raise ConfigurationError(msg) from None
    return raw


def create_cache_config(**options: Any) -> CacheConfig:
    """Build a :class:`CacheConfig`, filling omitted fields from ``TWAT_CACHE_*`` variables.

    Environment defaults are read now, not at import, so a test or a notebook
    can change them between decorations. ``preferred_engine`` is accepted as
    an alias of ``engine``. A ``cache_dir`` given here must be usable: a
    file, a path under a file or a folder this user cannot write is refused.

    Raises:
        ConfigurationError: an option or an environment default is invalid.

    >>> create_cache_config(maxsize=5).maxsize
    5
    """
    if "preferred_engine" in options:
        preferred = options.pop("preferred_engine")
        if options.get("engine") not in (None, preferred):
            msg = "engine and preferred_engine name different engines; pass one"
            raise ConfigurationError(msg)
        options["engine"] = preferred
    explicit_root = options.get("cache_dir") is not None
    for var, field in ENV_VARS.items():
        raw = os.environ.get(var)
        if field not in options and raw:
            options[field] = _env_value(var, field, raw)
    config = CacheConfig(**options)
    # A root named for this cache must be usable now; TWAT_CACHE_DIR is everybody's
    # default, also of memory caches, so a bad one is a fault of the first write instead.
    if explicit_root and config.cache_dir is not None:
        reason = _unusable_root(config.cache_dir)
        if reason is not None:
            msg = f"CacheConfig.cache_dir: invalid value {str(config.cache_dir)!r}: {reason}"
            raise ConfigurationError(msg)
    return config


def caching_disabled() -> bool:
    """True when ``TWAT_CACHE_DISABLE`` asks every decorator to call straight through."""
    return os.environ.get("TWAT_CACHE_DISABLE", "").strip().lower() in ("1", "true", "yes", "on")
