"""Many processes at once: one computation per cold key, and a killed holder blocks no one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_python

# Three processes racing on one cold key already compute it more than once without the lock.
WORKERS = 3

_WORKER = """
import os, sys, time
from pathlib import Path
from twat_cache import {decorator}

shared = Path(sys.argv[1])
me = sys.argv[2]

# The function logs the process id, not the global ``me``: a module-level value the function
# reads is part of its code version, and differs from process to process.
@{decorator}(folder_name="stampede", engine={engine!r})
def expensive(x):
    with open(shared / "computed.log", "a") as log:
        log.write(str(os.getpid()) + "\\n")
    time.sleep(0.5)
    return [x, "result"]

(shared / f"ready-{{me}}").touch()
deadline = time.monotonic() + 60
while len(list(shared.glob("ready-*"))) < {workers} and time.monotonic() < deadline:
    time.sleep(0.01)
print(expensive(42), expensive.engine.name)
"""


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


@pytest.mark.parametrize(
    ("decorator", "engine"),
    [("bcache", "diskcache"), ("bcache", "klepto"), ("fcache", "joblib")],
)
def test_cold_key_is_computed_once_by_racing_processes(
    decorator: str, engine: str, tmp_path: Path
) -> None:
    """Three processes calling the same cold key at the same moment run the function once."""
    code = _WORKER.format(decorator=decorator, engine=engine, workers=WORKERS)
    procs = [_spawn(code, str(tmp_path), str(i)) for i in range(WORKERS)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    assert outputs == [f"[42, 'result'] {engine}"] * WORKERS
    assert len((tmp_path / "computed.log").read_text().split()) == 1


_HOLDER = """
import sys, time
from pathlib import Path
from twat_cache import bcache

shared = Path(sys.argv[1])

@bcache(folder_name="killed")
def slow(x):
    if sys.argv[2] == "victim":
        (shared / "started").touch()
        time.sleep(60)
    return x * 2

print(slow(21))
"""


def test_killed_holder_does_not_block_others(tmp_path: Path) -> None:
    """A process killed while computing a key leaves no lock and no entry behind."""
    victim = _spawn(_HOLDER, str(tmp_path), "victim")
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline, victim.stderr.read() if victim.stderr else ""
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    start = time.monotonic()
    assert (
        run_python(
            _HOLDER.replace("sys.argv[1]", repr(str(tmp_path))).replace("sys.argv[2]", "'survivor'")
        ).strip()
        == "42"
    )
    assert time.monotonic() - start < 20
