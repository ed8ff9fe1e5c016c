"""The command line, run as a user would: python -m twat_cache ..."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twat_cache", *args], capture_output=True, text=True, timeout=300
    )


def test_demo_prints_a_table_for_each_memory_engine():
    """demo exits 0 and reports miss time, hit time and speed-up per engine."""
    done = run_cli("demo", "--limit", "200000")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("decorator"))
    assert header.split() == ["decorator", "engine", "miss", "hit", "speed-up"]
    for engine in ("cachebox", "cachetools", "functools"):
        row = next(line for line in lines if line.startswith("mcache") and engine in line)
        assert row.rstrip().endswith("x")


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
