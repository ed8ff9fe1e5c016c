"""Damaged, deleted, unwritable and full caches never give a wrong value or break a call."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import Calls, run_python
from twat_cache import bcache, fcache, get_stats
from twat_cache.registry import registry

N = 6
CASES = [("bcache", "diskcache"), ("bcache", "klepto"), ("fcache", "joblib")]


def expected(i: int) -> Any:
    """The true result for ``i``: arrays and plain values mixed."""
    if i % 2:
        return {"i": i, "payload": list(range(i * 50))}
    return np.arange(i * 1000, dtype=np.float64) + i


def same(a: Any, b: Any) -> bool:
    if isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return bool(a == b)


def make(kind: str, engine: str, calls: Calls) -> Callable[[int], Any]:
    """The same function, decorated afresh (as a new process would)."""
    decorator = bcache if kind == "bcache" else fcache

    @decorator(folder_name="damaged", engine=engine)
    def value(i: int) -> Any:
        calls(i)
        return expected(i)

    assert value.engine.name == engine
    return value


def _truncate(path: Path, rng: random.Random) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path, rng: random.Random) -> None:
    path.write_bytes(b"")


def _zero(path: Path, rng: random.Random) -> None:
    path.write_bytes(bytes(path.stat().st_size))


def _garble(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    if not data:
        return
    for _ in range(6):
        start = rng.randrange(len(data))
        for j in range(start, min(start + 48, len(data))):
            data[j] = rng.randrange(256)
    path.write_bytes(bytes(data))


def _flip_one_byte(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    if data:
        spot = len(data) - 1 - rng.randrange(min(len(data), 200))  # in the payload
        data[spot] ^= 0x55
        path.write_bytes(bytes(data))


def _delete(path: Path, rng: random.Random) -> None:
    path.unlink()


DAMAGE = {
    "truncate": _truncate,
    "empty": _empty,
    "zero": _zero,
    "garble": _garble,
    "flip": _flip_one_byte,
    "delete": _delete,
}


def damage_everything(root: Path, how: str, seed: int = 0, live: bool = False) -> int:
    """Apply one kind of damage to every file under ``root``; the number of files hit.

    ``live`` spares SQLite's ``-shm`` file: it is shared memory mapped by every open
    connection, and shrinking it under them is a SIGBUS in any SQLite program.
    """
    rng = random.Random(seed)
    files = [p for p in root.rglob("*") if p.is_file() and not (live and p.name.endswith("-shm"))]
    for path in files:
        DAMAGE[how](path, rng)
    return len(files)


@pytest.mark.parametrize("how", list(DAMAGE))
@pytest.mark.parametrize(("kind", "engine"), CASES)
def test_every_file_damaged_still_gives_right_values(
    kind: str, engine: str, how: str, calls: Calls, cache_root: Path
) -> None:
    """Damage every file of a closed cache: each value is recomputed, right, and rewritten."""
    value = make(kind, engine, calls)
    for i in range(N):
        assert same(value(i), expected(i))
    assert calls == list(range(N))
    registry.reset()  # close every file, as at the end of a process
    assert damage_everything(cache_root, how) > 0

    calls.clear()
    value = make(kind, engine, calls)
    for i in range(N):
        assert same(value(i), expected(i)), (how, i)
    # Damage may hit bytes no value depends on (free pages, padding): those stay hits.
    assert set(calls) <= set(range(N))
    if how in ("truncate", "empty", "zero", "delete"):
        assert sorted(calls) == list(range(N))
    stats = get_stats(value.cache_parameters()["name"])  # type: ignore[attr-defined]
    if how != "delete":
        assert stats["errors"] >= 1 or (engine == "diskcache" and how == "empty")

    calls.clear()
    for i in range(N):  # everything was rewritten
        assert same(value(i), expected(i))
    assert calls == []


@pytest.mark.parametrize("how", ["garble", "flip", "truncate", "zero", "delete"])
@pytest.mark.parametrize(("kind", "engine"), CASES)
def test_damage_while_in_use(
    kind: str, engine: str, how: str, calls: Calls, cache_root: Path
) -> None:
    """Damage under an open cache: reads stay right (a stale page is still the right value)."""
    value = make(kind, engine, calls)
    for i in range(N):
        value(i)
    damage_everything(cache_root, how, seed=1, live=True)
    for _ in range(2):
        for i in range(N):
            assert same(value(i), expected(i)), (how, i)


def test_unwritable_cache_folder(
    calls: Calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache root that cannot be created: every call still returns the right value.

    (Given as ``cache_dir=`` it is refused at decoration: see test_setup_errors.py.)
    """
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TWAT_CACHE_DIR", str(blocker / "cache"))
    for decorator in (bcache, fcache):

        @decorator
        def f(x: int) -> list[int]:
            calls(x)
            return [x]

        assert f(1) == [1]
        assert f(1) == [1]
        assert f.cache_info().currsize == 0
        assert get_stats(f.cache_parameters()["name"])["errors"] >= 2
    assert calls == [1, 1, 1, 1]


@pytest.mark.parametrize(("kind", "engine"), CASES)
def test_full_disk(kind: str, engine: str) -> None:
    """Writes failing for lack of space (a file size limit) never reach the caller."""
    code = f"""
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG, do not kill
from twat_cache import {kind}, get_stats
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
calls = []

@{kind}(engine={engine!r})
def big(n):
    calls.append(n)
    return "x" * n

for _ in range(2):
    assert big(10) == "x" * 10
    assert big(500_000) == "x" * 500_000
print(calls, get_stats()["__main__.big"]["errors"] > 0)
"""
    assert run_python(code).split() == ["[10,", "500000,", "500000]", "True"]
