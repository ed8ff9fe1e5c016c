"""The pytest plugin, run in real inner pytest sessions (pytester).

Each inner session loads the plugin module the way this project's own suite
does (``-p no:twat_cache -p twat_cache.pytest_plugin``), so the tests hold
whether or not the installed entry point belongs to this tree; one test checks
the entry point itself where it is installed.
"""

from __future__ import annotations

import importlib
import os
import re
from importlib import metadata
from pathlib import Path

import pytest

from twat_cache import list_caches, mcache
from twat_cache.registry import registry

pytest_plugins = ["pytester"]

# Inner sessions run in this process, and pytester drops the modules they import first:
# importing every twat_cache module now keeps one copy of each class (the engine manager
# remembers the classes it imported).
for _module in ("_manage", "engines.aio", "engines.disk", "engines.files", "engines.remote"):
    importlib.import_module(f"twat_cache.{_module}")

PLUGIN = ("-p", "no:twat_cache", "-p", "twat_cache.pytest_plugin")
STRICT = ("--strict-markers", "-W", "error", "-p", "no:cacheprovider")
#: pytest-asyncio warns, hence errs under -W error, without a loop scope.
ASYNCIO = ("-p", "pytest_asyncio.plugin", "-o", "asyncio_default_fixture_loop_scope=function")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """An inner pytest session with the plugin, strict markers and warnings as errors.

    Other installed plugins are not auto-loaded (pytest-asyncio is named where needed):
    loading every one of them costs more than the inner session itself.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        return pytester.runpytest(*PLUGIN, *STRICT, *args)


def test_markers_are_registered(pytester):
    """Both markers are known to pytest (listed by --markers, accepted by --strict-markers)."""
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.twat_cache_disabled: run the test inside twat_cache.disabled()",
            "@pytest.mark.twat_cache_refreshing: run the test inside twat_cache.refreshing()",
        ]
    )


def test_markers_put_the_test_body_under_the_policy(pytester):
    """A marked test body runs under its policy; fixtures and unmarked tests do not."""
    pytester.makepyfile(
        """
        import pytest
        from twat_cache.policy import current

        @pytest.fixture
        def seen_in_fixture():
            return current()

        @pytest.mark.twat_cache_disabled
        def test_disabled(seen_in_fixture):
            assert current() == "disabled"
            assert seen_in_fixture is None

        @pytest.mark.twat_cache_refreshing
        def test_refreshing():
            assert current() == "refreshing"

        def test_plain():
            assert current() is None

        @pytest.mark.twat_cache_refreshing
        class TestClass:
            def test_inherits(self):
                assert current() == "refreshing"

            @pytest.mark.twat_cache_disabled
            def test_closest_marker_wins(self):
                assert current() == "disabled"
        """
    )
    run(pytester).assert_outcomes(passed=5)


def test_marker_reaches_async_tests(pytester):
    """An async test (pytest-asyncio) runs in a task that inherits the marker's policy."""
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        from twat_cache.policy import current

        @pytest.mark.asyncio
        @pytest.mark.twat_cache_refreshing
        async def test_async():
            await asyncio.sleep(0)
            assert current() == "refreshing"
        """
    )
    run(pytester, *ASYNCIO).assert_outcomes(passed=1)


def test_disable_option_switches_caching_off_for_the_session(pytester, monkeypatch):
    """--twat-cache-disable: functions decorated at import call straight through, every
    test runs under disabled(), and TWAT_CACHE_DISABLE is restored after the session."""
    monkeypatch.delenv("TWAT_CACHE_DISABLE", raising=False)
    pytester.makepyfile(
        """
        import os
        from twat_cache import mcache
        from twat_cache.policy import current

        calls = []

        @mcache
        def square(x):
            calls.append(x)
            return x * x

        def test_calls_straight_through():
            assert os.environ["TWAT_CACHE_DISABLE"] == "1"
            assert current() == "disabled"
            assert [square(3), square(3)] == [9, 9]
            assert calls == [3, 3]
        """
    )
    run(pytester, "--twat-cache-disable").assert_outcomes(passed=1)
    assert "TWAT_CACHE_DISABLE" not in os.environ


def test_disable_option_restores_a_previous_value(pytester, monkeypatch):
    """A TWAT_CACHE_DISABLE set before the session comes back unchanged afterwards."""
    monkeypatch.setenv("TWAT_CACHE_DISABLE", "0")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    run(pytester, "--twat-cache-disable").assert_outcomes(passed=1)
    assert os.environ["TWAT_CACHE_DISABLE"] == "0"


def test_without_the_option_caching_stays_on(pytester, monkeypatch):
    """No option, no marker: a decorated function computes once (the plugin changes nothing)."""
    monkeypatch.delenv("TWAT_CACHE_DISABLE", raising=False)
    pytester.makepyfile(
        """
        from twat_cache import mcache
        from twat_cache.policy import current

        calls = []

        @mcache
        def square(x):
            calls.append(x)
            return x * x

        def test_cached():
            assert current() is None
            assert [square(3), square(3)] == [9, 9]
            assert calls == [3]
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_isolated_fixture_gives_a_fresh_root_and_registry(pytester):
    """twat_cache_isolated: TWAT_CACHE_DIR under the test's tmp_path, caches written there,
    and each test starts with an empty registry whatever the one before left."""
    registry.reset()

    @mcache(name="outer.cache")
    def outer(x: int) -> int:
        return x

    outer(1)
    assert list_caches() == ["outer.cache"]
    pytester.makepyfile(
        """
        import os
        from twat_cache import bcache, list_caches

        def test_first(twat_cache_isolated, tmp_path):
            assert twat_cache_isolated == tmp_path / "twat-cache"
            assert os.environ["TWAT_CACHE_DIR"] == str(twat_cache_isolated)
            assert list_caches() == []

            @bcache(name="first")
            def f(x):
                return x + 1

            assert f(1) == 2
            assert list_caches() == ["first"]
            assert (twat_cache_isolated / "first").is_dir()

        def test_second(twat_cache_isolated):
            assert list_caches() == []
            assert not twat_cache_isolated.exists()
        """
    )
    run(pytester).assert_outcomes(passed=2)
    assert list_caches() == []  # the fixture emptied the registry after its tests


def test_entry_point_is_declared():
    """pyproject.toml declares the pytest11 entry point twat_cache -> twat_cache.pytest_plugin."""
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    section = re.search(r"\[project\.entry-points\.pytest11\]\n(.*?)(?:\n\[|\Z)", pyproject, re.S)
    assert section is not None
    assert 'twat_cache = "twat_cache.pytest_plugin"' in section.group(1)


def test_installed_entry_point_loads_the_plugin(pytester):
    """Where this tree is installed, pytest loads the plugin by itself (no -p needed)."""
    plugins = metadata.entry_points(group="pytest11")
    found = [ep for ep in plugins if ep.value == "twat_cache.pytest_plugin"]
    if not found:
        pytest.skip("the installed twat-cache predates the plugin (pip install -e . adds it)")
    assert found[0].name == "twat_cache"
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.twat_cache_disabled
        def test_marked(twat_cache_isolated):
            from twat_cache.policy import current
            assert current() == "disabled"
        """
    )
    pytester.runpytest(*STRICT, *ASYNCIO[2:]).assert_outcomes(passed=1)
