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
from tests.conftest import _wipe
from twat_cache import mcache


def _env() -> dict[str, str]:
    """This test's environment (its cache root), importing this tree's twat_cache."""
    return {**os.environ, "PYTHONPATH": str(Path(twat_cache.__file__).parents[1])}


# One script per runner runs the three caches, so each runner's workers start once.
_SCRIPT = """
import os, sys, pickle, cloudpickle
from twat_cache import bcache, mcache, ucache, get_stats
LOGS = {logs!r}
RUNNER = {runner!r}

def logged(decorator, name):
    def square(x):
        with open(LOGS[name], "a") as fh:
            fh.write(f"{{os.getpid()}} {{x}}\\n")
        return x * x
    square.__name__ = square.__qualname__ = "square_" + name
    return decorator(square)

square_bcache = logged(bcache(folder_name="shared"), "bcache")
square_redis = logged(ucache(redis_url={redis_url!r}), "redis")
square_mcache = logged(mcache(), "mcache")

def main():
    inputs = [i % 20 for i in range(200)]
    if RUNNER == "dask":
        from dask.distributed import Client, LocalCluster
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    for square in (square_bcache, square_redis, square_mcache):
        # The pickled state holds nothing process-local: the copy is this same cache.
        assert pickle.loads(cloudpickle.dumps(square)) is not None
        if RUNNER == "joblib":
            from joblib import Parallel, delayed
            results = Parallel(n_jobs=2)(delayed(square)(x) for x in inputs)
        else:
            results = client.gather(client.map(square, inputs, pure=False))
        assert results == [x * x for x in inputs], results
        print("ok", square.cache_parameters()["name"])
    if RUNNER == "dask":
        client.close()
        cluster.close()

if __name__ == "__main__":
    main()
"""

_CACHES = ("bcache", "redis", "mcache")


@pytest.fixture(scope="module", params=["joblib", "dask"])
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_server_url: str
) -> tuple[dict[str, dict[str, int]], str]:
    """Run the script once per runner, with a cache root of its own; return, per cache,
    the computations per worker process, and the script's output."""
    runner: str = request.param
    tmp_path = tmp_path_factory.mktemp(f"workers-{runner}")
    _wipe(redis_server_url)
    logs = {name: str(tmp_path / f"{name}.log") for name in _CACHES}
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(_SCRIPT.format(logs=logs, runner=runner, redis_url=redis_server_url))
    )
    env = {k: v for k, v in _env().items() if not k.startswith("TWAT_CACHE_")}
    env["TWAT_CACHE_DIR"] = str(tmp_path / "twat-cache")
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    counts: dict[str, dict[str, int]] = {}
    for name, log in logs.items():
        per_pid: dict[str, int] = {}
        keys: list[str] = []
        for line in Path(log).read_text().splitlines():
            pid, key = line.split()
            per_pid[pid] = per_pid.get(pid, 0) + 1
            keys.append(f"{pid}:{key}")
        assert len(keys) == len(set(keys)), f"a worker computed one {name} key twice"
        counts[name] = per_pid
    return counts, done.stdout


def test_bcache_on_shared_folder_computes_each_key_once(
    runs: tuple[dict[str, dict[str, int]], str],
) -> None:
    """bcache on one folder: 200 calls over 20 keys from two workers compute 20 times."""
    counts, out = runs
    assert sum(counts["bcache"].values()) == 20
    assert "ok __main__.square_bcache" in out


def test_redis_computes_each_key_once(runs: tuple[dict[str, dict[str, int]], str]) -> None:
    """A Redis cache: 200 calls over 20 keys from two workers compute 20 times in all."""
    counts, _ = runs
    assert sum(counts["redis"].values()) == 20


def test_mcache_computes_each_key_at_most_once_per_worker(
    runs: tuple[dict[str, dict[str, int]], str],
) -> None:
    """mcache: each worker keeps its own memory cache, reused across tasks (<= 20 each)."""
    counts, _ = runs
    per_pid = counts["mcache"]
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
