"""Cached functions shipped to worker processes: joblib (loky) and dask.distributed.

A function defined in ``__main__`` (a script, a notebook) is pickled by value
with cloudpickle; on the worker it must be the same cached function: the same
name, the same keys and, for a disk or Redis cache, the same shared entries.
Each scenario runs a real script as a subprocess, with real worker processes.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import twat_cache
from twat_cache import mcache


def _env() -> dict[str, str]:
    """This test's environment (its cache root), importing this tree's twat_cache."""
    return {**os.environ, "PYTHONPATH": str(Path(twat_cache.__file__).parents[1])}


_SCRIPT = """
import os, sys, pickle, cloudpickle
from twat_cache import bcache, mcache, ucache, get_stats
LOG = {log!r}

@{decorator}
def square(x):
    with open(LOG, "a") as fh:
        fh.write(f"{{os.getpid()}} {{x}}\\n")
    return x * x

def main():
    # The pickled state holds nothing process-local: the copy is this same cache.
    assert pickle.loads(cloudpickle.dumps(square)) is not None
    inputs = [i % 20 for i in range(200)]
    if {runner!r} == "joblib":
        from joblib import Parallel, delayed
        results = Parallel(n_jobs=2)(delayed(square)(x) for x in inputs)
    else:
        from dask.distributed import Client, LocalCluster
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            results = client.gather(client.map(square, inputs, pure=False))
    assert results == [x * x for x in inputs], results
    print("ok", square.cache_parameters()["name"])

if __name__ == "__main__":
    main()
"""


def _run(tmp_path: Path, decorator: str, runner: str) -> tuple[dict[str, int], str]:
    """Run the script; return the computations per worker process and its output."""
    log = tmp_path / "computed.log"
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(_SCRIPT.format(log=str(log), decorator=decorator, runner=runner))
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
        env=_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    per_pid: dict[str, int] = {}
    keys: list[str] = []
    for line in log.read_text().splitlines():
        pid, key = line.split()
        per_pid[pid] = per_pid.get(pid, 0) + 1
        keys.append(f"{pid}:{key}")
    assert len(keys) == len(set(keys)), "a worker computed one key twice"
    return per_pid, done.stdout


RUNNERS = ["joblib", "dask"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_bcache_on_shared_folder_computes_each_key_once(tmp_path: Path, runner: str) -> None:
    """bcache on one folder: 200 calls over 20 keys from two workers compute 20 times."""
    per_pid, out = _run(tmp_path, "bcache(folder_name='shared')", runner)
    assert sum(per_pid.values()) == 20
    assert "ok __main__.square" in out


@pytest.mark.parametrize("runner", RUNNERS)
def test_redis_computes_each_key_once(tmp_path: Path, runner: str, redis_url: str) -> None:
    """A Redis cache: 200 calls over 20 keys from two workers compute 20 times in all."""
    per_pid, _ = _run(tmp_path, f"ucache(redis_url={redis_url!r})", runner)
    assert sum(per_pid.values()) == 20


@pytest.mark.parametrize("runner", RUNNERS)
def test_mcache_computes_each_key_at_most_once_per_worker(tmp_path: Path, runner: str) -> None:
    """mcache: each worker keeps its own memory cache, reused across tasks (<= 20 each)."""
    per_pid, _ = _run(tmp_path, "mcache()", runner)
    assert 20 <= sum(per_pid.values()) <= 40
    assert all(count <= 20 for count in per_pid.values())


@mcache()
def module_level(x: int) -> int:
    """A module-level cached function (pickled by reference)."""
    return x + 1


def test_module_level_function_pickles_by_reference() -> None:
    """A function importable by name pickles by reference: loading gives the same object."""
    assert module_level(1) == 2
    assert pickle.loads(pickle.dumps(module_level)) is module_level


def test_pickled_copy_in_same_process_shares_the_cache(tmp_path: Path) -> None:
    """A copy unpickled in the process that decorated the function uses the same cache,
    and its hits count in that cache's statistics."""
    script = """
import cloudpickle, pickle
from twat_cache import mcache
@mcache()
def f(x):
    return x * 2
assert f(2) == 4
g = pickle.loads(cloudpickle.dumps(f))
assert g(2) == 4 and g(3) == 6 and f(3) == 6
print(f.cache_info().hits, f.cache_info().misses, g.cache_info().currsize)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "2", "2"]  # the copy's hit is counted too
