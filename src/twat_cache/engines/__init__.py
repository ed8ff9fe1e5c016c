"""The engine registry: names to engine classes, fallback chains and selection.

Engines are registered by dotted path and imported only when chosen (as
dogpile.cache does), and availability is checked with ``find_spec``, so
neither ``import twat_cache`` nor ``available()`` imports an optional library.
One selection mechanism, :meth:`CacheEngineManager.select`, serves every
decorator and ``CacheContext``.
"""

from __future__ import annotations

import importlib
import inspect
import threading
import typing
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from twat_cache._log import warn_once
from twat_cache.config import CacheConfig
from twat_cache.engines.base import CacheEngine, Store
from twat_cache.exceptions import ConfigurationError, EngineNotAvailableError
from twat_cache.keys import runs

__all__ = [
    "CHAINS",
    "CacheEngine",
    "CacheEngineManager",
    "Selection",
    "choose_chain",
    "explain_selection",
    "get_engine_manager",
    "register_engine",
]

MEMORY_CHAIN: Final = ("cachebox", "cachetools", "functools")

#: Each decorator's fallback chain: the first engine that is available and
#: able to serve the config wins.
CHAINS: Final[dict[str, tuple[str, ...]]] = {
    "mcache": MEMORY_CHAIN,
    "acache": ("aiocache", *MEMORY_CHAIN),
    "bcache": ("diskcache", "klepto", *MEMORY_CHAIN),
    "fcache": ("joblib", "klepto", *MEMORY_CHAIN),
}

_BUILTIN: Final = {
    "cachebox": "twat_cache.engines.memory:CacheBoxEngine",
    "cachetools": "twat_cache.engines.memory:CacheToolsEngine",
    "functools": "twat_cache.engines.memory:FunctoolsEngine",
    "aiocache": "twat_cache.engines.aio:AioCacheEngine",
    "redis": "twat_cache.engines.remote:RedisStore",
    "backend": "twat_cache.engines.adapters:BackendEngine",
    "diskcache": "twat_cache.engines.disk:DiskCacheEngine",
    "klepto": "twat_cache.engines.disk:KleptoEngine",
    "joblib": "twat_cache.engines.files:JoblibEngine",
}


@dataclass(frozen=True)
class Selection:
    """The engine a chain gave, and why each engine before it was passed over."""

    engine: Store
    wanted: str
    skipped: tuple[str, ...] = field(default=())

    @property
    def fallback(self) -> str | None:
        """``None`` when the wanted engine is in use, else the reasons, as one line."""
        if self.engine.name == self.wanted:
            return None
        return "; ".join(self.skipped)


