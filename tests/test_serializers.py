"""Serializers (pickle, json, typed, custom) and signed values."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import pytest
from pydantic import BaseModel

from tests.conftest import Calls
from twat_cache import (
    ConfigurationError,
    SerializationError,
    Serializer,
    bcache,
    fcache,
    get_stats,
)
from twat_cache.registry import registry


class Point(BaseModel):
    x: int
    when: dt.datetime
    tags: set[str]


class Report(BaseModel):
    points: list[Point]
    made: dt.date


def test_json_serializer(calls: Calls) -> None:
    """serializer="json" round-trips JSON values (tuples come back as lists)."""

    @bcache(serializer="json")
    def f(x: int) -> dict[str, object]:
        calls(x)
        return {"x": x, "pair": (1, 2), "nested": {"ok": True}}

    assert f(1) == {"x": 1, "pair": (1, 2), "nested": {"ok": True}}
    assert f(1) == {"x": 1, "pair": [1, 2], "nested": {"ok": True}}
    assert calls == [1]


def test_typed_serializer_round_trips_exactly(calls: Calls) -> None:
    """serializer="typed" gives back pydantic models, datetimes and sets, equal and typed."""
    when = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc)

    def make() -> object:
        @bcache(serializer="typed")
        def report(n: int) -> Report:
            calls(n)
            points = [Point(x=i, when=when, tags={"a", str(i)}) for i in range(n)]
            return Report(points=points, made=dt.date(2024, 1, 2))

        return report

    first = make()(3)  # type: ignore[operator]
    registry.reset()  # a new engine: the value must come from disk, not memory
    again = make()(3)  # type: ignore[operator]
    assert calls == [3]
    assert again == first
    assert isinstance(again.points[0], Point)
    assert again.points[1].when == when
    assert again.points[2].tags == {"a", "2"}


def test_typed_serializer_lists_of_models(calls: Calls) -> None:
    """A list of models and a set of datetimes come back as those types."""

    @fcache(serializer="typed")
    def points() -> list[Point]:
        calls(0)
        return [Point(x=1, when=dt.datetime(2020, 1, 1), tags=set())]

    @bcache(serializer="typed")
    def stamps() -> set[dt.datetime]:
        calls(1)
        return {dt.datetime(2021, 2, 3, 4, 5)}

    assert points() == points() == [Point(x=1, when=dt.datetime(2020, 1, 1), tags=set())]
    assert stamps() == stamps() == {dt.datetime(2021, 2, 3, 4, 5)}
    assert calls == [0, 1]


def test_typed_serializer_needs_a_return_annotation() -> None:
    """serializer="typed" without a return annotation fails at decoration."""
    with pytest.raises(ConfigurationError, match="return annotation"):

        @bcache(serializer="typed")
        def f(x: int):  # type: ignore[no-untyped-def]
            return x


def test_custom_serializer_object(calls: Calls) -> None:
    """Any object with dumps/loads is used as the serializer."""

    class Upper:
        def dumps(self, value: str) -> bytes:
            return value.upper().encode()

        def loads(self, data: bytes) -> str:
            return data.decode() + "!"

    assert isinstance(Upper(), Serializer)

    @bcache(serializer=Upper())
    def shout(word: str) -> str:
        calls(word)
        return word

    assert shout("hey") == "hey"
    assert shout("hey") == "HEY!"
    assert calls == ["hey"]


@pytest.mark.parametrize("decorator", [bcache, fcache])
def test_unserializable_value_is_returned_uncached(decorator: object, calls: Calls) -> None:
    """A value the serializer cannot handle is returned, not stored, and counted in errors."""

    @decorator(serializer="json")  # type: ignore[operator]
    def f(x: int) -> object:
        calls(x)
        return {1, 2, x}

    assert f(3) == {1, 2, 3}
    assert f(3) == {1, 2, 3}
    assert calls == [3, 3]
    stats = get_stats(f.cache_parameters()["name"])
    assert stats["errors"] == 2
    assert stats["size"] == 0

    @decorator
    def g() -> object:
        calls("g")
        return lambda: 1  # not picklable

    assert g()() == 1
    assert calls == [3, 3, "g"]


def test_serialization_error_from_custom_serializer(calls: Calls) -> None:
    """A serializer raising SerializationError on load makes a miss, then a rewrite."""

    class Fussy:
        loads_fail = True

        def dumps(self, value: int) -> bytes:
            return str(value).encode()

        def loads(self, data: bytes) -> int:
            if Fussy.loads_fail:
                raise SerializationError("no")
            return int(data)

    @bcache(serializer=Fussy())
    def f(x: int) -> int:
        calls(x)
        return x

    f(1)
    f(1)
    assert calls == [1, 1]
    Fussy.loads_fail = False
    f(1)
    assert calls == [1, 1]
    assert get_stats(f.cache_parameters()["name"])["errors"] == 1


# -- signed values ------------------------------------------------------------------------


class Bomb:
    """Unpickling a Bomb writes a marker file: proof that something was unpickled."""

    marker: Path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (Path(str(self.marker)), "exploded"))  # type: ignore[return-value]


def _forge(db: Path, payload: bytes) -> None:
    """Replace every stored value's payload, keeping the frame header and tag."""
    import sqlite3

    con = sqlite3.connect(db)
    for key, value in con.execute("SELECT key, value FROM Cache").fetchall():
        head = value[: 14 + 32]
        con.execute("UPDATE Cache SET value = ? WHERE key = ?", (head + payload, key))
    con.commit()
    con.close()


