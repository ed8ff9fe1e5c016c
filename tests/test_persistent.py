"""bcache and fcache: persistence, the wrapper controls, expiry, size limits, per-call control."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import Calls, run_python
from twat_cache import (
    Backend,
    ConfigurationError,
    bcache,
    clear_cache,
    fcache,
    get_stats,
    mcache,
)
from twat_cache._types import MISSING
from twat_cache.config import CacheConfig
from twat_cache.engines import get_engine_manager
from twat_cache.engines.persistent import MANIFEST, Manifest, PersistentEngine
from twat_cache.registry import registry

BCACHE_ENGINES = ["diskcache", "klepto"]


def entry_files(root: Path) -> list[Path]:
    """Every file under ``root`` except lock files and manifests, in a stable order."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and ".locks" not in p.parts and p.name not in (".lock", MANIFEST)
    )


# -- bcache ----------------------------------------------------------------------------


@pytest.mark.parametrize("engine", BCACHE_ENGINES)
def test_bcache_hits_and_controls(engine: str, calls: Calls) -> None:
    """A bcache hit returns the stored value; every API.md section 2 control works."""

    @bcache(engine=engine)
    def load(x: int, scale: float = 1.0) -> dict[str, float]:
        calls(x)
        return {f"k{i}": i * x * scale for i in range(10)}

    assert load.engine.name == engine
    first = load(3)
    assert load(3) == first
    assert load(x=3, scale=1.0) == first  # spelling and defaults give one key
    assert calls == [3]
    assert load.cache_info().hits == 2
    assert load.cache_info().misses == 1
    assert load.cache_info().currsize == 1
    params = load.cache_parameters()
    assert params["engine"] == engine
    assert params["name"].endswith("load")
    assert load.__wrapped__(3) == first
    assert load.cache_bypass(3) == first
    assert calls == [3, 3, 3]
    assert load.cache_refresh(3) == first
    assert calls == [3, 3, 3, 3]
    assert load.cache_delete(3) is True
    assert load.cache_delete(3) is False
    load(3)
    assert calls == [3, 3, 3, 3, 3]
    load.cache_clear()
    assert load.cache_info() == (0, 0, 128, 0)
    load(3)
    assert calls[-1] == 3
    assert len(calls) == 6


@pytest.mark.parametrize("engine", BCACHE_ENGINES)
def test_bcache_caches_none_and_never_exceptions(engine: str, calls: Calls) -> None:
    """None is a cached result; an exception from the function propagates and is not stored."""

    @bcache(engine=engine)
    def maybe(x: int) -> int | None:
        calls(x)
        if x < 0:
            raise ValueError(x)
        return None

    assert maybe(1) is None
    assert maybe(1) is None
    assert calls == [1]
    for _ in range(2):
        with pytest.raises(ValueError, match="-1"):
            maybe(-1)
    assert calls == [1, -1, -1]


@pytest.mark.parametrize("engine", BCACHE_ENGINES)
def test_bcache_survives_the_process(engine: str, cache_root: Path) -> None:
    """A fresh Python process finds the entries another process wrote, under a short str key."""
    code = f"""
from twat_cache import bcache
@bcache(engine={engine!r}, folder_name="shared")
def area(w, h):
    print("computed")
    return {{"area": w * h}}
print(area(3, 4), area.engine.name)
"""
    assert run_python(code).split() == ["computed", "{'area':", "12}", engine]
    assert run_python(code).split() == ["{'area':", "12}", engine]
    assert (cache_root / "shared" / "__main__.area").is_dir()


def test_diskcache_stores_bytes_under_the_digest(cache_root: Path) -> None:
    """diskcache rows hold a 32-hex str key and raw bytes (mode 1), never a pickled object."""
    import sqlite3

    @bcache
    def square(x: int) -> int:
        return x * x

    square(7)
    db = next(cache_root.rglob("cache.db"))
    rows = sqlite3.connect(db).execute("SELECT key, raw, mode, typeof(value) FROM Cache").fetchall()
    assert len(rows) == 1
    key, raw, mode, kind = rows[0]
    assert isinstance(key, str)
    assert len(key) == 32
    assert int(key, 16) >= 0
    assert (raw, mode, kind) == (1, 1, "blob")


