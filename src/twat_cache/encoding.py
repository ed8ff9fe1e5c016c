"""Canonical encoding: stable digests of argument values.

Why: a persistent or shared cache must find an entry written by another
process, machine or Python run, so keys never use the builtin ``hash`` (salted
per process for str and bytes) nor ``repr`` (which may hold an address).
Arguments are encoded into canonical bytes (type-tagged, length-prefixed, dicts
and sets sorted) and digested with BLAKE2b-128.

Memory engines key on the plain argument tuple instead (see ``wrapper.py``);
they call :func:`stable_digest` only for arguments that are not hashable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import struct
import sys
import uuid
from collections.abc import Callable, Hashable, Iterable
from decimal import Decimal
from fractions import Fraction
from pathlib import PurePath
from typing import Any

from twat_cache.exceptions import CacheKeyError

__all__ = [
    "DigestKey",
    "describe_unkeyable",
    "encode",
    "memory_key",
    "namespaced_digest",
    "stable_digest",
]

_MAX_DEPTH = 200
_Writer = Callable[[Any, bytearray, bool, int], None]


class DigestKey(str):
    """A digest used as a memory-engine key: never equal to a plain ``str`` argument."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is DigestKey and str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__


def _len(out: bytearray, n: int) -> None:
    out += struct.pack(">Q", n)


def _tagged(out: bytearray, tag: bytes, data: bytes) -> None:
    out += tag
    _len(out, len(data))
    out += data


def _int(obj: int, out: bytearray, typed: bool, depth: int) -> None:
    _tagged(out, b"i", str(int(obj)).encode())


def _bool(obj: bool, out: bytearray, typed: bool, depth: int) -> None:
    if typed:
        out += b"T" if obj else b"F"
    else:  # as in lru_cache, True == 1 unless typed
        _int(int(obj), out, typed, depth)


def _float(obj: float, out: bytearray, typed: bool, depth: int) -> None:
    if not typed and obj.is_integer():  # f(1) and f(1.0) share an entry unless typed
        _int(int(obj), out, typed, depth)
    else:
        _tagged(out, b"f", float(obj).hex().encode())


def _str(obj: str, out: bytearray, typed: bool, depth: int) -> None:
    _tagged(out, b"s", obj.encode("utf-8", "surrogatepass"))


def _bytes(obj: bytes | bytearray | memoryview, out: bytearray, typed: bool, depth: int) -> None:
    _tagged(out, b"b", bytes(obj))


def _none(obj: None, out: bytearray, typed: bool, depth: int) -> None:
    out += b"N"


def _sequence(tag: bytes) -> _Writer:
    def write(obj: Iterable[Any], out: bytearray, typed: bool, depth: int) -> None:
        items = list(obj)
        out += tag
        _len(out, len(items))
        for item in items:
            _write(item, out, typed, depth + 1)

    return write


def _sorted_parts(items: Iterable[Any], typed: bool, depth: int) -> list[bytes]:
    parts = []
    for item in items:
        buf = bytearray()
        _write(item, buf, typed, depth + 1)
        parts.append(bytes(buf))
    parts.sort()
    return parts


def _set(obj: set[Any] | frozenset[Any], out: bytearray, typed: bool, depth: int) -> None:
    parts = _sorted_parts(obj, typed, depth)
    out += b"S"
    _len(out, len(parts))
    for part in parts:
        out += part


def _dict(obj: dict[Any, Any], out: bytearray, typed: bool, depth: int) -> None:
    parts = _sorted_parts(obj.items(), typed, depth)  # insertion order never matters
    out += b"D"
    _len(out, len(parts))
    for part in parts:
        out += part


def _complex(obj: complex, out: bytearray, typed: bool, depth: int) -> None:
    _tagged(out, b"c", f"{obj.real.hex()},{obj.imag.hex()}".encode())


def _text(tag: bytes) -> _Writer:
    def write(obj: Any, out: bytearray, typed: bool, depth: int) -> None:
        _tagged(out, tag, str(obj).encode())

    return write


def _datetime(obj: dt.date | dt.time, out: bytearray, typed: bool, depth: int) -> None:
    _tagged(out, b"t" + type(obj).__name__.encode(), obj.isoformat().encode())


def _timedelta(obj: dt.timedelta, out: bytearray, typed: bool, depth: int) -> None:
    _tagged(out, b"td", f"{obj.days},{obj.seconds},{obj.microseconds}".encode())


