"""The engine registry: names to engine classes, fallback chains and selection.

Engines are registered by dotted path and imported only when chosen (as
dogpile.cache does), and availability is checked with ``find_spec``, so
neither ``import twat_cache`` nor ``available()`` imports an optional library.
One selection mechanism, :meth:`CacheEngineManager.select`, serves every
decorator and ``CacheContext``.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from twat_cache._log import warn_once
from twat_cache.config import CacheConfig
from twat_cache.engines.base import CacheEngine, MemoryEngine
from twat_cache.exceptions import ConfigurationError, EngineNotAvailableError

__all__ = [
    "BACKEND_CHAIN",
    "CHAINS",
    "CacheEngine",
    "CacheEngineManager",
    "MemoryEngine",
    "Selection",
    "get_engine_manager",
    "register_engine",
]

MEMORY_CHAIN: Final = ("cachebox", "cachetools", "functools")

#: Each decorator's fallback chain: the first engine that is available and
#: able to serve the config wins.
CHAINS: Final[dict[str, tuple[str, ...]]] = {
    "mcache": MEMORY_CHAIN,
    "bcache": ("diskcache", "klepto", *MEMORY_CHAIN),
    "fcache": ("joblib", "klepto", *MEMORY_CHAIN),
}

#: The chain of a cache given ``backend=``: the user's storage, nothing else.
BACKEND_CHAIN: Final = ("backend",)

_BUILTIN: Final = {
    "cachebox": "twat_cache.engines.memory:CacheBoxEngine",
    "cachetools": "twat_cache.engines.memory:CacheToolsEngine",
    "functools": "twat_cache.engines.memory:FunctoolsEngine",
    "diskcache": "twat_cache.engines.disk:DiskCacheEngine",
    "klepto": "twat_cache.engines.disk:KleptoEngine",
    "joblib": "twat_cache.engines.files:JoblibEngine",
    "backend": "twat_cache.engines.backend:BackendEngine",
}


@dataclass(frozen=True)
class Selection:
    """The engine a chain gave, and why each engine before it was passed over."""

    engine: CacheEngine
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
        self._specs: dict[str, str | type[CacheEngine]] = dict(_BUILTIN)

    def register(self, engine_cls: type[CacheEngine] | str, name: str | None = None) -> None:
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

    def engine_class(self, name: str) -> type[CacheEngine]:
        """The class registered as ``name``, importing its twat-cache module if needed."""
        with self._lock:
            spec = self._specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self.names()))
            msg = f"CacheConfig.engine: invalid value {name!r}: not a registered engine ({known})"
            raise ConfigurationError(msg)
        if isinstance(spec, str):
            module, _, attr = spec.partition(":")
            cls: type[CacheEngine] = getattr(importlib.import_module(module), attr)
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
            if not cls.is_available():
                skipped.append(f"{name}: not installed (pip install {cls.requires})")
                continue
            reason = cls.unsupported(config)
            if reason is not None:
                skipped.append(f"{name}: {reason}")
                continue
            try:
                engine = cls(config)
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


_manager = CacheEngineManager()


def get_engine_manager() -> CacheEngineManager:
    """The process-wide engine registry (always the same object)."""
    return _manager


def register_engine(engine_cls: type[CacheEngine] | str, name: str | None = None) -> None:
    """Register a third-party engine so that ``engine="its name"`` selects it."""
    _manager.register(engine_cls, name)
