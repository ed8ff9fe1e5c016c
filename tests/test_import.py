"""Importing twat_cache has no side effects and exposes exactly the public API."""

from __future__ import annotations

import subprocess
import sys

import twat_cache
from tests.conftest import run_python
from twat_cache import exceptions


def test_import_has_no_side_effects(tmp_path):
    """Import creates no folder, prints nothing, imports no optional engine."""
    root = tmp_path / "never"
    out = run_python(
        "import sys, twat_cache\n"
        "mods = ['cachebox', 'cachetools', 'diskcache', 'joblib', 'klepto', 'aiocache',"
        " 'redis', 'numpy', 'pandas', 'rich']\n"
        "print(sorted(m for m in mods if m in sys.modules))\n",
        env={"TWAT_CACHE_DIR": str(root)},
    )
    assert out.strip() == "[]"
    assert not root.exists()


def test_import_logs_nothing():
    """Import writes nothing to stdout or stderr (no log lines)."""
    done = subprocess.run(
        [sys.executable, "-c", "import twat_cache"], capture_output=True, text=True, check=True
    )
    assert done.stdout == ""
    assert done.stderr == ""


def test_all_is_sorted_and_complete():
    """``__all__`` is sorted (constants, classes, functions) and lists every public name."""
    names = list(twat_cache.__all__)
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert len(set(names)) == len(names)
    # ("@py_builtins": pytest rewrites the asserts of an installed plugin's whole package)
    public = {n for n in dir(twat_cache) if not n.startswith(("_", "@"))} - {
        "annotations",
        "call",
        "codeversion",
        "config",
        "context",
        "decorators",
        "encoding",
        "engines",
        "exceptions",
        "keys",
        "paths",
        "policy",
        "pytest_plugin",
        "registry",
        "serializers",
        "wrapper",
    }
    assert public <= set(twat_cache.__all__) | {"__version__"}
    for name in twat_cache.__all__:
        assert hasattr(twat_cache, name), name


def test_errors_importable_from_both_places():
    """Every error class is importable from twat_cache and twat_cache.exceptions."""
    for name in (
        "TwatCacheError",
        "ConfigurationError",
        "EngineNotAvailableError",
        "CacheKeyError",
        "SerializationError",
        "CacheOperationError",
    ):
        assert getattr(twat_cache, name) is getattr(exceptions, name)
        assert issubclass(getattr(twat_cache, name), twat_cache.TwatCacheError)
    assert issubclass(twat_cache.ConfigurationError, ValueError)
    assert issubclass(twat_cache.EngineNotAvailableError, ImportError)
    assert issubclass(twat_cache.CacheKeyError, TypeError)


def test_import_defers_pydantic_and_the_call_path():
    """``import twat_cache`` loads neither pydantic nor the call path; the first
    decorator used loads them and caches as before."""
    out = run_python(
        "import sys, twat_cache\n"
        "before = sorted(m for m in ('pydantic', 'twat_cache.call', 'twat_cache.config')"
        " if m in sys.modules)\n"
        "calls = []\n"
        "@twat_cache.mcache\n"
        "def f(x):\n"
        "    calls.append(x)\n"
        "    return x * 2\n"
        "print(before, f(3), f(3), len(calls), 'pydantic' in sys.modules)\n"
    )
    assert out.split() == ["[]", "6", "6", "1", "True"]


def test_every_public_name_and_submodule_loads_on_demand():
    """In a fresh interpreter every name of ``__all__`` imports by ``from twat_cache
    import``, and a submodule is reachable as an attribute after a bare import."""
    out = run_python(
        "import twat_cache\n"
        "print(twat_cache.config.CacheConfig is twat_cache.CacheConfig)\n"
        "ns = {}\n"
        "exec('from twat_cache import ' + ', '.join(twat_cache.__all__), ns)\n"
        "print(all(ns[n] is getattr(twat_cache, n) for n in twat_cache.__all__))\n"
        "try:\n"
        "    twat_cache.no_such_name\n"
        "except AttributeError as e:\n"
        "    print(type(e).__name__)\n"
    )
    assert out.split() == ["True", "True", "AttributeError"]