def _qualname(cls: type) -> bytes:
    return f"{cls.__module__}:{cls.__qualname__}".encode()


_EXACT: dict[type, _Writer] = {
    int: _int,
    bool: _bool,
    float: _float,
    str: _str,
    bytes: _bytes,
    bytearray: _bytes,
    memoryview: _bytes,
    type(None): _none,
    tuple: _sequence(b"("),
    list: _sequence(b"["),
    set: _set,
    frozenset: _set,
    dict: _dict,
    complex: _complex,
    Decimal: _text(b"dec"),
    Fraction: _text(b"frac"),
    uuid.UUID: _text(b"uuid"),
    dt.datetime: _datetime,
    dt.date: _datetime,
    dt.time: _datetime,
    dt.timedelta: _timedelta,
    range: _text(b"range"),
}


def _numpy(obj: Any, out: bytearray, typed: bool, depth: int) -> bool:
    """Hash NumPy arrays and scalars by content, only if NumPy is already imported."""
    np = sys.modules.get("numpy")
    if np is None:
        return False
    if isinstance(obj, np.ndarray):
        header = f"{obj.dtype.str}|{obj.shape}".encode()
        if obj.dtype.hasobject:
            _tagged(out, b"nd-obj", header)
            _write(obj.tolist(), out, typed, depth + 1)
        else:
            h = hashlib.blake2b(digest_size=32)
            h.update(memoryview(np.ascontiguousarray(obj)).cast("B"))
            _tagged(out, b"nd", header + b"|" + h.digest())
        return True
    if isinstance(obj, np.generic):
        _tagged(out, b"np", obj.dtype.str.encode())
        _write(obj.item(), out, typed, depth + 1)
        return True
    return False


def _pandas(obj: Any, out: bytearray, typed: bool, depth: int) -> bool:
    """Hash pandas objects by content (values, index, names, dtypes)."""
    pd = sys.modules.get("pandas")
    if pd is None or not isinstance(obj, (pd.DataFrame, pd.Series, pd.Index)):
        return False
    hashed = pd.util.hash_pandas_object(obj, index=not isinstance(obj, pd.Index)).to_numpy()
    if isinstance(obj, pd.DataFrame):
        meta: Any = (list(obj.columns), [str(t) for t in obj.dtypes])
    else:
        meta = (obj.name, str(obj.dtype))
    _tagged(out, b"pd" + type(obj).__name__.encode(), hashlib.blake2b(hashed.tobytes()).digest())
    _write(meta, out, typed, depth + 1)
    return True


def _write(obj: Any, out: bytearray, typed: bool, depth: int) -> None:
    if depth > _MAX_DEPTH:
        msg = "argument is nested too deeply (or refers to itself) to be keyed"
        raise CacheKeyError(msg)
    cls = type(obj)
    writer = _EXACT.get(cls)
    if writer is not None:
        writer(obj, out, typed, depth)
        return
    cache_key = getattr(cls, "__cache_key__", None)
    if cache_key is not None and not isinstance(obj, type):
        out += b"K" + _qualname(cls)
        _write(obj.__cache_key__(), out, typed, depth + 1)
        return
    if getattr(cls, "__persistent_hash__", None) is not None and not isinstance(obj, type):
        out += b"H" + _qualname(cls)
        _int(int(obj.__persistent_hash__()), out, typed, depth)
        return
    _write_other(obj, cls, out, typed, depth)


def _write_other(obj: Any, cls: type, out: bytearray, typed: bool, depth: int) -> None:
    if isinstance(obj, enum.Enum):
        _tagged(out, b"E" + _qualname(cls), str(obj.name).encode())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out += b"DC" + _qualname(cls)
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.compare}
        _dict(fields, out, typed, depth + 1)
    elif hasattr(cls, "model_dump") and hasattr(cls, "model_fields"):  # pydantic v2 model
        out += b"PM" + _qualname(cls)
        _write(obj.model_dump(mode="python"), out, typed, depth + 1)
    elif isinstance(obj, PurePath):
        _tagged(out, b"p" + type(obj).__name__.encode(), obj.as_posix().encode())
    elif isinstance(obj, type):
        _tagged(out, b"cls", _qualname(obj))
    elif _numpy(obj, out, typed, depth) or _pandas(obj, out, typed, depth):
        pass
    else:
        for base, writer in _SUBCLASS_WRITERS:
            if isinstance(obj, base):
                writer(obj, out, typed, depth)
                return
        msg = f"cannot key a {cls.__module__}.{cls.__qualname__} object"
        raise CacheKeyError(msg)


