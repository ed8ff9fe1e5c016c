"""Every example runs and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_memory_example():
    """examples/memory.py hits on the second call and reports the stats."""
    out = run_example("memory.py")
    assert "first call: 1.08" in out
    assert "second call: 1.08" in out
    assert "hit faster than miss: True" in out
    assert "hits=1 misses=1" in out
    assert "deleted: True" in out


def test_async_example_fetches_once():
    """examples/async_fetch.py: 100 concurrent calls, one fetch, then a hit on aiocache."""
    out = run_example("async_fetch.py")
    assert "100 results, 1 fetch" in out
    assert "cached: content of https://example.org/a" in out
    assert "engine: aiocache" in out


def test_universal_example_explains_its_choices():
    """examples/universal.py: memory chain for a plain function, async chain for a coroutine."""
    out = run_example("universal.py")
    assert "parse: cachebox" in out
    assert "lookup: aiocache" in out
    assert "mcache's chain" in out
    assert "acache's chain" in out


def test_context_example_shares_entries_with_the_decorator():
    """examples/context.py: what the context stores is what the decorated function returns."""
    out = run_example("context.py")
    assert "in cache: True" in out
    assert "missing: no entry" in out
    assert "decorator sees: {'user': 'alice', 'theme': 'dark'}" in out
    assert "computed: {'user': 'bob', 'theme': 'light'}" in out


def test_redis_example_on_the_test_server(redis_url, monkeypatch):
    """examples/redis_shared.py hits on the server given by TWAT_CACHE_REDIS_URL."""
    monkeypatch.setenv("TWAT_CACHE_REDIS_URL", redis_url)
    out = run_example("redis_shared.py")
    assert "value: {'day': '2026-11-21', 'rows': 1234}" in out
    assert "engine: redis" in out
    assert "hits: 1" in out