def test_klepto_takes_over_without_diskcache(cache_root: Path) -> None:
    """With diskcache's import failing, bcache falls back to klepto, persists and logs why."""
    code = """
import sys
sys.modules["diskcache"] = None
from loguru import logger
logger.remove()
logger.add(sys.stdout, level="WARNING", format="{message}")
from twat_cache import bcache
@bcache(folder_name="fb", ttl=60, size_limit=10**6, compress=True)
def area(w, h):
    print("computed")
    return w * h
print(area(3, 4), area(3, 4), area.engine.name, area.cache_info().hits)
"""
    out = run_python(code)
    assert "wanted engine 'diskcache', using 'klepto'" in out
    assert out.splitlines()[-2:] == ["computed", "12 12 klepto 1"]
    assert run_python(code).splitlines()[-1] == "12 12 klepto 2"
    assert list((cache_root / "fb" / "__main__.area").glob("K_*/output.json"))


@pytest.mark.parametrize("engine", BCACHE_ENGINES)
def test_ttl_expires_entries(engine: str, calls: Calls) -> None:
    """An entry older than ttl is recomputed."""

    @bcache(engine=engine, ttl=0.3)
    def stamp(x: int) -> int:
        calls(x)
        return x

    stamp(1)
    stamp(1)
    assert calls == [1]
    time.sleep(0.45)
    stamp(1)
    assert calls == [1, 1]


@pytest.mark.parametrize("engine", BCACHE_ENGINES)
def test_size_limit_is_enforced(engine: str, cache_root: Path) -> None:
    """Storing far more than size_limit bytes keeps the folder near the limit, dropping the
    oldest entries first."""
    limit = 200_000

    @bcache(engine=engine, size_limit=limit)
    def blob(i: int) -> bytes:
        return bytes([i % 251]) * 10_000

    for i in range(100):
        assert blob(i) == bytes([i % 251]) * 10_000
    stats = get_stats(blob.cache_parameters()["name"])
    assert stats["size"] < 40
    # diskcache culls ten entries per write once over the limit, and SQLite's write-ahead
    # log (checkpointed every 4 MB) is not part of the limit: measure the entries' store.
    stored = [p for p in entry_files(cache_root) if not p.name.endswith(("-wal", "-shm"))]
    assert sum(p.stat().st_size for p in stored) < 2 * limit
    hits = blob.cache_info().hits
    blob(99)
    assert blob.cache_info().hits == hits + 1  # the newest entry is kept


@pytest.mark.parametrize("engine", BCACHE_ENGINES)
def test_compress_shrinks_stored_values(engine: str, cache_root: Path) -> None:
    """compress=True stores a compressible value in far fewer bytes and reads it back intact."""
    value = "abc" * 100_000

    @bcache(engine=engine, folder_name="plain")
    def plain() -> str:
        return value

    @bcache(engine=engine, folder_name="packed", compress=True)
    def packed() -> str:
        return value

    assert plain() == packed() == value
    registry.reset()  # close the engines so the sizes on disk are final

    def size(folder: str) -> int:
        return sum(p.stat().st_size for p in entry_files(cache_root / folder))

    assert size("packed") * 10 < size("plain")
    assert packed() == value


def test_code_change_starts_a_fresh_cache(cache_root: Path) -> None:
    """Editing the body starts a fresh cache; comments, docstrings and formatting do not."""
    template = """
from twat_cache import bcache
@bcache(folder_name="code")
def f(x):
{body}
print(f(2))
"""
    original = '    print("computed")\n    return x + 1'
    reformatted = (
        '    """Now documented."""\n\n    # a comment\n    print( "computed" )\n'
        "    return (x +\n            1)"
    )
    edited = '    print("computed")\n    return x + 2'
    src = cache_root.parent / "script.py"

    def run(body: str) -> list[str]:
        src.write_text(template.format(body=body))
        return run_python(
            f"import runpy; runpy.run_path({str(src)!r}, run_name='__main__')"
        ).split()

    assert run(original) == ["computed", "3"]
    assert run(original) == ["3"]
    assert run(reformatted) == ["3"]
    assert run(edited) == ["computed", "4"]
    assert run(edited) == ["4"]


def test_version_starts_a_fresh_cache(calls: Calls) -> None:
    """Changing version= gives new entries; the same version finds the old ones."""

    def make(version: str) -> object:
        @bcache(version=version, name="versioned")
        def f(x: int) -> int:
            calls(x)
            return x

        return f

    make("1")(5)
    registry.reset()
    make("1")(5)
    assert calls == [5]
    registry.reset()
    make("2")(5)
    assert calls == [5, 5]


def test_shared_name_shares_entries(calls: Calls) -> None:
    """Two functions given the same name and version share one persistent cache."""

    @bcache(name="shared-area", version="1")
    def area(w: int, h: int) -> int:
        calls("a")
        return w * h

    @bcache(name="shared-area", version="1")
    def area_again(w: int, h: int) -> int:
        calls("b")
        return w * h

    assert area(2, 3) == area_again(2, 3) == 6
    assert calls == ["a"]


