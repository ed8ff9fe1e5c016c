"""Keys are stable across processes, canonical across spellings, and refuse the unkeyable."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.conftest import memory_key, run_python
from twat_cache import CacheKeyError, mcache
from twat_cache.encoding import DigestKey, encode, stable_digest

_KEY_SCRIPT = """
import datetime as dt, pathlib
from twat_cache.encoding import stable_digest
print(stable_digest("ns", (1, 2.5, "text", b"raw", None, True, (1, [2, 3]),
      {"b": 1, "a": {3, 4}}, frozenset({"x"}), dt.datetime(2024, 1, 2, 3, 4, 5),
      pathlib.PurePosixPath("/tmp/x"))))
"""


def test_key_is_stable_across_processes_and_hash_seeds():
    """Two interpreters with different PYTHONHASHSEED compute the same digest."""
    first = run_python(_KEY_SCRIPT, env={"PYTHONHASHSEED": "1"}).strip()
    second = run_python(_KEY_SCRIPT, env={"PYTHONHASHSEED": "4242"}).strip()
    assert first == second
    assert len(first) == 32  # 128-bit digest


def test_dicts_are_order_insensitive_and_sets_sorted():
    """Insertion order of dicts and iteration order of sets do not change the key."""
    assert encode({"a": 1, "b": 2}) == encode({"b": 2, "a": 1})
    assert encode({3, 1, 2}) == encode({2, 3, 1})
    assert encode({"a": 1}) != encode({"a": 2})


def test_distinct_values_give_distinct_keys():
    """Values that differ in type or content never share a key."""
    values = [1, "1", b"1", (1,), [1], {1}, None, "", (), 1.5, "a", ("a", "b"), ("ab",)]
    digests = {stable_digest(v) for v in values}
    assert len(digests) == len(values)


def test_typed_distinguishes_int_and_float():
    """Without typed, 1 and 1.0 share a key (as in lru_cache); with typed they do not."""
    assert stable_digest(1) == stable_digest(1.0)
    assert stable_digest(1, typed=True) != stable_digest(1.0, typed=True)
    assert stable_digest(True, typed=True) != stable_digest(1, typed=True)


def test_numpy_arrays_are_hashed_by_content():
    """Two 5,000-element arrays differing in one middle element get different keys."""
    a = np.arange(5000, dtype=np.float64)
    b = a.copy()
    b[2500] += 1e-9
    assert stable_digest(a) != stable_digest(b)
    assert stable_digest(a) == stable_digest(a.copy())
    assert stable_digest(a) != stable_digest(a.astype(np.float32))
    assert stable_digest(a) != stable_digest(a.reshape(50, 100))
    assert stable_digest(a[::2]) == stable_digest(np.ascontiguousarray(a[::2]))


def test_pandas_objects_are_hashed_by_content():
    """DataFrames and Series key by values, index, columns and dtypes."""
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    same = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    changed = df.copy()
    changed.loc[1, "a"] = 20
    assert stable_digest(df) == stable_digest(same)
    assert stable_digest(df) != stable_digest(changed)
    assert stable_digest(df) != stable_digest(df.rename(columns={"a": "c"}))
    assert stable_digest(df["a"]) != stable_digest(df["a"].astype("float64"))


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Model(BaseModel):
    name: str
    tags: list[str]


class WithCacheKey:
    def __init__(self, ident: str) -> None:
        self.ident = ident

    def __cache_key__(self) -> str:
        return self.ident


class WithPersistentHash:
    def __init__(self, value: int) -> None:
        self.value = value

    def __persistent_hash__(self) -> int:
        return self.value


def test_supported_types_key_by_value():
    """Enums, dataclasses, pydantic models, datetimes, paths and key hooks key by value."""
    pairs = [
        (Color.RED, Color.RED, Color.BLUE),
        (Point(1, 2), Point(1, 2), Point(2, 1)),
        (Model(name="a", tags=["x"]), Model(name="a", tags=["x"]), Model(name="a", tags=[])),
        (dt.date(2024, 1, 1), dt.date(2024, 1, 1), dt.date(2024, 1, 2)),
        (dt.timedelta(seconds=3), dt.timedelta(seconds=3), dt.timedelta(seconds=4)),
        (Path("/a/b"), Path("/a/b"), Path("/a/c")),
        (WithCacheKey("k"), WithCacheKey("k"), WithCacheKey("j")),
        (WithPersistentHash(5), WithPersistentHash(5), WithPersistentHash(6)),
    ]
    for a, same, other in pairs:
        assert stable_digest(a) == stable_digest(same), a
        assert stable_digest(a) != stable_digest(other), a


def test_unkeyable_object_raises_cache_key_error():
    """A plain object cannot be keyed by content: CacheKeyError, also a TypeError."""
    with pytest.raises(CacheKeyError):
        stable_digest(object())
    with pytest.raises(TypeError):
        stable_digest([object()])


def test_self_referencing_value_raises_cache_key_error():
    """A list that contains itself does not recurse forever."""
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(CacheKeyError, match="refers to itself"):
        stable_digest(loop)


def test_memory_keys_freeze_containers_by_value():
    """Unhashable containers become hashable keys equal exactly when the values are equal."""

    assert memory_key(([1, 2], {"a": {3}})) == memory_key(([1, 2], {"a": {3}}))
    assert memory_key(([1, 2],)) != memory_key(((1, 2),))
    assert memory_key(([1, 2],)) != memory_key(([2, 1],))
    assert memory_key(({"a": 1, "b": 2},)) == memory_key(({"b": 2, "a": 1},))
    assert memory_key((np.zeros(3),)) != memory_key((np.ones(3),))


def test_digest_key_never_equals_a_plain_string():
    """A content digest used as a memory key cannot collide with a str argument."""
    digest = stable_digest([1, 2])
    assert DigestKey(digest) != digest
    assert DigestKey(digest) == DigestKey(digest)
    assert len({DigestKey(digest), digest}) == 2


def test_spellings_of_one_call_share_one_entry(calls):
    """Positional, keyword and omitted-default spellings hit the same entry."""

    @mcache
    def f(a, b, c=1.0, *, d="x"):
        calls(a)
        return (a, b, c, d)

    results = {f(1, 2), f(1, b=2), f(a=1, b=2), f(1, 2, 1.0), f(1, 2, c=1.0, d="x"), f(b=2, a=1)}
    assert results == {(1, 2, 1.0, "x")}
    assert len(calls) == 1
    assert f.cache_info().hits == 5


def test_var_args_and_kwargs_are_keyed(calls):
    """*args and **kwargs (order-insensitive) take part in the key."""

    @mcache
    def f(*args, **kwargs):
        calls(args)
        return (args, sorted(kwargs.items()))

    f(1, 2, x=1, y=2)
    f(1, 2, y=2, x=1)
    f(2, 1, x=1, y=2)
    assert len(calls) == 2


def test_typed_option(calls):
    """typed=True keeps f(1) and f(1.0) apart; the default shares them like lru_cache."""

    @mcache(typed=True)
    def typed(x):
        calls(x)
        return x

    @mcache
    def untyped(x):
        calls(x)
        return x

    typed(1), typed(1.0), untyped(1), untyped(1.0)
    assert calls == [1, 1.0, 1]


def test_ignore_leaves_arguments_out_of_the_key(calls):
    """Ignored arguments (clients, loggers) do not change the key and need not be keyable."""

    @mcache(ignore=("client",))
    def fetch(url, client):
        calls(url)
        return url.upper()

    assert fetch("a", object()) == "A"
    assert fetch("a", client=object()) == "A"
    assert len(calls) == 1


def test_custom_key_function(calls):
    """key= receives the call's arguments and its result replaces the default key."""

    @mcache(key=lambda user, verbose=False: user.lower())
    def greet(user, verbose=False):
        calls(user)
        return f"hi {user}"

    assert greet("Bob") == "hi Bob"
    assert greet("BOB", verbose=True) == "hi Bob"
    assert len(calls) == 1


