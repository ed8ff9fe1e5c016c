"""Two arguments share a key only when a user would call them the same value.

One example per defect family of "never a wrong value": metadata that pandas
hashing drops, NumPy dtypes and layouts, numbers the encoder used to conflate
or crash on, memory keys, key hooks, self-reference and nesting, and the
encoder's own stack use.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import sys
import zoneinfo
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import memory_key, run_python
from twat_cache import CacheKeyError
from twat_cache.encoding import encode, namespaced_digest, stable_digest


def differ(a: Any, b: Any, *, typed: bool = False) -> bool:
    """Both values are keyable and their canonical bytes differ."""
    return encode(a, typed=typed) != encode(b, typed=typed)


# -- pandas metadata -------------------------------------------------------------------


def test_pandas_index_name_is_part_of_the_key():
    """Two Series differing only in their index name get different keys."""
    a = pd.Series([1, 2], index=pd.Index([10, 20], name="x"))
    b = pd.Series([1, 2], index=pd.Index([10, 20], name="y"))
    assert differ(a, b)
    assert not differ(a, a.copy())


def test_pandas_columns_name_is_part_of_the_key():
    """Two DataFrames differing only in the columns' name get different keys."""
    df = pd.DataFrame({"a": [1, 2]})
    assert differ(df, df.rename_axis(columns="fields"))
    assert not differ(df, pd.DataFrame({"a": [1, 2]}))


def test_pandas_index_dtype_is_part_of_the_key():
    """Equal labels in an int64 and an int32 (or float) index give different keys."""
    a = pd.Series([1, 2], index=pd.Index([0, 1], dtype="int64"))
    b = pd.Series([1, 2], index=pd.Index([0, 1], dtype="int32"))
    c = pd.Series([1, 2], index=pd.Index([0.0, 1.0]))
    assert differ(a, b)
    assert differ(a, c)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(
            pd.Series(pd.Categorical(["a", "b"], categories=["a", "b"])),
            pd.Series(pd.Categorical(["a", "b"], categories=["a", "b", "c"])),
            id="categories",
        ),
        pytest.param(
            pd.Series(pd.Categorical(["a", "b"], ordered=False)),
            pd.Series(pd.Categorical(["a", "b"], ordered=True)),
            id="ordered",
        ),
        pytest.param(pd.Series([1, 2], dtype="Int64"), pd.Series([1, 2]), id="nullable"),
        pytest.param(
            pd.Series(pd.array([1, None], dtype="Int64")),
            pd.Series(pd.array([1, 0], dtype="Int64")),
            id="NA",
        ),
        pytest.param(
            pd.Series(pd.date_range("2024-01-01", periods=2, tz="UTC")),
            pd.Series(pd.date_range("2024-01-01", periods=2, tz="UTC").tz_convert("Europe/London")),
            id="tz",
        ),
        pytest.param(
            pd.Series(
                [1, 2], index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")], names=["k", "v"])
            ),
            pd.Series(
                [1, 2], index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")], names=["k", "w"])
            ),
            id="multiindex-names",
        ),
        pytest.param(pd.Series([1, 2]), pd.Series([1, 2], index=pd.Index([0, 1])), id="index-type"),
        pytest.param(
            pd.Series([1, 2], index=pd.date_range("2024-01-01", periods=2, freq="D")),
            pd.Series([1, 2], index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"])),
            id="freq",
        ),
        pytest.param(pd.Series([1, 2], name="a"), pd.Series([1, 2], name="b"), id="name"),
        pytest.param(pd.Series([1, "1"]), pd.Series(["1", 1]), id="object-types"),
        pytest.param(pd.Series(["None", "x"]), pd.Series([None, "x"]), id="None-text"),
        pytest.param(pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [1]}), id="columns"),
    ],
)
def test_pandas_metadata_is_part_of_the_key(a, b):
    """Objects that print or compute differently never share a key; copies always do."""
    assert differ(a, b)
    assert not differ(a, a.copy(deep=True))