def test_shared_name_without_version_is_still_code_versioned(calls: Calls) -> None:
    """With name= and no version=, an edited body (a re-run notebook cell) starts afresh."""

    def define(factor: int) -> object:
        namespace: dict[str, object] = {"bcache": bcache, "calls": calls}
        source = (  # the same function, as a notebook cell run twice with an edit between
            f"@bcache(name='cell')\ndef area(w, h):\n"
            f"    calls({factor})\n    return w * h * {factor}\n"
        )
        exec(source, namespace)
        return namespace["area"]

    first, edited, again = define(1), define(2), define(2)
    assert first(2, 3) == 6  # type: ignore[operator]
    assert edited(2, 3) == 12  # type: ignore[operator]
    assert again(2, 3) == 12  # type: ignore[operator]
    assert calls == [1, 2]


def test_folders_are_created_on_first_write(cache_root: Path) -> None:
    """Decorating and missing create nothing; the first stored value creates the folder."""

    @bcache(folder_name="lazy")
    def f(x: int) -> int:
        return x

    @fcache(folder_name="lazy-files")
    def g(x: int) -> int:
        return x

    assert not cache_root.exists()
    assert f.cache_info().currsize == 0
    assert f.cache_delete(1) is False
    assert not cache_root.exists()
    f(1)
    g(1)
    assert (cache_root / "lazy").is_dir()
    assert (cache_root / "lazy-files").is_dir()


# -- per-call control -------------------------------------------------------------------


def test_call_options(calls: Calls, tmp_path: Path) -> None:
    """again= recomputes, cache_results=False skips storing, cache_path= uses another folder;
    none of them reach the function."""

    @bcache(call_options=True)
    def f(x: int, **extra: int) -> int:
        calls(x)
        assert "again" not in extra
        return x * 10

    assert f(1) == 10
    assert f(1) == 10
    assert calls == [1]
    assert f(1, again=True) == 10
    assert calls == [1, 1]
    assert f(2, cache_results=False) == 20
    assert f(2, cache_results=False) == 20
    assert calls == [1, 1, 2, 2]
    other = tmp_path / "elsewhere"
    assert f(1, cache_path=str(other)) == 10
    assert calls == [1, 1, 2, 2, 1]
    assert f(1, cache_path=other) == 10
    assert calls == [1, 1, 2, 2, 1]
    assert any(other.rglob("cache.db"))
    assert f(3, y=4) == 30  # **kwargs still works


def test_call_options_reject_clashing_parameters() -> None:
    """A function with a parameter named like a call option cannot use call_options."""
    with pytest.raises(ConfigurationError, match="again"):

        @bcache(call_options=True)
        def f(x: int, again: bool = False) -> int:
            return x


def test_location_arg_stores_next_to_the_data(calls: Calls, tmp_path: Path) -> None:
    """location_arg="datapath" stores each call's results under <datapath>/.twat_cache."""

    @bcache(location_arg="datapath")
    def summarize(datapath: str, n: int) -> int:
        calls(n)
        return n + 1

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert summarize(str(a), 1) == 2
    assert summarize(str(a), 1) == 2
    assert calls == [1]
    assert any((a / ".twat_cache").rglob("cache.db"))
    assert not (b / ".twat_cache").exists()
    assert summarize.cache_delete(str(a), 1) is True
    summarize(str(a), 1)
    assert calls == [1, 1]
    with pytest.raises(ConfigurationError, match="location_arg"):

        @bcache(location_arg="nope")
        def g(x: int) -> int:
            return x


# -- fcache ---------------------------------------------------------------------------------


def test_fcache_arrays_round_trip_in_npy_layout(calls: Calls, cache_root: Path) -> None:
    """NumPy arrays come back equal (dtype, shape, order), stored without pickle."""

    @fcache
    def make(kind: str) -> np.ndarray:
        calls(kind)
        if kind == "fortran":
            return np.asfortranarray(np.arange(12.0).reshape(3, 4))
        if kind == "ints":
            return np.arange(10, dtype=np.int16)
        if kind == "empty":
            return np.empty((0, 3))
        return np.arange(6.0).reshape(2, 3)[:, ::2]  # not contiguous

    for kind in ("fortran", "ints", "empty", "strided"):
        first = make(kind)
        again = make(kind)
        assert again.dtype == first.dtype
        assert again.shape == first.shape
        np.testing.assert_array_equal(again, first)
    assert make(kind="fortran").flags.f_contiguous
    assert calls == ["fortran", "ints", "empty", "strided"]
    data = entry_files(cache_root)[0].read_bytes()
    assert data[:4] == b"TWC1"
    assert data[64:70] == b"\x93NUMPY"