_SUBCLASS_WRITERS: tuple[tuple[type, _Writer], ...] = (
    (bool, _bool),
    (int, _int),
    (float, _float),
    (str, _str),
    (bytes, _bytes),
    (tuple, _sequence(b"(")),
    (list, _sequence(b"[")),
    (dict, _dict),
    (frozenset, _set),
    (set, _set),
    (dt.datetime, _datetime),
    (dt.date, _datetime),
)


def encode(obj: Any, *, typed: bool = False) -> bytes:
    """Canonical bytes for ``obj``: equal for equal values in any process.

    Raises:
        CacheKeyError: ``obj`` (or something inside it) cannot be keyed.

    >>> encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1})
    True
    """
    out = bytearray()
    _write(obj, out, typed, 0)
    return bytes(out)


def stable_digest(*parts: Any, typed: bool = False) -> str:
    """A 128-bit hex digest of ``parts``, stable across processes and machines.

    >>> len(stable_digest("ns", (1, "a")))
    32
    """
    return hashlib.blake2b(encode(parts, typed=typed), digest_size=16).hexdigest()


def namespaced_digest(namespace: Any, *, typed: bool = False) -> Callable[[Any], str]:
    """A fast ``values -> stable_digest(namespace, values)`` for one fixed namespace.

    The namespace is encoded and hashed once; each call then only encodes and
    hashes the arguments (the persistent hit path does this on every call).

    >>> namespaced_digest("ns")((1, "a")) == stable_digest("ns", (1, "a"))
    True
    """
    prefix = bytearray(b"(")
    _len(prefix, 2)
    _write(namespace, prefix, typed, 1)
    seed = hashlib.blake2b(bytes(prefix), digest_size=16)

    def digest(values: Any) -> str:
        out = bytearray()
        _write(values, out, typed, 1)
        h = seed.copy()
        h.update(out)
        return h.hexdigest()

    return digest


def describe_unkeyable(names: Iterable[str], values: Iterable[Any], typed: bool) -> CacheKeyError:
    """Find the first argument that cannot be encoded and build the error that names it."""
    for name, value in zip(names, values, strict=False):  # a user key= has no names
        try:
            encode(value, typed=typed)
        except CacheKeyError as exc:
            return CacheKeyError(
                f"cannot build a cache key from argument {name!r}: {exc}; "
                f"pass ignore=({name!r},) to leave it out of the key, key= to build keys "
                "yourself, or give its class a __cache_key__() method"
            )
    return CacheKeyError("cannot build a cache key from these arguments; pass key= or ignore=")


class _Tag:
    """Marks a frozen container inside a memory key; never equal to user data."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_LIST, _DICT, _SET, _ARRAY = _Tag("list"), _Tag("dict"), _Tag("set"), _Tag("ndarray")


def _freeze(value: Any) -> Any:
    cls = type(value)
    if cls is tuple:
        return tuple([_freeze(item) for item in value])
    if cls is list:
        return (_LIST, tuple([_freeze(item) for item in value]))
    if cls is dict:
        return (_DICT, frozenset([(k, _freeze(v)) for k, v in value.items()]))
    if cls is set:
        return (_SET, frozenset(value))
    np = sys.modules.get("numpy")
    if np is not None and cls is np.ndarray and not value.dtype.hasobject:
        digest = hashlib.blake2b(memoryview(np.ascontiguousarray(value)).cast("B")).digest()
        return (_ARRAY, value.dtype.str, value.shape, digest)
    return value


def memory_key(key: Any, *, typed: bool = False) -> Hashable:
    """A hashable in-process key for a call whose arguments are not all hashable.

    Lists, dicts, sets and NumPy arrays are frozen into tagged tuples (cheap,
    and equal exactly when the values are equal); anything else unhashable is
    replaced by its stable content digest.

    Raises:
        CacheKeyError: some argument cannot be keyed at all.

    >>> memory_key(([1, 2], {"a": 1})) == memory_key(([1, 2], {"a": 1}))
    True
    """
    if not typed:
        try:
            frozen: Hashable = _freeze(key)
            hash(frozen)
        except TypeError:
            pass
        else:
            return frozen
    return DigestKey(stable_digest(key, typed=typed))
