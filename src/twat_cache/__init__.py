"""twat-cache: cache function results in memory, on disk, in files, async or on Redis.

>>> from twat_cache import mcache
>>> @mcache
... def square(x: int) -> int:
...     return x * x
>>> square(3)
9
"""

from __future__ import annotations

from twat_cache._explain import CacheExplanation
from twat_cache._types import MISSING, AsyncCachedFunction, CachedFunction, CacheInfo
from twat_cache._version import __version__
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
from twat_cache.exceptions import (
    CacheKeyError,
    CacheOperationError,
    ConfigurationError,
    EngineNotAvailableError,
    SerializationError,
    TwatCacheError,
)
from twat_cache.policy import disabled, readonly, refreshing
from twat_cache.registry import clear_cache, get_stats, list_caches
from twat_cache.serializers import Serializer

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
