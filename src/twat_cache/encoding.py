"""Canonical bytes for call arguments, and the digests persistent caches store under.

Why: a persistent or shared cache must find an entry written by another
process, machine or Python run, so keys never use the builtin ``hash`` (salted
per process for str and bytes) nor ``repr`` (which may hold an address).
Arguments are encoded into canonical bytes (type-tagged, length-prefixed,
dicts and sets sorted) and digested with BLAKE2b-128.

The rule every encoding obeys: two values share bytes only when a user would
call them the same value, type and metadata included (a pandas index name, a
NumPy mask, ``Decimal('1.0')`` versus ``Decimal('1.00')``, ``-0.0`` versus
``0.0``). The one deliberate exception is ``typed=False``, which follows
``functools.lru_cache``: ``1``, ``1.0``, ``True`` and ``np.int64(1)`` are one
value there, as they are one dict key.

The encoder is a loop over an explicit stack, not a recursion: it uses two
Python frames whatever the nesting, so a memoized recursive function deep in
its own recursion never hits ``RecursionError`` because of its key.
"""

from __future__ import annotations

import array
import dataclasses
import datetime as dt
import enum
import hashlib
import math
import struct
import sys
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from fractions import Fraction
from pathlib import PurePath
from typing import Any

from twat_cache.exceptions import CacheKeyError

__all__ = [
    "DigestKey",
    "describe_unkeyable",
    "encode",
    "namespaced_digest",
    "stable_digest",
]

#: Nesting deeper than this is refused: it is a cycle or not an argument anyone keys.
MAX_DEPTH = 500

_LEN = struct.Struct(">Q").pack
_I64 = struct.Struct(">q").pack
_F64 = struct.Struct(">d").pack
_SMALL = 1 << 63
_NONE = b"N"
_TRUE, _FALSE = b"T", b"F"


class DigestKey(str):
    """A digest used as a memory-engine key: never equal to a plain ``str`` argument."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is DigestKey and str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__


class _Op:
    """A step of the encoding loop that is not a value (never equal to user data)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


# _UP closes a container (depth - 1); _BEGIN/_END bracket one element of a sorted
# container in its own buffer; _SORT joins a sorted container's elements.
_UP, _BEGIN, _END, _SORT = _Op("up"), _Op("begin"), _Op("end"), _Op("sort")


def _int(n: int) -> bytes:
    if -_SMALL <= n < _SMALL:
        return b"i" + _I64(n)
    # Binary, not str(n): str() refuses ints beyond 4,300 digits and is quadratic.
    data = n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True)
    return b"I" + _LEN(len(data)) + data


def _float(x: float, typed: bool) -> bytes:
    # Untyped, an integral float is the int it equals (as in lru_cache); -0.0 never
    # is, since 1/x, copysign and repr tell it from 0.
    if not typed and x.is_integer() and (x or math.copysign(1.0, x) > 0):
        return _int(int(x))
    return b"f" + _F64(x)


def _blob(tag: bytes, data: bytes) -> bytes:
    return tag + _LEN(len(data)) + data


def _text(tag: bytes, text: str) -> bytes:
    return _blob(tag, text.encode("utf-8", "surrogatepass"))


def _qualname(cls: type) -> bytes:
    """``module:qualname`` of a class, the type part of a key."""
    return f"{cls.__module__}:{cls.__qualname__}".encode()


def _classed(tag: bytes, cls: type) -> bytes:
    return _blob(tag, _qualname(cls))


def _tz(value: dt.datetime | dt.time) -> list[Any]:
    """The time zone's identity, not only its offset now (DST rules differ)."""
    tz = value.tzinfo
    if tz is None:
        return [None, value.fold]
    return [f"{type(tz).__module__}:{type(tz).__qualname__}:{tz}", value.fold]


_Expanded = list[Any] | None


