"""Turning values into bytes and back, and the frame that guards every stored value.

Why a frame: a persistent entry can be truncated by a killed process, garbled
by a bad disk, copied over another entry or planted by someone who can write
the cache folder. Every stored value therefore carries a small header and a
tag over the key, the header and the payload: a CRC32 to catch damage, or an
HMAC-SHA256 when ``TWAT_CACHE_SECRET`` is set, checked *before* anything is
deserialized. A value failing the check is a miss, never a wrong result.

Layout (``HEAD_SIZE`` + tag + payload)::

    b"TWC1" | flags (1 byte) | kind (1 byte) | expires at (float64, 0 = never) | tag | payload
"""

from __future__ import annotations

import hmac
import json
import os
import pickle
import struct
import time
import typing
import zlib
from collections.abc import Callable
from typing import Any, Final, Protocol, runtime_checkable

from twat_cache._types import MISSING
from twat_cache.exceptions import ConfigurationError, SerializationError

__all__ = [
    "Codec",
    "JsonSerializer",
    "PickleSerializer",
    "Serializer",
    "TypedSerializer",
    "codec_for",
    "frame_expiry",
    "resolve_serializer",
]

MAGIC: Final = b"TWC1"
_HEAD = struct.Struct(">4sBBd")
HEAD_SIZE: Final = _HEAD.size
# The unsigned pickle entry's hit path (Codec.decode): the header and its CRC32 tag read in
# one unpack, and the functions it calls bound once, as module globals.
_unpack_crc_head = struct.Struct(">4sBBdI").unpack_from
_CRC_START: Final = HEAD_SIZE + 4
_crc32 = zlib.crc32
_unpickle = pickle.loads
FLAG_COMPRESSED: Final = 1
FLAG_SIGNED: Final = 2
#: What follows the tag: the configured serializer's bytes, or a native array format.
KIND_SERIALIZED: Final = 0
KIND_NPY: Final = 1
KIND_JOBLIB: Final = 2
KIND_ARROW: Final = 3
_HMAC_SIZE = 32
_CRC_SIZE = 4
_ZLIB_LEVEL = 3  # most of zlib's gain at a fraction of level 6's cost


@runtime_checkable
class Serializer(Protocol):
    """Turns a value into bytes and back; may raise :class:`SerializationError`.

    Any object with these two methods can be passed as ``serializer=``.

    >>> class Upper:
    ...     def dumps(self, value: str) -> bytes:
    ...         return value.upper().encode()
    ...     def loads(self, data: bytes) -> str:
    ...         return data.decode()
    >>> isinstance(Upper(), Serializer)
    True
    """

    def dumps(self, value: Any) -> bytes:
        """The value as bytes."""
        ...

    def loads(self, data: bytes) -> Any:
        """The value back from :meth:`dumps`' bytes."""
        ...


class PickleSerializer:
    """The default: any picklable value, at pickle's highest protocol."""

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        """Pickle ``value`` (protocol 5: out-of-band friendly, fast for buffers)."""
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        """Unpickle; only ever called on bytes whose tag was verified."""
        return pickle.loads(data)


