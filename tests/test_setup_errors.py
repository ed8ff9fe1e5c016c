"""Setups that could never cache are refused at decoration, naming the field and the value.

And setups that only look odd (a long name, ``size_limit=10e9``) simply work.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.conftest import Calls, run_python
from twat_cache import (
    CacheContext,
    ConfigurationError,
    acache,
    bcache,
    create_cache_config,
    fcache,
    get_stats,
    mcache,
    ucache,
)

DECORATORS = [mcache, bcache, fcache, acache, ucache]


# -- cache_dir ------------------------------------------------------------------------------


@pytest.mark.parametrize("decorator", DECORATORS)
def test_cache_dir_that_is_a_file_is_refused(decorator: Any, tmp_path: Path) -> None:
    """cache_dir naming a file, or a path under one, fails at decoration naming both."""
    file = tmp_path / "data.txt"
    file.write_text("")
    for bad, why in [
        (file, "is a file"),
        (file / "x", f"lies under {str(file)!r}"),
        (file / "x" / "y", f"lies under {str(file)!r}"),
        (Path("/etc/passwd/x"), "lies under '/etc/passwd'"),
    ]:
        with pytest.raises(ConfigurationError, match="cache_dir") as info:
            decorator(cache_dir=bad)
        assert repr(str(bad)) in str(info.value)
        assert why in str(info.value)


def test_cache_dir_to_be_created_is_accepted(tmp_path: Path) -> None:
    """A cache_dir that does not exist yet is created by the first write, not refused."""

    @bcache(cache_dir=tmp_path / "new" / "root")
    def f(x: int) -> int:
        return x

    assert not (tmp_path / "new").exists()
    assert f(3) == 3
    assert (tmp_path / "new" / "root").is_dir()


def test_cache_dir_not_writable_is_refused() -> None:
    """A cache_dir this user cannot write (or create) fails at decoration.

    Root may write anywhere, so the check runs in a subprocess that drops to
    the ``nobody`` user after importing twat_cache (as root only).
    """
    if os.geteuid() != 0:
        pytest.skip("dropping to another user needs root")
    shared = Path(tempfile.mkdtemp())  # pytest's tmp_path is 0o700: nobody cannot enter it
    try:
        shared.chmod(0o755)
        code = f"""
import os
from twat_cache import ConfigurationError, bcache, create_cache_config
import twat_cache.engines.disk, diskcache
os.setgid(65534)
os.setuid(65534)
for path in [{str(shared)!r}, {str(shared / "sub" / "root")!r}]:
    try:
        bcache(cache_dir=path)
    except ConfigurationError as exc:
        print(exc)