def _expand(obj: Any, cls: type, out: bytearray, typed: bool) -> _Expanded:
    """Write the header of a non-plain value; return its parts to encode after it."""
    if not isinstance(obj, type):
        if getattr(cls, "__cache_key__", None) is not None:
            out += _classed(b"K", cls)  # the class is part of the key: subclasses differ
            return [_hook(obj, cls, "__cache_key__")]
        if getattr(cls, "__persistent_hash__", None) is not None:
            out += _classed(b"H", cls)
            out += _int(_hook(obj, cls, "__persistent_hash__"))
            return None
    writer = _WRITERS.get(cls)
    if writer is not None:
        return writer(obj, out, typed)
    if isinstance(obj, enum.Enum):
        out += _classed(b"E", cls)
        return [obj.name] if obj.name is not None else [None, obj.value]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out += _classed(b"C", cls)
        return [{f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.compare}]
    if hasattr(cls, "model_dump") and hasattr(cls, "model_fields"):  # pydantic v2 model
        out += _classed(b"M", cls)
        return [obj.model_dump(mode="python")]
    if isinstance(obj, PurePath):
        out += _classed(b"p", cls)
        out += _text(b"s", obj.as_posix())
        return None
    if isinstance(obj, type):
        out += _classed(b"y", obj)
        return None
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, (np.ndarray, np.generic)):
        return _numpy(np, obj, cls, out, typed)
    pd = sys.modules.get("pandas")
    if pd is not None:
        parts = _pandas(pd, obj, cls, out)
        if parts is not None:
            return parts
    return _subclass(obj, cls, out, typed)


def _hook(obj: Any, cls: type, name: str) -> Any:
    """What ``obj``'s own ``__cache_key__()`` or ``__persistent_hash__()`` (an int) returns.

    Raises:
        CacheKeyError: the method raised, or a persistent hash is not an int (named).
    """
    try:
        value = getattr(obj, name)()
    except CacheKeyError:
        raise
    except Exception as exc:
        msg = f"{cls.__qualname__}.{name}() raised {type(exc).__name__}: {exc}"
        raise CacheKeyError(msg) from exc
    if name == "__persistent_hash__":
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):
            msg = f"{cls.__qualname__}.{name}() returned {value!r:.80}, not an int"
            raise CacheKeyError(msg) from None
    return value


def _subclass(obj: Any, cls: type, out: bytearray, typed: bool) -> _Expanded:
    """Subclasses of builtins: the class is part of the key, except untyped scalars."""
    for base, writer in _SCALAR_BASES:
        if isinstance(obj, base):
            if typed:  # untyped, a str subclass equals its str, as in lru_cache
                out += _classed(b"X", cls)
            if writer is None:
                return [base(obj)]
            return writer(obj, out, typed)
    for base in _CONTAINER_BASES:
        if isinstance(obj, base):
            out += _classed(b"X", cls)  # a namedtuple is not a tuple to its users
            if isinstance(obj, OrderedDict):  # its equality is order-sensitive
                return [list(obj.items())]
            if isinstance(obj, defaultdict):
                factory = obj.default_factory
                name = None if factory is None else getattr(factory, "__qualname__", None)
                return [getattr(factory, "__module__", None), name, dict(obj)]
            return [base(obj)]
    msg = f"cannot key a {cls.__module__}.{cls.__qualname__} object"
    raise CacheKeyError(msg)


def _complex(obj: complex, out: bytearray, typed: bool) -> _Expanded:
    out += b"c" + _F64(obj.real) + _F64(obj.imag)
    return None


def _bytes(obj: bytes | bytearray, out: bytearray, typed: bool) -> _Expanded:
    out += _blob(b"B" if typed and type(obj) is bytearray else b"b", bytes(obj))
    return None


def _memoryview(obj: memoryview, out: bytearray, typed: bool) -> _Expanded:
    out += _text(b"v", f"{obj.format}|{obj.shape}")  # the same bytes read as int32 differ
    out += _blob(b"b", obj.tobytes())
    return None


def _array(obj: array.array[Any], out: bytearray, typed: bool) -> _Expanded:
    # The type code is part of the value: the same bytes read as 'i' or 'f' differ.
    out += _text(b"a", obj.typecode)
    out += _blob(b"b", obj.tobytes())
    return None


def _stringy(tag: bytes) -> Callable[[Any, bytearray, bool], _Expanded]:
    def write(obj: Any, out: bytearray, typed: bool) -> _Expanded:
        out += _text(tag, str(obj))  # Decimal('1.0') and Decimal('1.00') differ here
        return None

    return write


def _datetime(obj: dt.datetime | dt.time, out: bytearray, typed: bool) -> _Expanded:
    out += _text(b"tD" if isinstance(obj, dt.datetime) else b"tT", obj.isoformat())
    return _tz(obj)


def _date(obj: dt.date, out: bytearray, typed: bool) -> _Expanded:
    out += _text(b"d", obj.isoformat())
    return None


