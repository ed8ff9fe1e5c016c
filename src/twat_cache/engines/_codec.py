"""Bytes for shared stores (Redis, user backends): pickle, optionally signed with HMAC.

Kept apart on purpose: when the shared ``serializers`` module lands, the
engines here switch to it and this file goes away. Its format is small:
``b"p" + payload`` unsigned, ``b"s" + HMAC-SHA256(payload) + payload`` signed.
With ``TWAT_CACHE_SECRET`` set (and ``secure=True``), an entry without a valid
signature is refused, so a writer without the secret cannot make this process
unpickle its bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
from typing import Any

from twat_cache.config import CacheConfig
from twat_cache.exceptions import SerializationError

__all__ = ["Codec"]

_PLAIN = b"p"
_SIGNED = b"s"
_MAC_SIZE = 32


class Codec:
    """``dumps``/``loads`` for one cache, chosen once from its config."""

    __slots__ = ("_dumps", "_key", "_loads")

    def __init__(self, config: CacheConfig) -> None:
        serializer = config.serializer
        if serializer == "pickle":
            self._dumps: Any = _pickle_dumps
            self._loads: Any = pickle.loads  # reads a memoryview: no copy of a large value
        elif serializer == "json":
            self._dumps = _json_dumps
            self._loads = _json_loads
        elif isinstance(serializer, str):
            msg = f"serializer {serializer!r} needs the shared serializers module"
            raise SerializationError(msg)
        else:
            self._dumps = serializer.dumps
            self._loads = _bytes_for(serializer.loads)
        secret = os.environ.get("TWAT_CACHE_SECRET", "") if config.secure else ""
        self._key = secret.encode() if secret else None

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        """Why this codec cannot serve ``config`` (``typed`` needs the shared module)."""
        if config.serializer == "typed":
            return "serializer 'typed' is not available for shared stores in this build"
        return None

    @property
    def signed(self) -> bool:
        """True when values are signed (``TWAT_CACHE_SECRET`` set and ``secure=True``)."""
        return self._key is not None

    def dumps(self, value: Any) -> bytes:
        """Serialize (and sign) ``value``."""
        try:
            payload: bytes = self._dumps(value)
        except SerializationError:
            raise
        except Exception as exc:
            msg = f"cannot serialize a {type(value).__qualname__}: {exc}"
            raise SerializationError(msg) from exc
        if self._key is None:
            return _PLAIN + payload
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()
        return _SIGNED + mac + payload

    def loads(self, data: bytes) -> Any:
        """The value stored as ``data``; ``SerializationError`` when corrupt or unsigned."""
        head = data[:1]
        view = memoryview(data)
        if self._key is not None:
            if head != _SIGNED:
                msg = "entry is not signed but TWAT_CACHE_SECRET is set; refusing to load it"
                raise SerializationError(msg)
            mac, payload = data[1 : 1 + _MAC_SIZE], view[1 + _MAC_SIZE :]
            if not hmac.compare_digest(mac, hmac.new(self._key, payload, hashlib.sha256).digest()):
                msg = "entry signature does not match TWAT_CACHE_SECRET; refusing to load it"
                raise SerializationError(msg)
        elif head == _PLAIN:
            payload = view[1:]
        elif head == _SIGNED:
            payload = view[1 + _MAC_SIZE :]  # signed by a writer with a secret: still readable
        else:
            msg = "entry is not in twat-cache's format"
            raise SerializationError(msg)
        try:
            return self._loads(payload)
        except Exception as exc:
            msg = f"corrupt entry: {type(exc).__name__}: {exc}"
            raise SerializationError(msg) from exc


def _pickle_dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _json_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _json_loads(data: memoryview) -> Any:
    return json.loads(bytes(data))


def _bytes_for(loads: Any) -> Any:
    """A user serializer's ``loads`` is promised ``bytes``, not a memoryview."""

    def call(data: memoryview) -> Any:
        return loads(bytes(data))

    return call