def test_pandas_attrs_are_part_of_the_key():
    """DataFrame.attrs travel with the frame, so they take part in its key."""
    a = pd.DataFrame({"a": [1]})
    b = a.copy()
    b.attrs["unit"] = "m"
    assert differ(a, b)


def test_pandas_missing_values_and_scalars_are_keyed():
    """pd.NA, pd.NaT and the masked constant are keyable and distinct from None."""
    values = [pd.NA, pd.NaT, np.ma.masked, None, pd.Timestamp(0), pd.Period("2024-01", "M")]
    assert len({encode(v) for v in values}) == len(values)


# -- NumPy ------------------------------------------------------------------------------


def test_masked_arrays_differing_in_mask_get_different_keys():
    """A masked array's mask is part of its value."""
    a = np.ma.array([1, 2, 3], mask=[0, 1, 0])
    b = np.ma.array([1, 2, 3], mask=[0, 0, 1])
    assert differ(a, b)
    assert differ(a, np.array([1, 2, 3]))
    assert not differ(a, np.ma.array([1, 2, 3], mask=[0, 1, 0]))


@pytest.mark.parametrize(
    "values",
    [
        np.array(["2024-01-01", "NaT"], dtype="datetime64[ns]"),
        np.array([1, 2], dtype="timedelta64[s]"),
        np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
        np.array(["ab", "c"]),
        np.array([b"ab", b"c"]),
        np.array([1 + 2j, -0.0j], dtype=np.complex64),
        np.array([True, False]),
        np.array([1, "a", None], dtype=object),
        np.array(7, dtype=np.int16),
        np.zeros((0, 3)),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.arange(20, dtype=np.uint8)[::3],
        np.array([1.5], dtype=np.float16),
        np.array([1.5], dtype=np.longdouble),
    ],
    ids=lambda v: f"{v.dtype}-{v.shape}",
)
def test_every_numpy_dtype_and_layout_is_keyed_by_content(values):
    """Same content, dtype and shape: same key, whatever the memory layout."""
    again = np.array(values, copy=True, order="C")
    assert not differ(values, again)
    assert memory_key(([values],)) == memory_key(([again],))
    if values.size:
        changed = again.copy()
        changed.flat[0] = changed.flat[-1] if values.size > 1 else np.zeros((), values.dtype)
        if changed.tobytes() != again.tobytes():
            assert differ(values, changed)
            assert memory_key(([values],)) != memory_key(([changed],))
    assert differ(values, values.reshape(-1, 1)) or values.size == 0


def test_structured_arrays_differing_in_field_names_get_different_keys():
    """dtype.str ('|V12') is the same for both; the field names are not."""
    a = np.zeros(2, dtype=[("a", "i4"), ("b", "f8")])
    b = np.zeros(2, dtype=[("x", "i4"), ("b", "f8")])
    assert differ(a, b)
    assert memory_key(([a],)) != memory_key(([b],))


def test_numpy_scalars_follow_typed():
    """np.float64(1.5) is 1.5 unless typed, as lru_cache would see them."""
    assert not differ(np.float64(1.5), 1.5)
    assert not differ(np.int64(3), 3)
    assert differ(np.float64(1.5), 1.5, typed=True)
    assert differ(np.float32(1.5), np.float64(1.5), typed=True)
    assert differ(np.datetime64(1, "ns"), 1)
    assert differ(np.datetime64(1, "ns"), np.datetime64(1, "us"))


# -- Python numbers and containers ------------------------------------------------------


def test_ints_beyond_the_str_limit_are_keyed():
    """Ints past 4,300 digits are encoded in binary, not refused by str()."""
    huge = 10**5000
    assert differ(huge, huge + 1)
    assert not differ(huge, 10**5000)
    assert differ(-huge, huge)
    assert differ(2**63, 2**63 - 1)