def _timedelta(obj: dt.timedelta, out: bytearray, typed: bool) -> _Expanded:
    out += _text(b"td", f"{obj.days},{obj.seconds},{obj.microseconds}")
    return None


def _bool(obj: bool, out: bytearray, typed: bool) -> _Expanded:
    if typed:
        out += _TRUE if obj else _FALSE
    else:  # as in lru_cache, True == 1 unless typed
        out += _int(int(obj))
    return None


_WRITERS: dict[type, Callable[[Any, bytearray, bool], _Expanded]] = {
    bool: _bool,
    bytes: _bytes,
    bytearray: _bytes,
    memoryview: _memoryview,
    array.array: _array,
    complex: _complex,
    Decimal: _stringy(b"e"),  # tags are prefix-free: no tag starts another one
    Fraction: _stringy(b"q"),
    uuid.UUID: _stringy(b"uuid"),
    range: _stringy(b"range"),
    dt.datetime: _datetime,
    dt.time: _datetime,
    dt.date: _date,
    dt.timedelta: _timedelta,
}


_SCALAR_BASES: tuple[tuple[type, Callable[[Any, bytearray, bool], _Expanded] | None], ...] = (
    (int, None),
    (float, None),
    (complex, None),
    (str, None),
    (bytes, None),
    (Decimal, None),
    (dt.datetime, _datetime),
    (dt.date, _date),
    (dt.time, _datetime),
    (dt.timedelta, _timedelta),
)
_CONTAINER_BASES: tuple[type, ...] = (tuple, list, dict, set, frozenset)


def _dtype(np: Any, dtype: Any) -> str:
    # dtype.str loses field names and offsets of structured dtypes ('|V16').
    if dtype.fields is None and dtype.subdtype is None:
        return str(dtype.str)
    return repr(dtype)


def _array_digest(np: Any, arr: Any) -> bytes:
    """BLAKE2b-256 of an array's elements in C order (layout and strides never matter)."""
    flat = np.ascontiguousarray(arr).reshape(-1)
    h = hashlib.blake2b(digest_size=32)
    try:  # a byte view hashes without a copy; datetime64 has no buffer format of its own
        h.update(memoryview(flat.view(np.uint8)))
    except (TypeError, ValueError):
        h.update(flat.tobytes())
    return h.digest()


def _numpy(np: Any, obj: Any, cls: type, out: bytearray, typed: bool) -> _Expanded:
    if isinstance(obj, np.generic):
        dtype = obj.dtype
        if dtype.kind in "biufcUS" and not typed:
            value = obj.item()  # np.float64(1.5) is 1.5 unless typed, as in lru_cache
            if not isinstance(value, np.generic):  # longdouble has no Python twin
                return [value]
        out += _text(b"n", _dtype(np, dtype))
        if dtype.hasobject:
            return [obj.item()]
        out += _blob(b"b", obj.tobytes())
        return None
    header = f"{_dtype(np, obj.dtype)}|{obj.shape}"
    if cls is np.ndarray or cls is np.memmap:  # a memmap is an ndarray to its users
        out += _text(b"A", header)
    else:
        out += _classed(b"X", cls)
        out += _text(b"A", header)
    if isinstance(obj, np.ma.MaskedArray):
        # The mask and fill value change what the array prints and computes.
        data = np.ma.getdata(obj)
        mask = np.ma.getmaskarray(obj)
        try:
            fill = obj.fill_value
        except AttributeError:  # np.ma.masked, the read-only masked constant
            fill = None
        return [np.asarray(data), np.asarray(mask), fill]
    if obj.dtype.hasobject:
        return [obj.tolist()]
    if cls is not np.ndarray and cls is not np.memmap:
        return [np.asarray(obj)]
    out += _array_digest(np, obj)
    return None


def _labelled(obj: Any, labels: list[Any], values: list[Any]) -> list[Any]:
    """A Series' or DataFrame's parts in digest order: its labels, then what pandas
    carries beside them (``attrs``, the duplicate-labels flag), then its values."""
    return [*labels, dict(obj.attrs), obj.flags.allows_duplicate_labels, *values]