@pytest.mark.parametrize("decorator", [bcache, fcache])
def test_signed_values_round_trip(
    decorator: object, calls: Calls, monkeypatch: pytest.MonkeyPatch, cache_root: Path
) -> None:
    """With TWAT_CACHE_SECRET set, values are stored with an HMAC-SHA256 and read back."""
    monkeypatch.setenv("TWAT_CACHE_SECRET", "s3cret")

    @decorator  # type: ignore[operator]
    def f(x: int) -> list[int]:
        calls(x)
        return [x]

    assert f(1) == f(1) == [1]
    assert calls == [1]


def test_tampered_value_is_never_unpickled(
    calls: Calls, monkeypatch: pytest.MonkeyPatch, cache_root: Path, tmp_path: Path
) -> None:
    """A stored value whose HMAC fails is dropped and recomputed, never unpickled."""
    monkeypatch.setenv("TWAT_CACHE_SECRET", "s3cret")
    marker = tmp_path / "exploded.txt"
    Bomb.marker = marker

    @bcache
    def f(x: int) -> int:
        calls(x)
        return x * 2

    assert f(4) == 8
    registry.reset()
    _forge(next(cache_root.rglob("cache.db")), pickle.dumps(Bomb()))

    @bcache
    def f(x: int) -> int:  # a new process would re-decorate the same way
        calls(x)
        return x * 2

    assert f(4) == 8
    assert not marker.exists()
    assert calls == [4, 4]
    assert get_stats(f.cache_parameters()["name"])["errors"] == 1
    assert f(4) == 8  # rewritten with a valid tag
    assert calls == [4, 4]


def test_secret_change_makes_old_entries_misses(
    calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries written without a secret (or with another one) are not trusted with it."""

    def make() -> object:
        @bcache(name="secret-switch")
        def f(x: int) -> int:
            calls(x)
            return x

        return f

    make()(1)  # type: ignore[operator]
    registry.reset()
    monkeypatch.setenv("TWAT_CACHE_SECRET", "one")
    make()(1)  # type: ignore[operator]
    registry.reset()
    monkeypatch.setenv("TWAT_CACHE_SECRET", "two")
    make()(1)  # type: ignore[operator]
    registry.reset()
    make()(1)  # type: ignore[operator]
    assert calls == [1, 1, 1]
