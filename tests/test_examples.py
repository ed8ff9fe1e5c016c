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
