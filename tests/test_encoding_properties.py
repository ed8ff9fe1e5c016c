"""Property tests: equal encodings exactly for values a user calls the same.

``canon`` below is the oracle, written independently of the encoder: it maps a
value to a plain structure that holds its type and its exact value (float
bits, array bytes, pandas names and dtypes). Two values must share an encoding
if and only if their canons are equal; memory keys must never be equal when
the canons differ. Under ``typed=False``, ``1``, ``1.0``, ``True`` and NumPy
numbers equal to them are one value (``functools.lru_cache``'s rule), but
``-0.0`` is not ``0``.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import hypothesis.extra.numpy as nps
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import memory_key
from twat_cache.encoding import encode, namespaced_digest, stable_digest

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def canon(x: Any, typed: bool) -> Any:
    """The value and type of ``x`` as a plain comparable structure (the oracle)."""
    t = type(x)
    if isinstance(x, np.generic):
        if not typed and x.dtype.kind in "biufc":
            return canon(x.item(), typed)
        return ("np", x.dtype.str, x.tobytes())
    if t is bool:
        return ("bool", x) if typed else ("int", int(x))
    if t is int:
        return ("int", x)
    if t is float:
        if not typed and x.is_integer() and (x or math.copysign(1.0, x) > 0):
            return ("int", int(x))
        return ("float", struct.pack(">d", x))
    if t in (str, bytes, type(None)):
        return (t.__name__, x)
    if t in (tuple, list):
        return (t.__name__, tuple(canon(i, typed) for i in x))
    if t in (set, frozenset):
        return (t.__name__, frozenset(canon(i, typed) for i in x))
    if t is dict:
        return ("dict", frozenset((canon(k, typed), canon(v, typed)) for k, v in x.items()))
    if t is np.ndarray:
        return ("nd", x.dtype, x.shape, np.ascontiguousarray(x).tobytes())
    if t is pd.Series:
        return ("series", canon(x.name, True), str(x.dtype), canon(x.index, typed), _cells(x))
    if t is pd.DataFrame:
        columns = tuple(_cells(x.iloc[:, i]) for i in range(x.shape[1]))
        dtypes = tuple(str(d) for d in x.dtypes)
        return ("frame", canon(x.index, typed), canon(x.columns, typed), dtypes, columns)
    if isinstance(x, pd.Index):
        return ("index", t.__name__, canon(x.name, True), str(x.dtype), _cells(x))
    raise AssertionError(f"no canon for {t}")


def _cells(values: Any) -> tuple[Any, ...]:
    return tuple(canon(v, True) for v in values.tolist())


# -- strategies -------------------------------------------------------------------------

_small_floats = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1.5, 2.0**53, float("inf"), math.nan])
_huge_ints = st.builds(lambda k, s: s * (10**4400 + k), st.integers(0, 3), st.sampled_from([1, -1]))
_np_scalars = st.one_of(
    st.builds(np.float64, _small_floats),
    st.builds(np.float32, st.sampled_from([1.0, 1.5, -0.0])),
    st.builds(np.int64, st.integers(-2, 2)),
    st.builds(np.bool_, st.booleans()),
)
_keys = st.one_of(st.integers(-2, 2), st.text("ab", max_size=2), st.binary(max_size=2))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.integers(),
    _huge_ints,
    _small_floats,
    st.floats(),
    st.text("ab\x00é\ud800", max_size=3),
    st.binary(max_size=3),
    _np_scalars,
)
_hashables = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), _small_floats, _keys)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=3).map(tuple),
        st.lists(children, max_size=3),
        st.dictionaries(_keys, children, max_size=3),
        st.sets(_hashables, max_size=3),
        st.frozensets(_hashables, max_size=3),
    )


_dtypes = st.one_of(
    nps.scalar_dtypes(),
    nps.unicode_string_dtypes(max_len=3),
    nps.byte_string_dtypes(max_len=3),
    nps.array_dtypes(subtype_strategy=nps.scalar_dtypes(), max_size=2),
)
_shapes = nps.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)
_arrays = _dtypes.flatmap(lambda dtype: nps.arrays(dtype, _shapes))

_index_dtypes = st.sampled_from(["int64", "int32", "float64", "object"])
_names = st.sampled_from([None, "a", "b"])


@st.composite
def _index(draw: st.DrawFn, size: int) -> pd.Index:
    labels = draw(st.lists(st.integers(0, 3), min_size=size, max_size=size))
    return pd.Index(labels, dtype=draw(_index_dtypes), name=draw(_names))


@st.composite
def _series(draw: st.DrawFn) -> pd.Series:
    size = draw(st.integers(0, 3))
    values = draw(st.lists(st.integers(-1, 1), min_size=size, max_size=size))
    dtype = draw(st.sampled_from(["int64", "float64", "Int64", "object"]))
    return pd.Series(values, index=draw(_index(size)), dtype=dtype, name=draw(_names))


@st.composite
def _frames(draw: st.DrawFn) -> pd.DataFrame:
    size = draw(st.integers(0, 3))
    names = draw(st.lists(st.sampled_from(["x", "y", "z"]), max_size=2, unique=True))
    data = {
        name: pd.Series(
            draw(st.lists(st.integers(-1, 1), min_size=size, max_size=size)),
            dtype=draw(st.sampled_from(["int64", "float64", "Int64"])),
        )
        for name in names
    }
    frame = pd.DataFrame(data)
    frame.index = draw(_index(size))
    frame.columns.name = draw(_names)
    return frame


_values = st.recursive(_scalars, _containers, max_leaves=8)
_anything = st.one_of(_values, _arrays, _series(), _frames())


def _rebuilt(x: Any) -> Any:
    """An equal value built afresh: dicts and sets in reverse order, arrays in Fortran order."""
    t = type(x)
    if t in (tuple, list):
        return t(_rebuilt(i) for i in x)
    if t is dict:
        return {k: _rebuilt(v) for k, v in reversed(list(x.items()))}
    if t in (set, frozenset):
        return t(reversed(list(x)))
    if t is np.ndarray:
        return np.asfortranarray(x) if x.ndim else x.copy()
    if t in (pd.Series, pd.DataFrame):
        return x.copy(deep=True)
    if t is int:
        return int(str(x)) if abs(x) < 10**100 else 0 - x * -1
    if t in (str, bytes):
        return t(x[:0]) + x
    return x


# -- properties -------------------------------------------------------------------------


@_SETTINGS
@given(_anything, st.booleans())
def test_equal_values_built_afresh_encode_alike(x, typed):
    """A value and an equal one built afresh (other orders and layouts) share bytes."""
    assert encode(x, typed=typed) == encode(_rebuilt(x), typed=typed)


@_SETTINGS
@given(_anything, _anything, st.booleans())
def test_encodings_are_equal_exactly_when_values_are(a, b, typed):
    """Same bytes if and only if the oracle calls the two values the same."""
    assert (encode(a, typed=typed) == encode(b, typed=typed)) == (
        canon(a, typed) == canon(b, typed)
    )


@_SETTINGS
@given(st.lists(_values, max_size=3), st.lists(_values, max_size=3))
def test_memory_keys_are_never_equal_for_different_values(a, b):
    """Frozen memory keys of unhashable arguments never conflate different values."""
    if memory_key((a,)) == memory_key((b,)):
        assert canon(a, False) == canon(b, False)


@_SETTINGS
@given(st.lists(st.one_of(st.integers(), st.text(max_size=3), st.floats(), _values), max_size=4))
def test_fast_digest_matches_the_general_encoder(values):
    """The persistent hit path's inlined tuple encoding equals the general one."""
    for typed in (False, True):
        fast = namespaced_digest(("ns", 1), typed=typed)(tuple(values))
        assert fast == stable_digest(("ns", 1), tuple(values), typed=typed)


@_SETTINGS
@given(st.lists(_np_scalars | _small_floats | st.integers(-2, 2), min_size=1, max_size=3))
def test_typed_separates_what_untyped_shares(values):
    """typed=True never shares a key that typed=False keeps apart."""
    other = [float(v) if isinstance(v, int) else v for v in values]
    if encode(values, typed=True) == encode(other, typed=True):
        assert encode(values) == encode(other)
