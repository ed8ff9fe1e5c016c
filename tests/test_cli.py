"""The command line, run as a user would: python -m twat_cache ..."""

from __future__ import annotations

import json
import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twat_cache", *args], capture_output=True, text=True, timeout=300
    )


def test_demo_prints_a_table_for_each_decorator():
    """demo exits 0 and shows engine, miss, hit, speed-up and entries per decorator."""
    done = run_cli("demo", "--limit", "200000")
    assert done.returncode == 0, done.stderr
    assert "speed-up" in done.stdout
    assert "entries" in done.stdout
    for decorator, engine in [
        ("mcache", "cachebox"),
        ("mcache", "cachetools"),
        ("mcache", "functools"),
        ("acache", "aiocache"),
        ("ucache", "cachebox"),
    ]:
        assert any(decorator in line and engine in line for line in done.stdout.splitlines())


def test_demo_json_reports_real_speedups():
    """demo --json gives numbers: every hit is faster than its miss."""
    done = run_cli("demo", "--limit", "200000", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {r["decorator"] for r in rows} >= {"mcache", "acache", "ucache"}
    for row in rows:
        assert row["hit"] < row["miss"]
        assert row["entries"] == 1


def test_demo_with_redis(redis_url):
    """demo --redis-url adds a row for the redis engine."""
    done = run_cli("demo", "--limit", "1000", "--json", "--redis-url", redis_url)
    assert done.returncode == 0, done.stderr
    assert "redis" in {r["engine"] for r in json.loads(done.stdout)}


def test_engines_lists_chains():
    """engines shows each engine and what the mcache chain picks now."""
    done = run_cli("engines")
    assert done.returncode == 0, done.stderr
    assert "mcache: cachebox > cachetools > functools  (picks cachebox now)" in done.stdout


def test_bad_command_exits_2():
    """An unknown command prints an error and exits 2."""
    done = run_cli("nonsense")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