def _pandas(pd: Any, obj: Any, cls: type, out: bytearray) -> _Expanded:
    """pandas objects: values, index, names, dtypes, attrs, type; None if not pandas."""
    if isinstance(obj, pd.DataFrame):
        out += _classed(b"PF", cls)
        out += _LEN(obj.shape[1])
        columns: list[Any] = []
        for i in range(obj.shape[1]):
            columns += _pandas_values(pd, obj.iloc[:, i])
        return _labelled(obj, [obj.index, obj.columns], columns)
    if isinstance(obj, pd.Series):
        out += _classed(b"PS", cls)
        return _labelled(obj, [obj.name, obj.index], _pandas_values(pd, obj))
    if isinstance(obj, pd.MultiIndex):
        out += _classed(b"PM", cls)
        out += _LEN(obj.nlevels)
        parts: list[Any] = [list(obj.names)]
        for level, codes in zip(obj.levels, obj.codes, strict=True):
            parts += [level, _np_array(codes)]
        return parts
    if isinstance(obj, pd.RangeIndex):
        out += _classed(b"PR", cls)
        return [obj.name, obj.start, obj.stop, obj.step]
    if isinstance(obj, pd.Index):
        out += _classed(b"PI", cls)
        return [obj.name, getattr(obj, "freqstr", None), *_pandas_values(pd, obj)]
    if isinstance(obj, pd.Timestamp):
        out += _classed(b"Pt", cls)
        return [obj.value, obj.unit, None if obj.tz is None else str(obj.tz), obj.fold]
    if isinstance(obj, pd.Timedelta):
        out += _classed(b"Pd", cls)
        return [obj.value, obj.unit]
    if obj is pd.NA or obj is pd.NaT:
        out += _classed(b"P0", cls)
        return []  # handled, nothing more to encode (None means "not pandas")
    if isinstance(obj, (pd.Period, pd.Interval)):
        out += _classed(b"Pv", cls)
        return [str(obj), str(getattr(obj, "freqstr", "")), str(getattr(obj, "closed", ""))]
    return None


def _np_array(values: Any) -> Any:
    """``values`` as an ndarray (NumPy is loaded whenever pandas is)."""
    return sys.modules["numpy"].asarray(values)


#: Kinds whose elements pandas hashes exactly (each distinct value, distinct hash);
#: datetimes in object columns are not among them: their hash drops the tz name.
_HASHABLE_KINDS = frozenset(
    {"string", "bytes", "integer", "floating", "mixed-integer-float", "boolean", "decimal",
     "complex", "period", "interval", "empty"}
)  # fmt: skip
#: The same, for extension arrays, which store datetimes as int64 with the tz in the dtype.
_HASHABLE_EXTENSION_KINDS = _HASHABLE_KINDS | {"datetime64", "datetime", "timedelta64",
                                               "timedelta", "date"}  # fmt: skip


def _pandas_values(pd: Any, values: Any) -> list[Any]:
    """The parts that pin a Series' or Index's values: its dtype, then its content."""
    np = sys.modules["numpy"]
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        # Categories and their order are part of the value, not only the labels shown.
        return ["category", dtype.ordered, dtype.categories, np.asarray(values.array.codes)]
    if isinstance(dtype, np.dtype) and dtype.kind != "O":
        return [repr(dtype), np.asarray(values)]
    arr = np.asarray(values) if isinstance(dtype, np.dtype) else values.array
    kind = pd.api.types.infer_dtype(arr, skipna=True)
    exact = _HASHABLE_KINDS if isinstance(dtype, np.dtype) else _HASHABLE_EXTENSION_KINDS
    if kind in exact:
        try:
            hashed = np.asarray(pd.util.hash_array(arr))
            # pandas hashes a missing value as its text: the mask keeps None apart from "None".
            mask = np.asarray(pd.isna(arr))
        except (TypeError, ValueError, UnicodeError):
            pass
        else:
            return [repr(dtype), kind, hashed, mask]
    return [repr(dtype), list(arr)]  # mixed objects: encoded one by one, exactly


def _too_deep(root: Any) -> CacheKeyError:
    if _has_cycle(root):
        return CacheKeyError("the argument refers to itself (a container holds itself)")
    return CacheKeyError(
        f"the argument is nested more than {MAX_DEPTH} levels deep, or refers to itself"
    )


def _has_cycle(root: Any) -> bool:
    """Does a builtin container hold itself? (Runs only once keying has failed.)"""
    path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, True)]
    while stack:
        obj, entering = stack.pop()
        if not entering:
            path.discard(id(obj))
            continue
        if isinstance(obj, dict):
            items: Iterable[Any] = list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            items = list(obj)
        else:
            continue
        if id(obj) in path:
            return True
        path.add(id(obj))
        stack.append((obj, False))
        stack.extend((item, True) for item in items)
    return False