def test_numbers_share_a_key_only_when_equal():
    """Decimal exponent, -0.0 and NaN are part of a number's value; typed splits 1 and 1.0."""
    assert differ(Decimal("1.0"), Decimal("1.00"))
    assert differ(-0.0, 0.0)
    assert differ(-0.0, 0.0, typed=True)
    assert not differ(float("nan"), float("nan"))
    assert not differ(1, 1.0)
    assert not differ(True, 1)
    assert differ(1, 1.0, typed=True)
    assert differ(True, 1, typed=True)
    assert differ(1.5, 1)


def test_container_types_are_part_of_the_key():
    """str/bytes, tuple/list, set/frozenset, tuple/namedtuple never share a key."""
    point = collections.namedtuple("point", "x y")
    assert differ("a", b"a")
    assert differ((1,), [1])
    assert differ({1}, frozenset({1}))
    assert differ((1, 2), point(1, 2))
    assert not differ({"a": 1, "b": [2]}, {"b": [2], "a": 1})
    assert not differ([{1: (2, [3])}], [{1: (2, [3])}])
    assert differ(collections.OrderedDict(a=1, b=2), collections.OrderedDict(b=2, a=1))


def test_time_zones_are_part_of_a_datetime_key():
    """Two zones at the same offset today are different arguments (DST differs)."""
    london = dt.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/London"))
    utc = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    assert london == utc
    assert differ(london, utc)
    assert differ(pd.Timestamp(1, unit="ns"), pd.Timestamp(0))
    assert differ(pd.Timedelta(1, unit="ns"), pd.Timedelta(0))


def test_memoryviews_key_by_format_and_shape():
    """The same bytes read as int32 or as unsigned bytes are different values."""
    raw = bytes(8)
    assert differ(memoryview(raw), memoryview(raw).cast("i"))


# -- memory keys ------------------------------------------------------------------------


def test_memory_keys_obey_the_same_rule():
    """Frozen memory keys tell apart what the stable encoding tells apart."""
    assert memory_key(([Decimal("1.0")],)) != memory_key(([Decimal("1.00")],))
    assert memory_key(([-0.0],)) != memory_key(([0.0],))
    assert memory_key(({1},)) != memory_key(([frozenset({1})],))
    assert memory_key(([1],)) == memory_key(([1.0],))  # untyped, as lru_cache
    assert memory_key(([np.array(["2024"], "M8[D]")],)) != memory_key(
        ([np.array(["2025"], "M8[D]")],)
    )


def test_memory_key_tags_cannot_be_forged_by_user_tuples():
    """A list is never keyed like a tuple holding the list's tag or its name."""
    frozen = memory_key(([1, 2],))
    assert type(frozen) is tuple
    tag = frozen[0][0]
    assert memory_key(([1, 2],)) != (("list", (1, 2)),)
    assert memory_key(([1, 2],)) != ((repr(tag), (1, 2)),)
    assert memory_key(({"a": 1},)) != memory_key(([("a", 1)],))
    assert memory_key(([[1]],)) != memory_key((([1],),))


def test_memory_key_of_a_deep_value_never_raises_recursion_error():
    """A value too deep to freeze near the recursion limit is digested instead."""
    deep: Any = 1
    for _ in range(450):
        deep = [deep]
    other = [deep, 2]

    def descend(n: int) -> Any:
        return descend(n - 1) if n else (memory_key((deep,)), memory_key((other,)))

    key, other_key = descend(sys.getrecursionlimit() - 200)
    rebuilt: Any = 1
    for _ in range(450):
        rebuilt = [rebuilt]
    assert key == memory_key((rebuilt,))
    assert key != other_key


# -- key hooks ------------------------------------------------------------------------------


class Celsius:
    def __init__(self, degrees: float) -> None:
        self.degrees = degrees

    def __cache_key__(self) -> float:
        return self.degrees


class Fahrenheit(Celsius):
    pass


