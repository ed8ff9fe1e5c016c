"""twat-cache: cache function results in memory, on disk, in files, async or on Redis.

>>> from twat_cache import mcache
>>> @mcache
... def square(x: int) -> int:
...     return x * x
>>> square(3)
9
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from twat_cache._version import __version__
from twat_cache.exceptions import (
    CacheKeyError,
    CacheOperationError,
    ConfigurationError,
    EngineNotAvailableError,
    SerializationError,
    TwatCacheError,
)

if TYPE_CHECKING:
    from twat_cache._explain import CacheExplanation
    from twat_cache._types import MISSING, AsyncCachedFunction, CachedFunction, CacheInfo
    from twat_cache.config import CacheConfig, create_cache_config
    from twat_cache.context import CacheContext, engine_context
    from twat_cache.decorators import CacheOptions, acache, bcache, fcache, mcache, ucache
    from twat_cache.engines import (
        CacheEngineManager,
        explain_selection,
        get_engine_manager,
        register_engine,
    )
    from twat_cache.engines.backend import AsyncBackend, Backend
    from twat_cache.engines.base import AsyncCacheEngine, CacheEngine
    from twat_cache.policy import disabled, readonly, refreshing
    from twat_cache.registry import clear_cache, get_stats, list_caches
    from twat_cache.serializers import Serializer

# Where each lazily loaded public name lives. `import twat_cache` loads only the
# errors and the version: pydantic (CacheConfig), the call path, the engines and
# the code-version walker load on the first use of a name that needs them, so a
# program that imports twat_cache but never decorates pays nothing for them.
_LAZY: dict[str, str] = {
    "MISSING": "twat_cache._types",
    "AsyncCachedFunction": "twat_cache._types",
    "CachedFunction": "twat_cache._types",
    "CacheInfo": "twat_cache._types",
    "CacheExplanation": "twat_cache._explain",
    "CacheConfig": "twat_cache.config",
    "create_cache_config": "twat_cache.config",
    "CacheContext": "twat_cache.context",
    "engine_context": "twat_cache.context",
    "CacheOptions": "twat_cache.decorators",
    "acache": "twat_cache.decorators",
    "bcache": "twat_cache.decorators",
    "fcache": "twat_cache.decorators",
    "mcache": "twat_cache.decorators",
    "ucache": "twat_cache.decorators",
    "CacheEngineManager": "twat_cache.engines",
    "explain_selection": "twat_cache.engines",
    "get_engine_manager": "twat_cache.engines",
    "register_engine": "twat_cache.engines",
    "AsyncBackend": "twat_cache.engines.backend",
    "Backend": "twat_cache.engines.backend",
    "AsyncCacheEngine": "twat_cache.engines.base",
    "CacheEngine": "twat_cache.engines.base",
    "disabled": "twat_cache.policy",
    "readonly": "twat_cache.policy",
    "refreshing": "twat_cache.policy",
    "clear_cache": "twat_cache.registry",
    "get_stats": "twat_cache.registry",
    "list_caches": "twat_cache.registry",
    "Serializer": "twat_cache.serializers",
}

# Submodules an eager `import twat_cache` used to load, so `twat_cache.config.X`
# after a bare `import twat_cache` keeps working.
_SUBMODULES = frozenset(
    {"call", "codeversion", "config", "context", "decorators", "encoding", "engines"}
    | {"keys", "paths", "policy", "registry", "serializers"}
)


def __getattr__(name: str) -> Any:
    """Load a public name (or submodule) on first access and keep it as a module global."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """Every public name, loaded or not, without the helpers this module imports."""
    inner = {n for n in globals() if n.startswith("_") or n in _SUBMODULES}
    return sorted(inner | set(__all__))


__all__ = [
    "MISSING",
    "AsyncBackend",
    "AsyncCacheEngine",
    "AsyncCachedFunction",
    "Backend",
    "CacheConfig",
    "CacheContext",
    "CacheEngine",
    "CacheEngineManager",
    "CacheExplanation",
    "CacheInfo",
    "CacheKeyError",
    "CacheOperationError",
    "CacheOptions",
    "CachedFunction",
    "ConfigurationError",
    "EngineNotAvailableError",
    "SerializationError",
    "Serializer",
    "TwatCacheError",
    "__version__",
    "acache",
    "bcache",
    "clear_cache",
    "create_cache_config",
    "disabled",
    "engine_context",
    "explain_selection",
    "fcache",
    "get_engine_manager",
    "get_stats",
    "list_caches",
    "mcache",
    "readonly",
    "refreshing",
    "register_engine",
    "ucache",
]