def test_fcache_mmap_mode_returns_a_read_only_map(calls: Calls) -> None:
    """mmap_mode="r" hands back a read-only memory map of the stored array."""

    @fcache(mmap_mode="r")
    def big(n: int) -> np.ndarray:
        calls(n)
        return np.arange(n, dtype=np.float64)

    first = big(1000)
    mapped = big(1000)
    assert isinstance(mapped, np.memmap)
    assert not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, first)
    with pytest.raises(ValueError, match="read-only"):
        mapped[0] = 1.0
    assert calls == [1000]


def test_fcache_pandas_and_other_values(calls: Calls) -> None:
    """pandas objects go through joblib; any other value through the serializer."""

    @fcache(compress=True)
    def frame(n: int) -> object:
        calls(n)
        if n == 0:
            return {"plain": [1, 2, 3]}
        if n == 1:
            return pd.Series(np.arange(5.0), name="s")
        if n == 2:
            return np.arange(50_000.0)  # compressed arrays go through joblib too
        return pd.DataFrame({"a": np.arange(n), "b": [str(i) for i in range(n)]})

    for n in (0, 1, 2, 20):
        first = frame(n)
        again = frame(n)
        if isinstance(first, pd.DataFrame):
            pd.testing.assert_frame_equal(again, first)
        elif isinstance(first, pd.Series):
            pd.testing.assert_series_equal(again, first)
        elif isinstance(first, np.ndarray):
            np.testing.assert_array_equal(again, first)
        else:
            assert again == first
    assert calls == [0, 1, 2, 20]


def test_fcache_ttl_and_size_limit(calls: Calls, cache_root: Path) -> None:
    """fcache entries expire after ttl, and size_limit keeps the folder under the limit."""

    @fcache(ttl=0.3, folder_name="ttl")
    def short(x: int) -> np.ndarray:
        calls(x)
        return np.full(10, x)

    short(1)
    short(1)
    assert calls == [1]
    time.sleep(0.45)
    short(1)
    assert calls == [1, 1]

    @fcache(size_limit=100_000, folder_name="limit")
    def chunk(i: int) -> np.ndarray:
        return np.full(2_000, i, dtype=np.float64)  # 16 kB each

    for i in range(30):
        chunk(i)
    total = sum(p.stat().st_size for p in entry_files(cache_root / "limit"))
    assert total <= 100_000
    assert 3 <= chunk.cache_info().currsize <= 7
    np.testing.assert_array_equal(chunk(29), np.full(2_000, 29.0))


# -- custom backends ----------------------------------------------------------------------


class DictBackend(Backend):
    """A Backend over a dict, counting instances to show when it is created."""

    created = 0

    def __init__(self) -> None:
        DictBackend.created += 1
        self.data: dict[str, bytes] = {}
        self.ttls: list[float | None] = []

    def get(self, key: str) -> bytes:
        return self.data[key]

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        assert isinstance(value, bytes)
        self.ttls.append(ttl)
        self.data[key] = value

    def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    def clear(self) -> None:
        self.data.clear()


def test_backend_object(calls: Calls) -> None:
    """A Backend instance stores framed bytes under 32-hex keys; all controls work."""
    store = DictBackend()

    @bcache(backend=store, ttl=60)
    def f(x: int) -> list[int]:
        calls(x)
        return [x, x]

    assert f(2) == f(2) == [2, 2]
    assert calls == [2]
    assert f.engine.name == "backend"
    (key,) = store.data
    assert len(key) == 32
    assert store.data[key][:4] == b"TWC1"
    assert store.ttls == [60.0]
    assert f.cache_delete(2) is True
    f.cache_clear()
    assert store.data == {}


def test_backend_factory_is_resolved_on_first_call(calls: Calls) -> None:
    """A zero-argument callable (here the class) is called on the first call, not before."""
    DictBackend.created = 0

    @bcache(backend=DictBackend)
    def f(x: int) -> int:
        calls(x)
        return x

    assert DictBackend.created == 0
    assert f(1) == f(1) == 1
    assert DictBackend.created == 1
    assert calls == [1]


