"""Errors raised by twat-cache.

Every error derives from :class:`TwatCacheError` and from the builtin that
describes it best, so ``except ValueError`` keeps working for callers that do
not know about twat-cache::

    TwatCacheError
    ├── ConfigurationError        (ValueError)   bad decorator or config argument
    ├── EngineNotAvailableError   (ImportError)  no engine of a chain can be used
    ├── CacheKeyError             (TypeError)    an argument that cannot be keyed
    ├── SerializationError        (ValueError)   a value the serializer cannot handle
    └── CacheOperationError       (RuntimeError) an operation on a cache failed
"""

from __future__ import annotations

__all__ = [
    "CacheKeyError",
    "CacheOperationError",
    "ConfigurationError",
    "EngineNotAvailableError",
    "SerializationError",
    "TwatCacheError",
]


class TwatCacheError(Exception):
    """Base class of every error twat-cache raises."""


class ConfigurationError(TwatCacheError, ValueError):
    """A decorator or config argument is invalid; the message names field and value."""


class EngineNotAvailableError(TwatCacheError, ImportError):
    """No engine of the requested chain is installed and able to serve the config."""


class CacheKeyError(TwatCacheError, TypeError):
    """An argument cannot be turned into a cache key; the message names it."""


class SerializationError(TwatCacheError, ValueError):
    """A value cannot be serialized or deserialized by the configured serializer."""


class CacheOperationError(TwatCacheError, RuntimeError):
    """An operation on a cache failed, or named a cache that does not exist."""