def test_unhashable_arguments_are_keyed_by_content(calls):
    """Lists, dicts and arrays work with memory engines, keyed by content."""

    @mcache
    def total(values, weights=None):
        calls(len(values))
        return sum(values)

    assert total([1, 2, 3], {"w": [1]}) == 6
    assert total([1, 2, 3], {"w": [1]}) == 6
    assert total([1, 2, 4], {"w": [1]}) == 7
    assert total(np.arange(3)) == 3
    assert total(np.arange(3)) == 3
    assert len(calls) == 3
    assert total.cache_info().hits == 2


def test_unkeyable_argument_error_names_it():
    """An unhashable argument that cannot be keyed names itself and suggests ignore=."""

    class Handle:
        __hash__ = None  # unhashable, and not a type keyed by content

    @mcache
    def f(data, options):
        return 1

    with pytest.raises(CacheKeyError, match=r"'options'.*ignore="):
        f([1], [Handle()])


_plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4) | st.binary(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        | st.tuples(inner, inner)
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_plain_values, _plain_values), min_size=1, max_size=6))
def test_mcache_returns_each_arguments_own_result_once_lists_and_dicts_were_seen(calls):
    """After calls with lists and dicts (which switch the wrapper to converting keys first),
    every call still returns the result of its own arguments, and equal arguments hit."""
    computed: list[tuple[object, object]] = []

    @mcache(maxsize=None)
    def f(a, b):
        computed.append((a, b))
        return repr((a, b))

    for a, b in calls + calls:
        assert f(a, b) == repr((a, b))
    distinct = []
    for pair in calls:
        if pair not in distinct:
            distinct.append(pair)
    # equal values (by Python's ==, as lru_cache) are computed once
    assert len(computed) <= len(distinct)
    assert f.cache_info().hits >= len(calls)


