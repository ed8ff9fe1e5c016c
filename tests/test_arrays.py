"""Arrays through fcache and bcache: every dtype and layout back exactly; large ones in files."""

from __future__ import annotations

import itertools
import stat
from pathlib import Path
from typing import Any

import hypothesis.extra.numpy as npst
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Calls
from twat_cache import bcache, fcache, get_stats
from twat_cache.engines.disk import FILE_MIN_BYTES

_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_DTYPES = st.one_of(
    npst.scalar_dtypes(),  # bool, ints, floats, complex, datetime64, timedelta64
    npst.integer_dtypes(endianness="?"),
    npst.floating_dtypes(endianness="?"),
    npst.byte_string_dtypes(),
    npst.unicode_string_dtypes(),
    npst.nested_dtypes(max_itemsize=64),  # structured, nested, sub-arrays
)


@st.composite
def _layouts(draw: st.DrawFn) -> np.ndarray:
    """An array of any dtype and shape (0-d and empty too), C, Fortran or strided."""
    dtype = draw(_DTYPES)
    shape = draw(npst.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    array = draw(npst.arrays(dtype, shape))
    layout = draw(st.sampled_from(["C", "F", "strided"]))
    if layout == "F":
        return np.asfortranarray(array)
    if layout == "strided" and array.ndim:
        return array[::2]
    return array


_EXAMPLES = itertools.count()


def _same(got: Any, want: np.ndarray) -> bool:
    """Identical dtype (byte order included), shape and bytes; Python objects by equality."""
    if type(got) not in (np.ndarray, np.memmap) or got.dtype != want.dtype:
        return False
    if got.shape != want.shape:
        return False
    if want.dtype.hasobject:
        return bool(got.tolist() == want.tolist())
    return got.tobytes() == want.tobytes()


def _cached_by_index(decorator: Any, arrays: list[np.ndarray], calls: Calls) -> Any:
    @decorator
    def make(i: int) -> np.ndarray:
        calls(i)
        return arrays[i]

    return make


@pytest.mark.parametrize("compress", [False, True])
@given(data=st.data())
@_SETTINGS
def test_every_array_round_trips_through_fcache(
    tmp_path: Path, compress: bool, data: st.DataObject
) -> None:
    """Any dtype, shape and memory layout comes back identical from an fcache hit, computed once."""
    arrays: list[np.ndarray] = []
    calls = Calls()
    folder = f"example-{next(_EXAMPLES)}"  # examples share tmp_path: one cache each
    decorator = fcache(cache_dir=tmp_path, folder_name=folder, compress=compress)
    make = _cached_by_index(decorator, arrays, calls)
    for i in range(3):
        arrays.append(data.draw(_layouts()))
        assert _same(make(i), arrays[i])  # the miss returns the function's own array
        got = make(i)
        assert _same(got, arrays[i]), (arrays[i].dtype, arrays[i].shape)
        assert got.flags.writeable
    assert calls == [0, 1, 2]


_NAMED = {
    "datetime64": np.array(["2020-01-01T10:00", "NaT", "1969-07-20T20:17"], dtype="datetime64[m]"),
    "timedelta64": np.array([1, -2, np.timedelta64("NaT")], dtype="timedelta64[ms]"),
    "structured": np.array(
        [(1, 2.5, b"ab", "é"), (-1, np.nan, b"", "z")],
        dtype=[("i", "<i4"), ("f", ">f8"), ("b", "S2"), ("u", "U1")],
    ),
    "object": np.array([1, "a", None, (2, 3), {"k": [1]}], dtype=object),
    "unicode": np.array(["héllo", "", "日本"]),
    "complex": np.array([1 + 2j, np.nan * 1j], dtype=np.complex64),
    "bool": np.array([[True, False], [False, True]]),
    "zero_d": np.array(3.5),
    "empty": np.empty((0, 4), dtype=np.int16),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "non_contiguous": np.arange(60).reshape(6, 10)[::2, 1::3],
    "big_endian": np.arange(6, dtype=">u8"),
}


@pytest.mark.parametrize("kind", list(_NAMED))
def test_each_kind_of_array_from_the_issue_round_trips(tmp_path: Path, kind: str) -> None:
    """Each array kind named in issue 11 comes back from fcache with its dtype, shape, values."""
    calls = Calls()
    want = _NAMED[kind]
    make = _cached_by_index(fcache(cache_dir=tmp_path), [want], calls)
    make(0)
    got = make(0)
    assert calls == [0]
    assert _same(got, want)
    if kind == "fortran":
        assert got.flags.f_contiguous
    if kind == "object":
        assert get_stats(make.cache_parameters()["name"])["formats"] == {"serialized": 1}
    else:
        assert get_stats(make.cache_parameters()["name"])["formats"] == {"npy": 1}


_DTYPES_NPY_LOSES = {  # the .npy header keeps the layout of these dtypes, not all of them
    "metadata": np.dtype("i1", metadata={"enum": {"RED": 0, "GREEN": 1}}),  # h5py's enums
    "record_type": np.dtype((np.record, [("a", "<i4"), ("b", "f8")])),
    "aligned_struct": np.dtype([("a", "i1"), ("b", "<i8")], align=True),
    "out_of_order_fields": np.dtype(
        {"names": ["a", "b"], "formats": ["<i4", "<i4"], "offsets": [8, 0], "itemsize": 16}
    ),
}


@pytest.mark.parametrize("decorator", ["fcache", "bcache"])
@pytest.mark.parametrize("kind", list(_DTYPES_NPY_LOSES))
def test_dtypes_the_npy_header_cannot_hold_come_back_exactly(
    tmp_path: Path, kind: str, decorator: str
) -> None:
    """A dtype the .npy header would change (its metadata, np.record type, align flag) or
    cannot write (fields out of offset order) is stored another way, and hits exactly."""
    dtype = _DTYPES_NPY_LOSES[kind]
    want = np.zeros(FILE_MIN_BYTES // dtype.itemsize + 1, dtype=dtype)  # a bcache file too
    want.view("u1")[::7] = 5
    calls = Calls()
    make = _cached_by_index({"fcache": fcache, "bcache": bcache}[decorator](cache_dir=tmp_path),
                            [want], calls)  # fmt: skip
    make(0)
    got = make(0)
    assert calls == [0]
    assert _same(got, want)
    assert got.dtype.metadata == want.dtype.metadata
    assert got.dtype.type is want.dtype.type
    assert got.dtype.isalignedstruct == want.dtype.isalignedstruct
    assert got.dtype.fields == want.dtype.fields


@pytest.mark.parametrize("kind", [k for k in _NAMED if k != "object"])
def test_mmap_mode_maps_read_only(tmp_path: Path, kind: str) -> None:
    """With mmap_mode="r" a hit is a read-only np.memmap of the cache file, equal to the value."""
    calls = Calls()
    want = _NAMED[kind]
    make = _cached_by_index(fcache(cache_dir=tmp_path, mmap_mode="r"), [want], calls)
    make(0)
    got = make(0)
    assert calls == [0]
    assert isinstance(got, np.memmap)
    assert not got.flags.writeable
    assert _same(got, want)
    with pytest.raises(ValueError, match="read-only"):
        got[...] = got


def test_default_hit_is_a_private_writable_copy(tmp_path: Path) -> None:
    """Without mmap_mode a hit is a new writable array: changing it never changes the cache."""
    calls = Calls()
    make = _cached_by_index(fcache(cache_dir=tmp_path), [np.zeros(5)], calls)
    make(0)
    first = make(0)
    first[:] = 7.0
    assert make(0).tolist() == [0.0] * 5
    assert calls == [0]


def test_datetime_arrays_stay_exact_in_bcache_files(tmp_path: Path) -> None:
    """A large datetime64 array under bcache goes to its own .npy-layout file and back exactly."""
    calls = Calls()
    want = np.arange(FILE_MIN_BYTES // 8 + 10).astype("datetime64[s]")
    want[3] = np.datetime64("NaT")
    make = _cached_by_index(bcache(cache_dir=tmp_path), [want], calls)
    make(0)
    assert _same(make(0), want)
    assert calls == [0]
    assert len(list(tmp_path.rglob("values/*.tc"))) == 1


def test_large_bcache_array_lives_in_one_file_of_its_size(tmp_path: Path) -> None:
    """An array of 1 MiB or more under bcache costs its size once on disk, not again in SQLite."""
    calls = Calls()
    want = np.random.default_rng(0).random(1_000_000)  # 8 MB
    make = _cached_by_index(bcache(cache_dir=tmp_path), [want], calls)
    make(0)
    assert _same(make(0), want)
    assert calls == [0]
    (value_file,) = tmp_path.rglob("values/*.tc")
    assert want.nbytes < value_file.stat().st_size < want.nbytes + 4096
    total = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert total < want.nbytes * 1.1  # the database and its WAL hold only the row
    stats = get_stats(make.cache_parameters()["name"])
    assert stats["formats"] == {"npy": 1}
    assert stats["size"] == 1


def test_small_bcache_values_stay_in_sqlite(tmp_path: Path) -> None:
    """Arrays and values under 1 MiB stay inside the database: no value file is made."""
    calls = Calls()
    arrays = [np.arange(1000), np.arange(10.0)]
    make = _cached_by_index(bcache(cache_dir=tmp_path), arrays, calls)
    for i in range(2):
        make(i)
        assert _same(make(i), arrays[i])
    assert calls == [0, 1]
    assert not list(tmp_path.rglob("values"))


def test_bcache_value_files_go_with_their_entries(tmp_path: Path) -> None:
    """cache_delete, cache_clear and an overwrite remove the value files they replace."""
    calls = Calls()
    big = np.ones(FILE_MIN_BYTES // 8 * 2)
    arrays = [big, big * 2, big * 3]
    make = _cached_by_index(bcache(cache_dir=tmp_path), arrays, calls)
    for i in range(3):
        make(i)
    assert len(list(tmp_path.rglob("values/*.tc"))) == 3
    assert make.cache_delete(0)
    assert len(list(tmp_path.rglob("values/*.tc"))) == 2
    assert _same(make.cache_refresh(1), arrays[1])  # overwrite: the old file goes
    assert len(list(tmp_path.rglob("values/*.tc"))) == 2
    make.cache_clear()
    assert list(tmp_path.rglob("values/*.tc")) == []
    assert _same(make(2), arrays[2])
    assert calls == [0, 1, 2, 1, 2]


def test_large_pickled_bcache_value_in_a_file(tmp_path: Path) -> None:
    """A large non-array value (bytes, lists) also gets its own file and comes back equal."""
    calls = Calls()
    values: list[Any] = [b"x" * (2 * FILE_MIN_BYTES), [f"s{i}" for i in range(300_000)]]

    @bcache(cache_dir=tmp_path)
    def make(i: int) -> Any:
        calls(i)
        return values[i]

    for i in range(2):
        make(i)
        assert make(i) == values[i]
    assert calls == [0, 1]
    assert len(list(tmp_path.rglob("values/*.tc"))) == 2
    assert get_stats(make.cache_parameters()["name"])["formats"] == {"serialized": 2}


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_bcache_value_file_is_recomputed(tmp_path: Path, damage: str) -> None:
    """A damaged large-value file is a miss: the function runs again and its value is returned."""
    calls = Calls()
    want = np.arange(FILE_MIN_BYTES // 8 * 2, dtype=np.float64)
    make = _cached_by_index(bcache(cache_dir=tmp_path), [want], calls)
    make(0)
    (value_file,) = tmp_path.rglob("values/*.tc")
    data = bytearray(value_file.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) // 2 :]
    value_file.write_bytes(bytes(data))
    assert _same(make(0), want)
    assert calls == [0, 0]
    assert _same(make(0), want)
    assert calls == [0, 0]


def test_bcache_value_files_are_private(tmp_path: Path) -> None:
    """With secure=True (the default) value files are 0o600 in a 0o700 folder, like the database."""
    calls = Calls()
    make = _cached_by_index(bcache(cache_dir=tmp_path), [np.ones(FILE_MIN_BYTES // 8)], calls)
    make(0)
    (value_file,) = tmp_path.rglob("values/*.tc")
    assert stat.S_IMODE(value_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(value_file.parent.stat().st_mode) == 0o700
