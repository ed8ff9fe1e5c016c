"""DataFrames, Series and tables through fcache as Arrow IPC files: exact, else pickled."""

from __future__ import annotations

import datetime
import itertools
import uuid
from pathlib import Path
from typing import Any

import dateutil.tz
import hypothesis.extra.pandas as pdst
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Calls, run_python
from twat_cache import bcache, fcache, get_stats
from twat_cache.engines.disk import FILE_MIN_BYTES

_HEADER_BLOCK = 64  # twat-cache's header before the Arrow file (engines/files.py)
N = 40


def _base(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "i": np.arange(n),
            "f": rng.random(n),
            "s": [f"s{i}" for i in range(n)],
            "cat": pd.Categorical(
                rng.choice(["a", "b", "c"], n), categories=["c", "b", "a", "unused"], ordered=True
            ),
            "Int64": pd.array([1, None] * (n // 2), dtype="Int64"),
            "boolean": pd.array([True, None] * (n // 2), dtype="boolean"),
            "Float64": pd.array([0.5, None] * (n // 2), dtype="Float64"),
            "tz": pd.date_range("2020-03-28", periods=n, freq="h", tz="Europe/Paris"),
            "naive_s": pd.date_range("2020-01-01", periods=n, freq="s").astype("datetime64[s]"),
            "td": pd.to_timedelta(np.arange(n), unit="s"),
            "u8": np.arange(n, dtype=np.uint8),
            "f32": np.arange(n, dtype=np.float32),
            "string": pd.array([f"x{i}" if i % 3 else None for i in range(n)], dtype="string"),
            "bytes": pd.Series([b"a", None] * (n // 2), dtype=object),
            "object_str": pd.Series(["é", None] * (n // 2), dtype=object),
        }
    )


def _frames() -> dict[str, Any]:
    """The pandas objects issue 11 names, each a case Arrow must keep exactly."""
    cases: dict[str, Any] = {"mixed_dtypes": _base()}
    frame = _base()
    frame.index = pd.Index([f"r{i}" for i in range(N)], name="rows")
    cases["str_index_with_name"] = frame
    frame = _base()
    frame.index = pd.Index([f"r{i}" for i in range(N)], dtype=object, name="object_rows")
    cases["object_str_index"] = frame
    frame = _base()
    frame.columns = list(range(frame.shape[1]))
    cases["int_column_names"] = frame
    frame = _base()
    frame.columns = [1, "a", 2.5, ("t", 1), None, *frame.columns[5:]]
    cases["mixed_column_names"] = frame
    frame = _base().iloc[:, :3].copy()
    frame.columns = ["a", "a", "b"]
    cases["duplicate_column_names"] = frame
    frame = _base()
    frame.index = pd.MultiIndex.from_arrays(
        [np.arange(N) % 5, [f"k{i}" for i in range(N)]], names=["level", 7]
    )
    cases["multiindex_rows"] = frame
    frame = _base().iloc[:, :4].copy()
    frame.columns = pd.MultiIndex.from_tuples(
        [("a", 1), ("a", 2), ("b", 1), ("b", 2)], names=["top", "sub"]
    )
    cases["multiindex_columns"] = frame
    frame = _base()
    frame.attrs = {"source": "sensor.csv", "version": 3}
    cases["attrs"] = frame
    frame = _base()
    frame.index = pd.date_range("2021-01-01", periods=N, freq="D", name="day")
    cases["datetime_index_with_freq"] = frame
    cases["range_index_with_step"] = pd.DataFrame(
        {"a": range(5)}, index=pd.RangeIndex(10, 20, 2, name="r")
    )
    cases["no_rows_keeps_categories"] = _base().iloc[:0]
    cases["no_columns"] = pd.DataFrame(index=pd.Index(["a", "b"], name="k"))
    cases["period_and_interval"] = pd.DataFrame(
        {"p": pd.period_range("2020-01", periods=5, freq="M"), "iv": pd.interval_range(0, 5)}
    )
    series = pd.Series(np.arange(N), name="values", index=pd.Index([f"r{i}" for i in range(N)]))
    series.attrs = {"unit": "m"}
    cases["series"] = series
    cases["series_str_no_name"] = pd.Series(["a", "b", None], dtype="str")
    cases["series_int_name"] = pd.Series([1.0, np.nan], name=3)
    cases["series_tuple_name_categorical"] = pd.Series(pd.Categorical(["a", "b"]), name=("t", 1))
    # Arrow brings ``datetime.timezone.utc`` (pandas' "UTC") back as ``ZoneInfo("UTC")``:
    # equal dtypes, another zone object.
    cases["tz_utc_zones"] = pd.DataFrame(
        {
            "utc": pd.date_range("2020", periods=N, freq="h", tz=datetime.timezone.utc),
        },
        index=pd.date_range("2021", periods=N, freq="D", tz="UTC", name="day"),
    )
    cases["tz_dateutil"] = pd.DataFrame(
        {
            "paris": pd.date_range(
                "2020", periods=3, freq="h", tz=dateutil.tz.gettz("Europe/Paris")
            ),
        }
    )
    cases["series_tz_utc"] = pd.Series(pd.date_range("2020", periods=3, tz="UTC"), name="t")
    cases["no_duplicate_labels_flag"] = _base().set_flags(allows_duplicate_labels=False)
    cases["series_no_duplicate_labels_flag"] = series.set_flags(allows_duplicate_labels=False)
    return cases


_FRAMES = _frames()
_EXAMPLES = itertools.count()


def _assert_same(got: Any, want: Any) -> None:
    """Equal values, dtypes, index, labels, freq and attrs (pandas' strictest comparison)."""
    assert type(got) is type(want)
    if isinstance(want, pd.DataFrame):
        pd.testing.assert_frame_equal(
            got, want, check_exact=True, check_freq=True, check_flags=True
        )
    else:
        pd.testing.assert_series_equal(
            got, want, check_exact=True, check_freq=True, check_flags=True
        )
    assert got.attrs == want.attrs
    assert got.flags == want.flags
    assert _tz_types(got) == _tz_types(want)
    for index in (got.index, getattr(got, "columns", None)):
        if isinstance(index, pd.MultiIndex):
            want_index = want.index if index is got.index else want.columns
            for a, b in zip(index.levels, want_index.levels, strict=True):
                assert a.equals(b)


def _tz_types(value: Any) -> list[Any]:
    """The class of each column's and index level's time zone (``==`` on dtypes ignores it)."""
    dtypes = [value.dtype] if isinstance(value, pd.Series) else list(value.dtypes)
    index = value.index
    dtypes += [index.get_level_values(i).dtype for i in range(index.nlevels)]
    return [type(getattr(dtype, "tz", None)) for dtype in dtypes]


class _Captured:
    """What the cached closure reads; keyed by a token, since a pyarrow Table is not keyable
    (a closure's captured values are part of its identity)."""

    def __init__(self, values: list[Any], calls: Calls) -> None:
        self.values, self.calls, self.token = values, calls, uuid.uuid4().hex

    def __cache_key__(self) -> str:
        return self.token


def _cached(decorator: Any, values: list[Any], calls: Calls) -> Any:
    captured = _Captured(values, calls)

    @decorator
    def make(i: int) -> Any:
        captured.calls(i)
        return captured.values[i]

    return make


def _entry_file(root: Path) -> Path:
    (path,) = root.rglob("*.tc")
    return path


def _formats(make: Any) -> dict[str, int]:
    return dict(get_stats(make.cache_parameters()["name"])["formats"])


@pytest.mark.parametrize("case", list(_FRAMES))
def test_pandas_objects_round_trip_exactly_through_arrow(tmp_path: Path, case: str) -> None:
    """Each pandas case comes back identical from an fcache hit, stored as an Arrow IPC file."""
    calls = Calls()
    want = _FRAMES[case]
    make = _cached(fcache(cache_dir=tmp_path), [want], calls)
    make(0)
    got = make(0)
    assert calls == [0]
    _assert_same(got, want)
    assert _formats(make) == {"arrow": 1}
    data = _entry_file(tmp_path).read_bytes()
    table = pa.ipc.open_file(pa.py_buffer(data[_HEADER_BLOCK:])).read_all()
    assert table.num_rows == len(want)


def test_a_hit_is_a_writable_frame_of_its_own(tmp_path: Path) -> None:
    """Changing a frame returned by a hit changes neither the cache nor the next hit."""
    calls = Calls()
    make = _cached(fcache(cache_dir=tmp_path), [_base()], calls)
    make(0)
    first = make(0)
    first.loc[0, "i"] = -1
    first.loc[0, "s"] = "changed"
    _assert_same(make(0), _base())
    assert calls == [0]


def test_mmap_mode_r_gives_read_only_views_of_the_file(tmp_path: Path) -> None:
    """With mmap_mode="r" a frame hit is read-only views of the mapped file, as arrays are."""
    calls = Calls()
    make = _cached(fcache(cache_dir=tmp_path, mmap_mode="r"), [_base()], calls)
    make(0)
    first = make(0)
    _assert_same(first, _base())
    with pytest.raises(ValueError, match="read-only"):
        first.loc[0, "i"] = -1
    assert not first["f"].to_numpy().flags.writeable
    _assert_same(make(0), _base())
    assert calls == [0]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
@pytest.mark.parametrize("kind", ["table", "frame_views", "frame"])
def test_live_hits_hold_no_file_descriptor(kind: str, tmp_path: Path) -> None:
    """Values that stay mapped (tables, mmap_mode="r" frames) keep no descriptor open:
    a program holding thousands of hits never runs out of them."""
    value: Any = pa.table({"a": np.arange(1000)}) if kind == "table" else _base()
    mode = "r" if kind == "frame_views" else None
    make = _cached(fcache(cache_dir=tmp_path, mmap_mode=mode), [value], Calls())
    make(0)
    before = len(list(Path("/proc/self/fd").iterdir()))
    kept = [make(0) for _ in range(300)]
    assert len(list(Path("/proc/self/fd").iterdir())) - before < 10
    if kind == "table":
        assert all(t.equals(value) for t in kept)
    else:
        _assert_same(kept[-1], value)
    for path in tmp_path.rglob("*.tc"):  # the entries go; the mapped hits stay readable
        path.unlink()
    if kind == "table":
        assert kept[0].equals(value)
    else:
        _assert_same(kept[0], value)


_PICKLED = {
    "object_mixed_types": pd.DataFrame({"o": pd.Series([1, "a", None] * 5, dtype=object)}),
    "object_lists": pd.DataFrame({"o": pd.Series([[1], [2, 3]] * 5, dtype=object)}),
    "object_str_with_nan": pd.DataFrame({"o": pd.Series(["a", None, np.nan] * 5, dtype=object)}),
    "object_decimals": pd.DataFrame({"o": pd.Series([__import__("decimal").Decimal("1.10")])}),
    "complex": pd.DataFrame({"c": np.arange(10) + 1j}),
    "sparse": pd.DataFrame({"sp": pd.arrays.SparseArray([0, 0, 1, 0, 2])}),
    "rows_without_columns": pd.DataFrame(index=pd.RangeIndex(3)),
    "object_index_of_tuples": pd.DataFrame(
        {"a": [1, 2]}, index=pd.Index([(1, 2), (3, 4)], tupleize_cols=False)
    ),
    # Arrow rebuilds a MultiIndex from its values: unused and unsorted levels would not
    # come back.
    "multiindex_unused_levels": pd.DataFrame(
        {"a": range(4)}, index=pd.MultiIndex.from_product([["a", "b"], [1, 2]])
    ).iloc[:2],
    "multiindex_unsorted_levels": pd.DataFrame(
        {"a": [1, 2]}, index=pd.MultiIndex(levels=[["b", "a"], [1]], codes=[[0, 1], [0, 0]])
    ),
    "string_python_storage": pd.DataFrame(
        {"s": pd.array(["a", None], dtype=pd.StringDtype("python", na_value=np.nan))}
    ),
}


@pytest.mark.parametrize("case", list(_PICKLED))
def test_what_arrow_cannot_hold_is_pickled_silently(
    tmp_path: Path, case: str, log: list[str]
) -> None:
    """A frame Arrow would change comes back identical through the pickler, with no warning."""
    calls = Calls()
    want = _PICKLED[case]
    make = _cached(fcache(cache_dir=tmp_path), [want], calls)
    make(0)
    _assert_same(make(0), want)
    assert calls == [0]
    assert _formats(make) == {"joblib": 1}
    assert log == []


def test_subclass_of_dataframe_keeps_its_type(tmp_path: Path) -> None:
    """A DataFrame subclass is not flattened to a DataFrame: it is pickled and keeps its class."""
    calls = Calls()
    want = _Sub({"a": [1, 2]})
    make = _cached(fcache(cache_dir=tmp_path), [want], calls)
    make(0)
    got = make(0)
    assert type(got) is _Sub
    pd.testing.assert_frame_equal(got, want)
    assert _formats(make) == {"joblib": 1}


class _Sub(pd.DataFrame):
    @property
    def _constructor(self) -> type[_Sub]:
        return _Sub


def test_pyarrow_table_round_trips_with_its_metadata(tmp_path: Path) -> None:
    """A pyarrow Table comes back equal, with its own schema metadata and no twat-cache key."""
    calls = Calls()
    want = pa.table({"a": [1, 2, None], "b": ["x", None, "z"]}).replace_schema_metadata({"k": "v"})
    make = _cached(fcache(cache_dir=tmp_path), [want], calls)
    make(0)
    got = make(0)
    assert calls == [0]
    assert got.equals(want)
    assert got.schema.metadata == {b"k": b"v"}
    assert _formats(make) == {"arrow": 1}


def test_polars_frame_round_trips(tmp_path: Path) -> None:
    """A polars DataFrame (categorical, enum, list, struct, decimal) comes back equal via Arrow."""
    pl = pytest.importorskip("polars")
    import datetime as dt
    import decimal

    calls = Calls()
    want = pl.DataFrame(
        {
            "a": [1, 2, None],
            "s": ["x", None, "z"],
            "c": pl.Series(["a", "b", "a"], dtype=pl.Categorical),
            "e": pl.Series(["lo", "hi", "lo"], dtype=pl.Enum(["lo", "hi"])),
            "t": [dt.datetime(2020, 1, 1)] * 3,
            "l": [[1], [2, 3], []],
            "st": [{"x": 1}, {"x": 2}, {"x": None}],
            "d": pl.Series([decimal.Decimal("1.50")] * 3, dtype=pl.Decimal(10, 2)),
        }
    )
    make = _cached(fcache(cache_dir=tmp_path), [want], calls)
    make(0)
    got = make(0)
    assert calls == [0]
    assert type(got) is pl.DataFrame
    assert got.schema == want.schema
    assert got.equals(want)
    assert _formats(make) == {"arrow": 1}


@pytest.mark.parametrize("case", ["mixed_dtypes", "multiindex_rows", "series"])
def test_compressed_arrow_files_round_trip(tmp_path: Path, case: str) -> None:
    """compress=True keeps the Arrow format (compressed buffers) and the exact round trip."""
    calls = Calls()
    want = _FRAMES[case]
    make = _cached(fcache(cache_dir=tmp_path, compress=True), [want], calls)
    make(0)
    _assert_same(make(0), want)
    assert calls == [0]
    assert _formats(make) == {"arrow": 1}


@pytest.mark.parametrize("secret", [None, "s3cret"])
@pytest.mark.parametrize("damage", ["flip", "truncate", "flip_header"])
def test_damaged_arrow_file_is_recomputed(
    tmp_path: Path, damage: str, secret: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flipped byte or a truncated Arrow file is a miss (CRC32, or HMAC with a secret)."""
    if secret is not None:
        monkeypatch.setenv("TWAT_CACHE_SECRET", secret)
    calls = Calls()
    want = _base(2000)
    make = _cached(fcache(cache_dir=tmp_path), [want], calls)
    make(0)
    _assert_same(make(0), want)  # read once: this process may now trust the file
    path = _entry_file(tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "flip_header":
        data[_HEADER_BLOCK + 8] ^= 0x01  # inside the Arrow file's own header
    else:
        del data[len(data) - 100 :]
    path.write_bytes(bytes(data))
    _assert_same(make(0), want)
    assert calls == [0, 0]
    _assert_same(make(0), want)  # stored afresh
    assert calls == [0, 0]


@pytest.mark.parametrize(
    "frame",
    [
        "pd.DataFrame({'a': range(3)}, index=pd.interval_range(0, 3, closed='left'))",
        "pd.DataFrame({'a': range(3)}, index=pd.period_range('2020-01', periods=3, freq='M'))",
        "pd.DataFrame({'iv': pd.interval_range(0.0, 3.0, closed='both')})",
    ],
)
def test_period_and_interval_frames_hit_exactly_in_a_fresh_process(
    tmp_path: Path, frame: str
) -> None:
    """pandas registers its period/interval Arrow types lazily: a fresh process must still
    read them back as they were (not as structs of their storage), and hit."""
    code = f"""
import sys
import pandas as pd
from twat_cache import fcache
calls = []
@fcache(cache_dir={str(tmp_path)!r}, name="pi")
def make(n):
    calls.append(n)
    return {frame}
got = make(1)
pd.testing.assert_frame_equal(got, {frame}, check_exact=True, check_index_type=True)
print(calls, type(got.index).__name__, [str(d) for d in got.dtypes])
"""
    first = run_python(code)
    second = run_python(code)
    assert first.startswith("[1] ")
    assert second == first.replace("[1] ", "[] ", 1)


def test_frames_without_pyarrow_go_through_joblib(tmp_path: Path) -> None:
    """Without pyarrow installed a DataFrame is still cached exactly (joblib's pickler)."""
    code = f"""
import sys
sys.modules["pyarrow"] = None
import pandas as pd
from twat_cache import fcache, get_stats
calls = []
@fcache(cache_dir={str(tmp_path)!r})
def make(n):
    calls.append(n)
    return pd.DataFrame({{"a": range(n), "s": [str(i) for i in range(n)]}})
first = make(3)
second = make(3)
pd.testing.assert_frame_equal(first, second)
print(calls, dict(get_stats(make.cache_parameters()["name"])["formats"]))
"""
    assert run_python(code).strip() == "[3] {'joblib': 1}"


def test_large_frame_under_bcache_is_an_arrow_file(tmp_path: Path) -> None:
    """A DataFrame of 1 MiB or more under bcache lives in its own Arrow file, back exactly."""
    calls = Calls()
    want = _base(40_000)
    assert want.memory_usage().sum() > FILE_MIN_BYTES
    make = _cached(bcache(cache_dir=tmp_path), [want], calls)
    make(0)
    _assert_same(make(0), want)
    assert calls == [0]
    assert len(list(tmp_path.rglob("values/*.tc"))) == 1
    assert _formats(make) == {"arrow": 1}


_COLUMN_DTYPES = [
    "int8",
    "uint64",
    "float32",
    "float64",
    "bool",
    "datetime64[ns]",
    "timedelta64[ns]",
    "complex128",  # not an Arrow type: pickled
]


@given(data=st.data())
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_generated_frames_round_trip(tmp_path: Path, data: st.DataObject) -> None:
    """Any generated frame comes back from fcache identical (through Arrow or the pickler)."""
    dtypes = data.draw(st.lists(st.sampled_from(_COLUMN_DTYPES), max_size=4))
    index = data.draw(
        st.one_of(
            pdst.range_indexes(max_size=12),
            pdst.indexes(dtype="int64", max_size=12),
            pdst.indexes(elements=st.text(max_size=3), max_size=12, unique=True),
        )
    )
    columns = [pdst.column(f"c{i}", dtype=dtype) for i, dtype in enumerate(dtypes)]
    frame = data.draw(pdst.data_frames(columns=columns, index=st.just(index)))
    calls = Calls()
    folder = f"example-{next(_EXAMPLES)}"  # examples share tmp_path: one cache each
    make = _cached(fcache(cache_dir=tmp_path, folder_name=folder), [frame], calls)
    make(0)
    _assert_same(make(0), frame)
    assert calls == [0]
    assert sum(_formats(make).values()) == 1


def test_arrow_file_copied_over_another_key_is_a_miss(tmp_path: Path) -> None:
    """An Arrow entry moved to another key's file name is refused (its tag covers the key)."""
    calls = Calls()
    frames = [_base(10), _base(20)]
    make = _cached(fcache(cache_dir=tmp_path), frames, calls)
    make(0)
    first = {p.name for p in tmp_path.rglob("*.tc")}
    make(1)
    (path_0,) = (p for p in tmp_path.rglob("*.tc") if p.name in first)
    (path_1,) = (p for p in tmp_path.rglob("*.tc") if p.name not in first)
    path_1.write_bytes(path_0.read_bytes())
    _assert_same(make(1), frames[1])
    assert calls == [0, 1, 1]