def test_converting_wrapper_keeps_plain_hits_and_counts():
    """A function first called with a list keeps serving plain arguments from the cache
    and counts every hit; a mutated list is a new key, never the old result."""
    calls = []

    @mcache
    def f(a, b=0):
        calls.append(a)
        return sum(a) if isinstance(a, list) else a * 2

    items = [1, 2, 3]
    assert f(items) == 6
    assert f([1, 2, 3]) == 6
    items.append(4)
    assert f(items) == 10
    assert f(5) == 10
    assert f(5) == 10
    assert f({"k": 1}.get("k")) == 2
    assert len(calls) == 4
    assert f.cache_info().hits == 2


class _HashRaises:
    def __hash__(self):
        raise ValueError("no hash today")


class _EqRaises:
    def __hash__(self):
        return 1

    def __eq__(self, other):
        raise RuntimeError("no eq today")


class _KeyRaises:
    def __cache_key__(self):
        raise RuntimeError("key boom")


class _HashNotInt:
    def __persistent_hash__(self):
        return "abc"


@pytest.mark.parametrize("engine", ["memory", "disk"])
def test_an_argument_whose_own_hooks_raise_is_a_named_cache_key_error(engine, calls):
    """__hash__, __eq__, __cache_key__ raising, or a __persistent_hash__ that is no int: a
    CacheKeyError naming the argument (raw ValueError/RuntimeError escaped before, memory and
    disk alike), and the function never runs with a key it cannot trust."""
    from twat_cache import bcache

    deco = mcache if engine == "memory" else bcache

    @deco
    def f(x):
        calls(1)
        return 1

    if engine == "memory":
        assert f(_EqRaises()) == 1  # nothing to compare it with yet: interned
    cases = [
        (_HashRaises(), "_HashRaises"),
        (_EqRaises(), "_EqRaises"),
        (_KeyRaises(), r"_KeyRaises.__cache_key__\(\) raised RuntimeError: key boom"),
        (_HashNotInt(), r"_HashNotInt.__persistent_hash__\(\) returned 'abc', not an int"),
    ]
    if engine == "disk":
        cases = cases[:1] + cases[2:]  # _EqRaises is refused by content already
    for value, match in cases:
        with pytest.raises(CacheKeyError, match=rf"argument 'x': .*{match}"):
            f(value)