def _encode(root: Any, out: bytearray, typed: bool) -> None:
    """Append the canonical bytes of ``root`` to ``out`` (one loop, no recursion)."""
    stack = [root]
    pop, push = stack.pop, stack.append
    depth = 0
    outer: list[bytearray] = []  # buffers of enclosing sorted-container elements
    groups: list[list[bytes]] = []  # the elements of each open sorted container
    while stack:
        obj = pop()
        cls = type(obj)
        # int, str and float are inlined: no call, and no frame, for the common case.
        if cls is int:
            out += b"i" + _I64(obj) if -_SMALL <= obj < _SMALL else _int(obj)
        elif cls is str:
            out += b"s" + _LEN(len(obj)) + obj.encode("utf-8", "surrogatepass")
        elif cls is float:
            if typed or not obj.is_integer() or not (obj or math.copysign(1.0, obj) > 0):
                out += b"f" + _F64(obj)
            else:  # untyped, 1.0 is 1 (see _float)
                obj = int(obj)
                out += b"i" + _I64(obj) if -_SMALL <= obj < _SMALL else _int(obj)
        elif obj is None:
            out += _NONE
        elif cls is _Op:
            if obj is _UP:
                depth -= 1
            elif obj is _BEGIN:
                outer.append(out)
                out = bytearray()
            elif obj is _END:
                groups[-1].append(bytes(out))
                out = outer.pop()
            else:  # _SORT: element order never matters in sets and dicts
                parts = groups.pop()
                parts.sort()
                out += b"".join(parts)
                depth -= 1
        elif cls is dict or cls is set or cls is frozenset:
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep(root)
            if cls is dict:
                out += b"D" + _LEN(len(obj))
            else:
                out += (b"S" if cls is set else b"Z") + _LEN(len(obj))
            groups.append([])
            push(_SORT)
            if cls is dict:
                for key, value in obj.items():
                    push(_END)
                    push(value)
                    push(key)
                    push(_BEGIN)
            else:
                for item in obj:
                    push(_END)
                    push(item)
                    push(_BEGIN)
        else:  # a sequence: its tag, then its items (a tuple or list, or what _expand gives)
            if cls is tuple or cls is list:
                out += (b"(" if cls is tuple else b"[") + _LEN(len(obj))
                expanded = obj
            else:
                expanded = _expand(obj, cls, out, typed)
            if expanded:
                depth += 1
                if depth > MAX_DEPTH:
                    raise _too_deep(root)
                push(_UP)
                stack.extend(reversed(expanded))


def encode(obj: Any, *, typed: bool = False) -> bytes:
    """Canonical bytes for ``obj``: equal for equal values in any process.

    Raises:
        CacheKeyError: ``obj`` (or something inside it) cannot be keyed, or it
            refers to itself, or it is nested more than ``MAX_DEPTH`` levels.

    >>> encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1})
    True
    """
    out = bytearray()
    _encode(obj, out, typed)
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
    hashes the arguments (the persistent hit path does this on every call). A
    flat tuple of ints, strs and floats, the common case, is encoded inline.

    >>> namespaced_digest("ns")((1, "a")) == stable_digest("ns", (1, "a"))
    True
    """
    prefix = bytearray(b"(" + _LEN(2))
    _encode(namespace, prefix, typed)
    seed = hashlib.blake2b(bytes(prefix), digest_size=16)
    copy = seed.copy
    tuple_ = tuple
    _copysign = math.copysign

    def digest(values: Any) -> str:
        out = bytearray()
        if type(values) is tuple_:
            out += b"(" + _LEN(len(values))
            for i, item in enumerate(values):
                # The commonest scalars in _encode's own bytes; big ints, integral
                # floats (untyped) and everything else go through the general loop.
                cls = type(item)
                if cls is str:
                    out += b"s" + _LEN(len(item)) + item.encode("utf-8", "surrogatepass")
                elif cls is int and -_SMALL <= item < _SMALL:
                    out += b"i" + _I64(item)
                elif cls is float and (typed or not item.is_integer()):
                    out += b"f" + _F64(item)
                elif (
                    cls is float and (item or _copysign(1.0, item) > 0) and -_SMALL <= item < _SMALL
                ):
                    out += b"i" + _I64(int(item))  # untyped, 1.0 is 1 (as in _encode)
                else:
                    for rest in values[i:]:
                        _encode(rest, out, typed)
                    break
        else:
            _encode(values, out, typed)
        h = copy()
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
