"""Shared fixtures: an isolated cache root, a clean environment and registry, log capture."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from twat_cache._log import reset_warnings
from twat_cache.registry import registry

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
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Strip behaviour-changing variables and point the cache root at a temp folder."""
    for var in _BEHAVIOUR_VARS:
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "cache-root"
    monkeypatch.setenv("TWAT_CACHE_DIR", str(root))
    return root


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    """Every test starts with no registered cache and every warning not yet seen."""
    registry.reset()
    reset_warnings()
    yield
    registry.reset()


@pytest.fixture
def cache_root(clean_environ: Path) -> Path:
    """The cache root of this test (``TWAT_CACHE_DIR``), not created yet."""
    return clean_environ


class Calls(list[object]):
    """Records each real execution of a cached function."""

    def __call__(self, *values: object) -> None:
        self.append(values[0] if len(values) == 1 else values)


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


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter with this test's environment; return stdout."""
    import subprocess
    import sys

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
    return done.stdout