print(create_cache_config(cache_dir="/tmp").cache_dir)
"""
        lines = run_python(code).splitlines()
    finally:
        shared.rmdir()
    assert lines[0] == (
        f"CacheConfig.cache_dir: invalid value {str(shared)!r}: is not writable by this user"
    )
    assert f"would be created in {str(shared)!r}, which is not writable" in lines[1]
    assert lines[2] == "/tmp"


def test_bad_env_root_is_a_fault_not_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, calls: Calls
) -> None:
    """TWAT_CACHE_DIR is every cache's default (memory ones too): a bad one never stops
    a decoration; a persistent cache under it counts a fault and still returns values."""
    file = tmp_path / "file"
    file.write_text("")
    monkeypatch.setenv("TWAT_CACHE_DIR", str(file))

    @mcache
    def m(x: int) -> int:
        return x

    @bcache
    def b(x: int) -> int:
        calls(x)
        return x

    assert m(1) == 1
    assert b(1) == 1
    assert b(1) == 1
    assert calls == [1, 1]
    assert get_stats(b.cache_parameters()["name"])["errors"] >= 1  # type: ignore[attr-defined]


# -- names too long for a file system -------------------------------------------------------------


@pytest.mark.parametrize("decorator", [bcache, fcache])
@pytest.mark.parametrize(
    "options",
    [
        {"name": "n" * 300},
        {"name": "é" * 200},
        {"name": "mod." + "f" * 1000},
        {"folder_name": "d" * 300},
        {"folder_name": "a/" + "ü" * 200 + "/b"},
        {"folder_name": "x" * 256, "name": "y" * 256},
    ],
    ids=["long-name", "long-utf8-name", "very-long-name", "long-folder", "long-level", "both"],
)
def test_long_names_are_shortened_and_work(
    decorator: Any, options: dict[str, str], calls: Calls, cache_root: Path
) -> None:
    """A name or folder_name too long for the file system still caches (and hits)."""

    @decorator(**options)
    def f(x: int) -> int:
        calls(x)
        return x * 2

    assert [f(1), f(1), f(2)] == [2, 2, 4]
    assert calls == [1, 2]
    levels = [p.name for p in cache_root.rglob("*")]
    assert levels
    assert max(len(name.encode()) for name in levels) <= 255


def test_two_long_names_sharing_a_prefix_stay_apart(calls: Calls) -> None:
    """Shortening keeps a digest of the full name: two long names never share a folder."""
    prefix = "p" * 300

    @bcache(name=prefix + "1")
    def one(x: int) -> str:
        calls("one")
        return "one"

    @bcache(name=prefix + "2")
    def two(x: int) -> str:
        calls("two")
        return "two"

    assert (one(1), two(1), one(1), two(1)) == ("one", "two", "one", "two")
    assert one.engine.folder != two.engine.folder  # type: ignore[attr-defined]
    assert calls == ["one", "two"]


# -- mmap_mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["r+", "w+"])
def test_writable_mmap_mode_is_refused(mode: str) -> None:
    """mmap_mode 'r+'/'w+' would write into the cache and cannot read it: refused, saying why."""
    with pytest.raises(ConfigurationError, match="mmap_mode") as info:
        fcache(mmap_mode=mode)
    assert repr(mode) in str(info.value)
    assert "'r' (read-only)" in str(info.value)
    assert "'c' (copy-on-write" in str(info.value)


@pytest.mark.parametrize("mode", ["w", "rw", "R", "", 1])
def test_other_mmap_modes_are_refused(mode: object) -> None:
    """Anything but 'r', 'c' or None is a ConfigurationError naming mmap_mode."""
    with pytest.raises(ConfigurationError, match="mmap_mode"):
        fcache(mmap_mode=mode)


def test_copy_on_write_map_leaves_the_cache_alone(calls: Calls) -> None:
    """mmap_mode='c' returns a writable map whose changes never reach the cached entry."""

    @fcache(mmap_mode="c")
    def f(n: int) -> Any:
        calls(n)
        return np.arange(n, dtype=np.int64)

    f(1000)
    first = f(1000)
    assert isinstance(first, np.memmap)
    first[:] = -1
    assert np.array_equal(f(1000), np.arange(1000))
    assert calls == [1000]


# -- typed serializer ------------------------------------------------------------------------


class Plain:
    """Neither a pydantic model nor a dataclass: pydantic has no schema for it."""


class WithPlain(BaseModel, arbitrary_types_allowed=True):
    """Validates, but pydantic cannot write the Plain field as JSON."""

    p: Plain


@pytest.mark.parametrize(
    ("annotation", "named"),
    [
        (Plain, "Plain"),
        (list[Plain], "list[tests.test_setup_errors.Plain]"),
        (dict[str, Plain], "dict[str, tests.test_setup_errors.Plain]"),
        (threading.Lock, "allocate_lock"),
        (socket.socket, "socket"),
        (collections.abc.Iterator[int], "Iterator[int]"),
        (collections.abc.Callable[[int], int], "Callable[[int], int]"),
        (WithPlain, "WithPlain"),
    ],
)
def test_typed_serializer_refuses_types_pydantic_cannot_store(annotation: Any, named: str) -> None:
    """serializer='typed' with a return type pydantic cannot write as JSON fails at decoration."""

    def f() -> None: ...

    f.__annotations__["return"] = annotation
    with pytest.raises(ConfigurationError, match="serializer") as info:
        bcache(serializer="typed")(f)
    assert named in str(info.value)
    assert "serializer='pickle'" in str(info.value)


@dataclasses.dataclass
class Point:
    x: int


class Model(BaseModel):
    when: datetime.datetime
    points: list[Point]


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (int, 3),
        (list[Point], [Point(1)]),
        (Model, Model(when=datetime.datetime(2026, 1, 1), points=[Point(2)])),
        (set[int], {1, 2}),
        (dict[str, float] | None, None),
    ],
)
def test_typed_serializer_accepts_what_pydantic_stores(
    annotation: Any, value: Any, calls: Calls
) -> None:
    """Types pydantic can write as JSON are accepted and come back equal (and typed)."""

    def f(x: int) -> Any:
        calls(x)
        return value

    f.__annotations__["return"] = annotation
    cached = bcache(serializer="typed")(f)
    assert cached(1) == value
    assert cached(1) == value
    assert calls == [1]


# -- size_limit ----------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=2**53))
def test_size_limit_accepts_integral_floats(n: int) -> None:
    """size_limit=10e9 (a float naming whole bytes, cachecache's spelling) is an int of it."""
    limit = create_cache_config(size_limit=float(n)).size_limit
    assert type(limit) is int
    assert limit == n


@given(
    st.one_of(
        st.floats().filter(lambda v: not (v.is_integer() and v > 0)),
        st.integers(max_value=0),
        st.booleans(),
        st.text(),
    )
)
def test_size_limit_refuses_the_rest(bad: object) -> None:
    """Non-integral, non-finite, non-positive, bool or text size_limit is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="size_limit"):
        create_cache_config(size_limit=bad)


def test_size_limit_float_works_on_disk(calls: Calls) -> None:
    """@bcache(size_limit=10e9) caches as size_limit=10_000_000_000 would."""

    @bcache(size_limit=10e9)
    def f(x: int) -> int:
        calls(x)
        return x

    assert (f(1), f(1)) == (1, 1)
    assert calls == [1]
    assert f.cache_parameters()["size_limit"] == 10_000_000_000  # type: ignore[attr-defined]


# -- unknown options ----------------------------------------------------------------------


@pytest.mark.parametrize("decorator", DECORATORS)
@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("maxsizee", "maxsize"),
        ("max_size", "maxsize"),
        ("tll", "ttl"),
        ("folder", "folder_name"),
        ("cachedir", "cache_dir"),
        ("serialiser", "serializer"),
        ("prefered_engine", "preferred_engine"),
        ("sizelimit", "size_limit"),
        ("mmapmode", "mmap_mode"),
    ],
)
def test_unknown_option_suggests_the_closest(decorator: Any, typo: str, meant: str) -> None:
    """An unknown option is named with its value and the closest valid option."""
    with pytest.raises(ConfigurationError) as info:
        decorator(**{typo: 10})
    assert str(info.value) == f"unknown option {typo!r}=10: did you mean {meant!r}?"


def test_unknown_option_with_nothing_close() -> None:
    """A name like no option is named without a guess."""
    with pytest.raises(ConfigurationError) as info:
        mcache(zzzqqq=1)
    assert str(info.value) == "unknown option 'zzzqqq'=1"


def test_context_suggests_too() -> None:
    """CacheContext reports misspelt options the same way."""
    with pytest.raises(ConfigurationError, match="did you mean 'maxsize'"):
        CacheContext(maxsizee=3)
