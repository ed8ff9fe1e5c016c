"""Every example runs and prints what it promises."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from twat_cache.registry import registry

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def run_example(capsys, monkeypatch):
    """Run one example as ``__main__`` in this process (TWAT_CACHE_DIR is this test's own
    root), the registry emptied after; return what it printed."""

    def run(name: str) -> str:
        path = str(EXAMPLES / name)
        monkeypatch.setattr(sys, "argv", [path])
        capsys.readouterr()
        code: object = 0
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exc:  # an example may end early (no server to show)
            code = exc.code
        finally:
            registry.reset()
        assert code in (0, None), code
        return capsys.readouterr().out

    return run


def run_example_elsewhere(name: str) -> str:
    """Run one example in a fresh interpreter (TWAT_CACHE_DIR is this test's own root)."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_memory_example(run_example):
    """examples/memory.py hits on the second call and reports the stats."""
    out = run_example("memory.py")
    assert "first call: 1.08" in out
    assert "second call: 1.08" in out
    assert "hit faster than miss: True" in out
    assert "hits=1 misses=1" in out
    assert "deleted: True" in out


def test_async_example_fetches_once(run_example):
    """examples/async_fetch.py: 100 concurrent calls, one fetch, then a hit on aiocache."""
    out = run_example("async_fetch.py")
    assert "100 results, 1 fetch" in out
    assert "cached: content of https://example.org/a" in out
    assert "engine: aiocache" in out


def test_universal_example_explains_its_choices(run_example):
    """examples/universal.py: memory chain for a plain function, async chain for a coroutine."""
    out = run_example("universal.py")
    assert "parse: cachebox" in out
    assert "lookup: aiocache" in out
    assert "mcache's chain" in out
    assert "acache's chain" in out


def test_context_example_shares_entries_with_the_decorator(run_example):
    """examples/context.py: what the context stores is what the decorated function returns."""
    out = run_example("context.py")
    assert "in cache: True" in out
    assert "missing: no entry" in out
    assert "decorator sees: {'user': 'alice', 'theme': 'dark'}" in out
    assert "computed: {'user': 'bob', 'theme': 'light'}" in out


def test_redis_example_on_the_test_server(run_example, redis_url, monkeypatch):
    """examples/redis_shared.py hits on the server given by TWAT_CACHE_REDIS_URL."""
    monkeypatch.setenv("TWAT_CACHE_REDIS_URL", redis_url)
    out = run_example("redis_shared.py")
    assert "value: {'day': '2026-11-21', 'rows': 1234}" in out
    assert "engine: redis" in out
    assert "hits: 1" in out


def test_disk_example_hits_in_a_second_process(cache_root):
    """examples/disk.py: the child process reads the parent's entry from disk."""
    out = run_example_elsewhere("disk.py")
    assert "parent hits: 0" in out
    assert "child: 3 rows in 0.0" in out  # a hit, not the 0.3 s query
    assert "engine=diskcache" in out
    assert "entries on disk: 1" in out
    assert any(cache_root.rglob("*"))


def test_large_arrays_example_maps_the_file(run_example):
    """examples/large_arrays.py: equal values, a read-only memory map, the joblib engine."""
    out = run_example("large_arrays.py")
    assert "same values: True" in out
    assert "memory-mapped: True read-only: True" in out
    assert "engine: joblib" in out


def test_custom_backend_example_stores_bytes(run_example):
    """examples/custom_backend.py: one stored entry, then a hit, through the user's Backend."""
    out = run_example("custom_backend.py")
    assert "engine: backend" in out
    assert "stored keys: 1" in out
    assert "hits: 1" in out


def test_per_call_example(run_example):
    """examples/per_call.py: again recomputes, cache_results=False stores nothing, paths move."""
    out = run_example("per_call.py")
    assert "summary of a #1 | summary of a #1" in out
    assert "summary of a #2" in out
    assert "summary of b #3 | summary of b #4" in out
    assert "stored elsewhere: True" in out
    assert "stored next to the data: True" in out
    assert "runs: ['a', 'a', 'b', 'b', 'c']" in out