class CacheEngineManager:
    """Engine classes by name: registration, availability and selection along a chain."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._specs: dict[str, str | type[Store]] = dict(_BUILTIN)

    def register(self, engine_cls: type[Store] | str, name: str | None = None) -> None:
        """Make an engine selectable by name (a class, or ``"module:Class"`` to import later)."""
        if isinstance(engine_cls, str):
            if name is None:
                msg = f"register_engine: a dotted path {engine_cls!r} needs name="
                raise ConfigurationError(msg)
        else:
            missing = [
                attr
                for attr in ("name", "is_available", "get", "set", "delete", "clear", "close")
                if not hasattr(engine_cls, attr)
            ]
            if missing:
                msg = f"register_engine: {engine_cls!r} lacks {', '.join(missing)}"
                raise ConfigurationError(msg)
            name = name or engine_cls.name
        with self._lock:
            self._specs[name] = engine_cls

    def names(self) -> list[str]:
        """Every registered engine name, installed or not."""
        with self._lock:
            return list(self._specs)

    def engine_class(self, name: str) -> type[Store]:
        """The class registered as ``name``, importing its twat-cache module if needed."""
        with self._lock:
            spec = self._specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self.names()))
            msg = f"CacheConfig.engine: invalid value {name!r}: not a registered engine ({known})"
            raise ConfigurationError(msg)
        if isinstance(spec, str):
            module, _, attr = spec.partition(":")
            cls: type[Store] = getattr(importlib.import_module(module), attr)
            with self._lock:
                self._specs[name] = cls
            return cls
        return spec

    def available(self) -> list[str]:
        """Names of the engines whose library is installed (nothing optional is imported)."""
        return [name for name in self.names() if self.engine_class(name).is_available()]

    def check(self, config: CacheConfig) -> None:
        """Fail at decoration when ``engine=`` names no registered engine."""
        if config.engine is not None:
            self.engine_class(config.engine)

    def select(self, chain: Sequence[str], config: CacheConfig) -> Selection:
        """Build the first engine of ``chain`` (``config.engine`` first) able to serve ``config``.

        Each engine passed over is recorded with its reason; a fallback is
        logged once per cause at WARNING.

        Raises:
            EngineNotAvailableError: no engine of the chain can serve the config.
        """
        order = list(chain)
        if config.engine is not None:
            order = [config.engine, *(name for name in order if name != config.engine)]
        skipped: list[str] = []
        for name in order:
            cls = self.engine_class(name)
            if name == "redis" and config.near and config.backend is None:
                from twat_cache.engines.near import NearRedisStore  # imports no optional package

                cls = NearRedisStore
            if not cls.is_available():
                skipped.append(f"{name}: not installed (pip install {cls.requires})")
                continue
            reason = cls.unsupported(config)
            if reason is not None:
                skipped.append(f"{name}: {reason}")
                continue
            try:
                made = cls(config)
                engine = made if isinstance(made, Store) else _Foreign(made)
            except Exception as exc:  # an engine that cannot start is skipped, never fatal
                skipped.append(f"{name}: failed to start ({type(exc).__name__}: {exc})")
                continue
            selection = Selection(engine, wanted=order[0], skipped=tuple(skipped))
            if selection.fallback is not None:
                warn_once(
                    ("fallback", order[0], name, selection.fallback),
                    f"twat_cache: wanted engine {order[0]!r}, using {name!r}: {selection.fallback}",
                )
            return selection
        msg = f"no engine of {order} can serve this cache: " + "; ".join(skipped)
        raise EngineNotAvailableError(msg)


class _Foreign(Store):
    """A registered engine written to API.md 5 without subclassing :class:`Store`."""

    def __init__(self, engine: Any) -> None:
        super().__init__(engine.config if hasattr(engine, "config") else CacheConfig())
        self.engine = engine
        self.name = engine.name  # type: ignore[misc]  # the instance's own name

    def get(self, key: Hashable) -> Any:
        return self.engine.get(key)

    def set(self, key: Hashable, value: Any, ttl: float | None) -> None:
        self.engine.set(key, value, ttl)

    def delete(self, key: Hashable) -> bool:
        return bool(self.engine.delete(key))

    def clear(self) -> None:
        self.engine.clear()

    def close(self) -> None:
        self.engine.close()

    def __len__(self) -> int:
        try:
            return len(self.engine)
        except TypeError:
            return 0


_manager = CacheEngineManager()


def get_engine_manager() -> CacheEngineManager:
    """The process-wide engine registry (always the same object)."""
    return _manager


def register_engine(engine_cls: type[Store] | str, name: str | None = None) -> None:
    """Register a third-party engine so that ``engine="its name"`` selects it."""
    _manager.register(engine_cls, name)


_LARGE_TYPES: Final = {
    "numpy": ("ndarray", "matrix"),
    "pandas": ("DataFrame", "Series", "Index"),
}
_LOCATION_FIELDS: Final = ("folder_name", "cache_dir", "size_limit")


def _chain_of(engine: str) -> tuple[str, tuple[str, ...]]:
    """The decorator chain an engine belongs to (the first that lists it)."""
    for kind in ("mcache", "bcache", "fcache", "acache"):
        chain = CHAINS[kind]
        if engine in chain:
            return kind, chain
    return "mcache", MEMORY_CHAIN


def _large_return(func: Callable[..., Any]) -> str | None:
    """The NumPy/pandas type named by ``func``'s return annotation, if any.

    Matched by module and name, so neither NumPy nor pandas is imported;
    ``npt.NDArray[...]`` and ``X | None`` count through their arguments.
    """
    try:
        annotation = inspect.signature(func).return_annotation
    except (TypeError, ValueError):
        return None
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(func).get("return", annotation)
        except Exception:  # names a module the function's globals lack: read the text
            text = annotation.replace("np.", "numpy.").replace("pd.", "pandas.")
            for module, names in _LARGE_TYPES.items():
                for name in names:
                    if f"{module}.{name}" in text:
                        return f"{module}.{name}"
            return None
    pending = [annotation]
    while pending:
        candidate = pending.pop()
        root = (getattr(candidate, "__module__", None) or "").partition(".")[0]
        name = getattr(candidate, "__name__", "")
        if name in _LARGE_TYPES.get(root, ()):
            return f"{root}.{name}"
        origin = typing.get_origin(candidate)
        if origin is not None:
            pending.append(origin)
        pending.extend(typing.get_args(candidate))
    return None


def choose_chain(
    func: Callable[..., Any], config: CacheConfig, given: Collection[str]
) -> tuple[tuple[str, ...], str]:
    """``ucache``'s choice (API.md section 4): the chain to walk and why, first match wins.

    ``given`` names the options passed to the decorator itself, so that a
    ``TWAT_CACHE_DIR`` default does not count as asking for a disk cache.
    """
    is_async = inspect.iscoroutinefunction(runs(func))
    if config.engine is not None:
        kind, chain = _chain_of(config.engine)
        return chain, f"engine={config.engine!r} was given: {kind}'s chain, that engine first"
    if config.redis_url is not None or config.redis_client is not None:
        rest = CHAINS["acache"] if is_async else MEMORY_CHAIN
        source = (
            "redis_client="
            if config.redis_client is not None
            else "redis_url="
            if "redis_url" in given
            else "TWAT_CACHE_REDIS_URL"
        )
        mode = "async (redis.asyncio)" if is_async else "sync (redis-py)"
        return ("redis", *rest), f"{source} was given: redis, {mode}"
    if is_async:
        return CHAINS["acache"], "an async def function: acache's chain (never blocks the loop)"
    location = [name for name in _LOCATION_FIELDS if name in given]
    if config.compress and "compress" in given:  # compression only means something on disk
        location.append("compress=True")
    large = _large_return(func)
    if location or large:
        kind = "fcache" if large else "bcache"
        why = (
            f"returns {large}, a large-object type"
            if large
            else f"{', '.join(location)} given: a persistent cache"
        )
        return CHAINS[kind], f"{why}: {kind}'s chain"
    return MEMORY_CHAIN, "no engine, redis_url, location or large return type: mcache's chain"


def explain_selection(func: Any) -> str:
    """Which engine a decorated function uses, and why, as text.

    >>> from twat_cache import ucache
    >>> @ucache
    ... def f(x: int) -> int:
    ...     return x
    >>> "mcache" in explain_selection(f)
    True
    """
    core = getattr(func, "_twat_core", None)
    if core is None:
        msg = f"{func!r} is not a function decorated by twat_cache"
        raise ConfigurationError(msg)
    why = core.why
    chosen = core.cache_parameters()
    text = f"engine {chosen['engine']!r} for {chosen['name']!r}: {why}"
    if chosen.get("fallback"):
        text += f"; fell back because {chosen['fallback']}"
    return text