class JsonSerializer:
    """Plain JSON: readable by other languages; tuples come back as lists."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        """``value`` as compact UTF-8 JSON."""
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    def loads(self, data: bytes) -> Any:
        """The value decoded from JSON."""
        return json.loads(data)


class TypedSerializer:
    """JSON through a pydantic ``TypeAdapter`` of the function's return annotation.

    Pydantic models, datetimes, sets and lists of models come back as the
    annotated types, exactly. The adapter is built once, at decoration.
    """

    name = "typed"

    def __init__(self, func: Callable[..., Any]) -> None:
        try:
            hints = typing.get_type_hints(func)
        except Exception as exc:  # an annotation naming something not importable here
            msg = (
                f"CacheConfig.serializer: invalid value 'typed': the return annotation of "
                f"{func.__qualname__} cannot be resolved ({type(exc).__name__}: {exc})"
            )
            raise ConfigurationError(msg) from None
        if "return" not in hints:
            msg = (
                f"CacheConfig.serializer: invalid value 'typed': {func.__qualname__} has no "
                "return annotation; annotate it (e.g. -> list[MyModel]) or use 'pickle'"
            )
            raise ConfigurationError(msg)
        from pydantic import TypeAdapter  # only typed caches need it

        self.annotation = hints["return"]
        try:
            self._adapter: Any = TypeAdapter(self.annotation)
            # A type pydantic validates but cannot write as JSON (a callable, a model with
            # an arbitrary field) would fail on every store: find out now.
            self._adapter.json_schema(mode="serialization")
        except Exception as exc:
            reason = str(exc).split("\n", 1)[0].split(". ", 1)[0]  # not pydantic's model advice
            msg = (
                f"CacheConfig.serializer: invalid value 'typed': the return type "
                f"{_type_name(self.annotation)} of {func.__qualname__} cannot be stored as "
                f"JSON by pydantic ({type(exc).__name__}: {reason}); return a pydantic "
                "model, a dataclass or plain data, or use serializer='pickle'"
            )
            raise ConfigurationError(msg) from None

    def dumps(self, value: Any) -> bytes:
        """``value`` as JSON; a value that does not match the annotation is refused."""
        data: bytes = self._adapter.dump_json(value, warnings="error")
        return data

    def loads(self, data: bytes) -> Any:
        """The value validated back into the annotated type."""
        return self._adapter.validate_json(data)


def _type_name(annotation: Any) -> str:
    """``Plain`` for a class, ``list[mod.Plain]`` for anything else."""
    return annotation.__qualname__ if isinstance(annotation, type) else repr(annotation)


def resolve_serializer(spec: Any, func: Callable[..., Any] | None) -> Serializer:
    """The serializer object for a config's ``serializer`` value.

    Raises:
        ConfigurationError: ``"typed"`` without a function, without a return
            annotation, or with a return type pydantic cannot write as JSON.
    """
    if spec == "pickle":
        return PickleSerializer()
    if spec == "json":
        return JsonSerializer()
    if spec == "typed":
        if func is None:
            msg = "CacheConfig.serializer: invalid value 'typed': needs a decorated function"
            raise ConfigurationError(msg)
        return TypedSerializer(func)
    return typing.cast(Serializer, spec)


class Codec:
    """Serializer + optional compression + the integrity frame, for one cache.

    ``secret`` (from ``TWAT_CACHE_SECRET``) turns the CRC32 into an
    HMAC-SHA256; a codec with a secret refuses unsigned entries and one
    without refuses signed ones, so neither is ever deserialized unchecked.
    """

    __slots__ = ("_pickled", "_secret", "compress", "serializer", "signed", "tag_size")

    def __init__(self, serializer: Serializer, compress: bool, secret: bytes | None) -> None:
        self.serializer = serializer
        self.compress = compress
        self._secret = secret
        self.signed = secret is not None
        self.tag_size = _HMAC_SIZE if self.signed else _CRC_SIZE
        #: The default codec (pickle, CRC32 tag): :meth:`decode` takes its short path.
        self._pickled = secret is None and type(serializer) is PickleSerializer

    # -- tags -----------------------------------------------------------------

    def tagger(self, key: str, head: bytes) -> _Tagger:
        """An incremental tag over ``key``, the header and the payload fed to it."""
        if self._secret is not None:
            return _HmacTagger(self._secret, key.encode() + head)
        return _CrcTagger(key.encode() + head)

    def head(self, kind: int, expire: float, compressed: bool = False) -> bytes:
        """The fixed header of a new entry."""
        flags = (FLAG_COMPRESSED if compressed else 0) | (FLAG_SIGNED if self.signed else 0)
        return _HEAD.pack(MAGIC, flags, kind, expire)

    def parse_head(self, data: bytes | memoryview) -> tuple[int, int, float]:
        """``(flags, kind, expires_at)`` of a stored entry, checked for shape and signing.

        Raises:
            SerializationError: not an entry, or signed differently from this codec.
        """
        if len(data) < HEAD_SIZE + self.tag_size:
            msg = "stored entry is truncated"
            raise SerializationError(msg)
        magic, flags, kind, expire = _HEAD.unpack_from(data)
        if magic != MAGIC:
            msg = "stored entry has no twat-cache header"
            raise SerializationError(msg)
        if bool(flags & FLAG_SIGNED) != self.signed:
            msg = "stored entry is signed differently (TWAT_CACHE_SECRET set or unset since)"
            raise SerializationError(msg)
        return flags, kind, expire

    # -- whole values -----------------------------------------------------------

    def dumps(self, value: Any) -> bytes:
        """The serializer's bytes for ``value``.

        Raises:
            SerializationError: the serializer cannot handle the value.
        """
        try:
            data: Any = self.serializer.dumps(value)  # a user's serializer may return anything
        except SerializationError:
            raise
        except Exception as exc:
            msg = f"cannot serialize a {type(value).__qualname__}: {type(exc).__name__}: {exc}"
            raise SerializationError(msg) from exc
        if not isinstance(data, (bytes, bytearray, memoryview)):
            msg = f"serializer {self.serializer!r} returned {type(data).__qualname__}, not bytes"
            raise SerializationError(msg)
        return bytes(data)

    def loads(self, data: bytes) -> Any:
        """The value back from verified serializer bytes."""
        try:
            return self.serializer.loads(data)
        except SerializationError:
            raise
        except Exception as exc:
            raise _unreadable(exc) from exc

    def encode(self, key: str, value: Any, expire: float = 0.0) -> bytes:
        """One framed entry for ``value`` stored under ``key``."""
        return self.frame(key, self.dumps(value), expire)

    def frame(self, key: str, payload: bytes, expire: float = 0.0) -> bytes:
        """One framed entry for serializer bytes (from :meth:`dumps`) stored under ``key``."""
        compressed = self.compress
        if compressed:
            payload = zlib.compress(payload, _ZLIB_LEVEL)
        head = self.head(KIND_SERIALIZED, expire, compressed)
        tagger = self.tagger(key, head)
        tagger.update(payload)
        return b"".join((head, tagger.digest(), payload))

    def decode(self, key: str, data: bytes) -> Any:
        """The value of a framed entry, or ``MISSING`` when it has expired.

        Raises:
            SerializationError: the entry is damaged, forged, or was stored under another key.
        """
        if self._pickled and len(data) >= _CRC_START:
            # The default codec's hit: header and tag in one unpack, the payload sliced once;
            # anything unusual (damaged, signed, native kinds) takes the full path below.
            magic, flags, kind, expire, tag = _unpack_crc_head(data)
            if magic == MAGIC and not flags & ~FLAG_COMPRESSED and kind == KIND_SERIALIZED:
                payload = data[_CRC_START:]
                if _crc32(payload, _crc32(data[:HEAD_SIZE], _crc32(key.encode()))) != tag:
                    raise SerializationError(_DAMAGED)
                if expire and expire <= time.time():
                    return MISSING
                try:
                    return _unpickle(zlib.decompress(payload) if flags else payload)
                except Exception as exc:
                    raise _unreadable(exc) from exc
        flags, kind, expire = self.parse_head(data)
        start = HEAD_SIZE + self.tag_size
        view = memoryview(data)
        if self._secret is None:  # the common case, inline: same tag as _CrcTagger
            crc = zlib.crc32(view[start:], zlib.crc32(view[:HEAD_SIZE], zlib.crc32(key.encode())))
            tag_ok = crc.to_bytes(_CRC_SIZE, "big") == view[HEAD_SIZE:start]
        else:
            tagger = self.tagger(key, bytes(view[:HEAD_SIZE]))
            tagger.update(view[start:])
            tag_ok = hmac.compare_digest(tagger.digest(), view[HEAD_SIZE:start])
        if not tag_ok:
            raise SerializationError(_DAMAGED)
        if kind != KIND_SERIALIZED:
            msg = f"stored entry has an unexpected kind {kind}"
            raise SerializationError(msg)
        if expire and expire <= time.time():
            return MISSING
        payload = data[start:]
        if flags & FLAG_COMPRESSED:
            payload = zlib.decompress(payload)
        return self.loads(payload)


_DAMAGED = "stored entry failed its integrity check (damaged or tampered with)"


def _unreadable(exc: Exception) -> SerializationError:
    return SerializationError(f"cannot deserialize a stored value: {type(exc).__name__}: {exc}")


def frame_expiry(data: bytes | memoryview) -> float | None:
    """When a framed entry expires (``0.0`` = never), or ``None`` if ``data`` is no frame.

    Reads the header only and checks no tag, whatever ``TWAT_CACHE_SECRET`` is:
    housekeeping (``prune``) must find expired entries without being able to
    verify them, and deleting an entry never trusts its content.

    >>> frame_expiry(Codec(PickleSerializer(), False, None).encode("k", 1, expire=5.0))
    5.0
    >>> frame_expiry(b"not a frame") is None
    True
    """
    if len(data) < HEAD_SIZE:
        return None
    magic, _, _, expire = _HEAD.unpack_from(data)
    return float(expire) if magic == MAGIC else None


class _Tagger(Protocol):
    def update(self, data: bytes | memoryview) -> None: ...
    def digest(self) -> bytes: ...


class _CrcTagger:
    __slots__ = ("_crc",)

    def __init__(self, start: bytes) -> None:
        self._crc = zlib.crc32(start)

    def update(self, data: bytes | memoryview) -> None:
        self._crc = zlib.crc32(data, self._crc)

    def digest(self) -> bytes:
        return self._crc.to_bytes(_CRC_SIZE, "big")


class _HmacTagger:
    __slots__ = ("_mac",)

    def __init__(self, secret: bytes, start: bytes) -> None:
        self._mac = hmac.new(secret, start, "sha256")

    def update(self, data: bytes | memoryview) -> None:
        self._mac.update(data)

    def digest(self) -> bytes:
        return self._mac.digest()


def codec_for(serializer: Any, compress: bool, secure: bool) -> Codec:
    """The codec of a persistent cache; reads ``TWAT_CACHE_SECRET`` now (cache creation).

    ``secure=False`` opts out of signing even when the secret is set.
    """
    secret = os.environ.get("TWAT_CACHE_SECRET") if secure else None
    resolved = resolve_serializer(serializer, None) if isinstance(serializer, str) else serializer
    return Codec(resolved, compress, secret.encode() if secret else None)