def test_backend_must_be_a_backend() -> None:
    """backend= that is neither a Backend nor a factory is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="backend"):
        bcache(backend=42)(lambda: 1)


# -- registry -------------------------------------------------------------------------------


def test_clear_cache_removes_only_registered_entries(cache_root: Path) -> None:
    """clear_cache() empties the persistent caches it knows and leaves other files alone."""

    @bcache(folder_name="mine")
    def a(x: int) -> int:
        return x

    @fcache(folder_name="mine")
    def b(x: int) -> np.ndarray:
        return np.arange(x)

    @mcache
    def c(x: int) -> int:
        return x

    a(1)
    b(3)
    c(1)
    stranger = cache_root / "mine" / "someone-else.txt"
    stranger.write_text("keep me")
    assert get_stats(a.cache_parameters()["name"])["bytes"] > 0
    clear_cache()
    assert a.cache_info().currsize == b.cache_info().currsize == c.cache_info().currsize == 0
    assert stranger.read_text() == "keep me"
    assert not list((cache_root / "mine").rglob("*.tc"))


def test_get_stats_reports_entries_and_bytes(calls: Calls) -> None:
    """get_stats() gives size in entries, bytes on disk, hits, misses and errors."""

    @bcache(name="stats-demo")
    def f(x: int) -> str:
        return "x" * 1000 * x

    for i in range(1, 4):
        f(i)
    f(1)
    stats = get_stats("stats-demo")
    assert stats["size"] == 3
    assert stats["bytes"] > 6000
    assert (stats["hits"], stats["misses"], stats["errors"]) == (1, 3, 0)
    assert stats["engine"] == "diskcache"


# -- manifest and housekeeping (what the command line relies on) ---------------------------

DISK_ENGINES = ["diskcache", "klepto", "joblib"]


def disk_engine(name: str, **options: Any) -> PersistentEngine:
    """A persistent engine of that name, built directly from a config."""
    cls = get_engine_manager().engine_class(name)
    assert issubclass(cls, PersistentEngine)
    return cls(CacheConfig(name=f"house.{name}", **options))


@pytest.mark.parametrize("engine_name", DISK_ENGINES)
def test_first_write_leaves_a_manifest(engine_name: str, cache_root: Path) -> None:
    """The first stored entry writes twat_cache.json (0o600) naming the cache and engine."""
    engine = disk_engine(engine_name, folder_name="deep/er", ttl=30, size_limit=10**6)
    manifest_path = engine.folder / MANIFEST
    try:
        assert engine.get("0" * 32) is MISSING
        assert not manifest_path.exists()  # reads create nothing
        engine.set("0" * 32, {"v": 1})
        assert manifest_path.stat().st_mode & 0o777 == 0o600
        manifest = Manifest.read(engine.folder)
        assert manifest.name == f"house.{engine_name}"
        assert manifest.engine == engine_name
        assert manifest.folder_name == "deep/er"
        assert (manifest.ttl, manifest.size_limit) == (30.0, 10**6)
        assert engine.folder == cache_root / "deep" / "er" / f"house.{engine_name}"
        engine.clear()
        assert manifest_path.exists()  # clear drops entries; the cache stays findable
        assert len(engine) == 0
    finally:
        engine.close()


@pytest.mark.parametrize("engine_name", DISK_ENGINES)
def test_prune_drops_expired_entries(engine_name: str) -> None:
    """expired() counts entries past their deadline; prune() removes exactly those."""
    engine = disk_engine(engine_name)
    try:
        engine.set("a" * 32, 1, ttl=0.05)
        engine.set("b" * 32, 2, ttl=0.05)
        engine.set("c" * 32, 3)
        engine.set("d" * 32, 4, ttl=3600)
        time.sleep(0.1)
        assert len(engine) == 4
        assert engine.expired() == 2
        assert engine.prune() == 2
        assert len(engine) == 2
        assert engine.expired() == 0
        assert engine.get("c" * 32) == 3
        assert engine.get("d" * 32) == 4
        assert engine.prune() == 0
        assert engine.last_write() is not None
    finally:
        engine.close()


@pytest.mark.parametrize("engine_name", ["klepto", "joblib"])
def test_prune_enforces_size_limit(engine_name: str) -> None:
    """prune() deletes the oldest entries until the cache fits its size_limit."""
    big = disk_engine(engine_name)
    try:
        for i in range(6):
            big.set(f"{i:032x}", "x" * 4000)
            time.sleep(0.01)  # distinct mtimes: the oldest go first
    finally:
        big.close()
    limited = disk_engine(engine_name, size_limit=10_000)
    try:
        assert len(limited) == 6
        removed = limited.prune()
        kept = len(limited)
        assert removed == 6 - kept
        assert 1 <= kept < 6
        present = [limited.get(f"{i:032x}") is not MISSING for i in range(6)]
        assert present == [False] * removed + [True] * kept  # the oldest went first
        entries = [p for p in limited.folder.iterdir() if p.name not in (".lock", MANIFEST)]
        assert sum(file_bytes(p) for p in entries) <= 10_000
    finally:
        limited.close()


def file_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (a klepto entry)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