def test_cache_key_includes_the_class():
    """A subclass with an equal __cache_key__ never shares its parent's key."""
    assert differ(Celsius(10), Fahrenheit(10))
    assert not differ(Celsius(10), Celsius(10))
    assert memory_key(([Celsius(10)],)) != memory_key(([Fahrenheit(10)],))
    assert memory_key(([Celsius(10)],)) == memory_key(([Celsius(10)],))


# -- depth and stack --------------------------------------------------------------------


@dataclasses.dataclass
class Node:
    child: Any = None


def test_self_reference_is_a_cache_key_error_not_recursion_error():
    """Containers or objects that hold themselves raise CacheKeyError."""
    loop: dict[str, Any] = {}
    loop["me"] = loop
    with pytest.raises(CacheKeyError, match="refers to itself"):
        encode(loop)
    node = Node()
    node.child = node
    with pytest.raises(CacheKeyError, match="refers to itself"):
        encode(node)
    with pytest.raises(CacheKeyError):
        memory_key(([loop],))


def test_deep_but_finite_nesting_is_keyed():
    """450 levels of lists key fine; beyond the limit is a CacheKeyError."""
    value: Any = 1
    for _ in range(450):
        value = [value]
    assert not differ(value, [value][0])
    for _ in range(100):
        value = [value]
    with pytest.raises(CacheKeyError, match="nested more than"):
        encode(value)


def test_encoder_uses_at_most_two_frames():
    """encode() of a flat tuple, or of nested lists, uses two Python frames at most.

    A memoized recursive function builds keys deep in its own recursion; the
    encoder must not be what tips it over the recursion limit.
    """
    depth = [0, 0]

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            depth[0] += 1
            depth[1] = max(depth[1], depth[0])
        elif event == "return":
            depth[0] -= 1

    for value in [(1, 2, "a", 2.5, None), [[[[1], "a"]], -(2**62)], {"a": {"b": 1.0}}]:
        depth[:] = [0, 0]
        sys.setprofile(profile)
        try:
            encode(value)
        finally:
            sys.setprofile(None)
        assert depth[1] <= 2, value


def test_keys_build_near_the_recursion_limit():
    """Building a digest needs at most four levels of recursion budget, whatever the nesting.

    Measured as the recursion depth a function can reach before it builds a key
    of a nested value, against the depth it reaches before returning None (two
    Python frames, plus C calls such as ``bytes()`` that count while they run).
    """
    digest = namespaced_digest(("ns", "v"))
    value = (1, "a", [2.5, (3, [None])], {"k": None})

    def deepest(leaf: Any) -> int:
        def descend(n: int) -> Any:
            return descend(n - 1) if n else leaf()

        low, high = 0, sys.getrecursionlimit()
        while low < high:  # the largest n for which descend(n) works
            mid = (low + high + 1) // 2
            try:
                descend(mid)
            except RecursionError:
                high = mid - 1
            else:
                low = mid
        return low

    used = deepest(lambda: None) - deepest(lambda: digest(value))
    assert used <= 4  # the recursive encoder before needed 12
    assert digest(value) == stable_digest(("ns", "v"), value)


_DATA_SCRIPT = """
import numpy as np, pandas as pd
from twat_cache.encoding import stable_digest
frame = pd.DataFrame({
    "n": [1, 2], "s": ["a", None], "o": [1, "1"],
    "c": pd.Categorical(["x", "y"]), "t": pd.date_range("2024", periods=2, tz="UTC"),
}).rename_axis(index="i", columns="f")
print(stable_digest(frame, np.array(["2024-01-01"], "M8[s]"), {"k": {1.5, "z"}}, 10**5000))
"""


def test_data_keys_are_stable_across_processes():
    """pandas, NumPy, set and huge-int keys are the same in two interpreters with other seeds."""
    first = run_python(_DATA_SCRIPT, env={"PYTHONHASHSEED": "1"}).strip()
    second = run_python(_DATA_SCRIPT, env={"PYTHONHASHSEED": "999"}).strip()
    assert first == second
    assert len(first) == 32
