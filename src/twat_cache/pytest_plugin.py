"""pytest plugin: isolate, switch off or refresh twat-cache caches in a test suite.

Installed with the package (entry point ``pytest11``, name ``twat_cache``), so
it is active in every pytest run where twat-cache is installed; block it with
``-p no:twat_cache``. It adds:

- the fixture ``twat_cache_isolated``: a fresh cache root (``TWAT_CACHE_DIR``
  in the test's ``tmp_path``) and an empty registry, before and after the test;
- the option ``--twat-cache-disable``: every decorator calls straight through
  for the whole session (``TWAT_CACHE_DISABLE=1`` for functions decorated from
  now on, and ``twat_cache.disabled()`` around each test for those decorated
  before);
- the markers ``twat_cache_disabled`` and ``twat_cache_refreshing``: the test
  body runs inside ``twat_cache.disabled()`` or ``twat_cache.refreshing()``.

Why this module imports nothing of twat-cache at the top: pytest loads it in
every run of every project that has twat-cache installed, so it must cost
nothing until a test uses one of its features.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from twat_cache.policy import PolicyName

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_call",
    "pytest_unconfigure",
    "twat_cache_isolated",
]

_OPTION = "--twat-cache-disable"
_MARKERS: dict[str, PolicyName] = {
    "twat_cache_disabled": "disabled",
    "twat_cache_refreshing": "refreshing",
}
#: The value of TWAT_CACHE_DISABLE before --twat-cache-disable set it (None: unset).
_SAVED_ENV = pytest.StashKey[tuple[bool, str | None]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--twat-cache-disable``."""
    group = parser.getgroup("twat-cache")
    group.addoption(
        _OPTION,
        action="store_true",
        default=False,
        help="twat-cache: every cached function calls straight through (no reads, no writes)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; with ``--twat-cache-disable``, set ``TWAT_CACHE_DISABLE=1``."""
    config.addinivalue_line(
        "markers", "twat_cache_disabled: run the test inside twat_cache.disabled()"
    )
    config.addinivalue_line(
        "markers", "twat_cache_refreshing: run the test inside twat_cache.refreshing()"
    )
    if config.getoption(_OPTION, default=False):
        # Set before collection imports the test modules, so functions decorated at
        # import time are pass-throughs too.
        config.stash[_SAVED_ENV] = (True, os.environ.get("TWAT_CACHE_DISABLE"))
        os.environ["TWAT_CACHE_DISABLE"] = "1"


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore ``TWAT_CACHE_DISABLE`` as it was before the session."""
    saved, previous = config.stash.get(_SAVED_ENV, (False, None))
    if not saved:
        return
    if previous is None:
        os.environ.pop("TWAT_CACHE_DISABLE", None)
    else:
        os.environ["TWAT_CACHE_DISABLE"] = previous


def _policy_for(item: pytest.Item) -> PolicyName | None:
    """The policy a test runs under: the option first, else its closest marker."""
    if item.config.getoption(_OPTION, default=False):
        return "disabled"
    for marker in item.iter_markers():  # closest first: function, class, module
        if marker.name in _MARKERS:
            return _MARKERS[marker.name]
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """Run the test body inside the policy its marker (or the option) asks for.

    Only the body: fixtures are set up and torn down outside it, so a fixture
    that fills a cache does so normally. An ``async def`` test runs in a task
    created inside the block, and asyncio copies the policy into it.
    """
    name = _policy_for(item)
    if name is None:
        return (yield)
    from twat_cache.policy import Policy

    with Policy(name):
        return (yield)


@pytest.fixture
def twat_cache_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh cache root and an empty registry for one test; yields the root.

    The root is ``tmp_path / "twat-cache"`` (set as ``TWAT_CACHE_DIR``, created
    by the first persistent write). The registry of named caches is emptied
    before and after the test, so ``get_stats()``, ``list_caches()`` and
    ``clear_cache()`` see this test's caches only; each fallback warning is
    logged again.
    """
    from twat_cache._log import reset_warnings
    from twat_cache.registry import registry

    root = tmp_path / "twat-cache"
    monkeypatch.setenv("TWAT_CACHE_DIR", str(root))
    registry.reset()
    reset_warnings()
    try:
        yield root
    finally:
        registry.reset()
        reset_warnings()
