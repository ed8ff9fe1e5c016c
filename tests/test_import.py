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
    public = {n for n in dir(twat_cache) if not n.startswith("_")} - {
        "annotations",
        "codeversion",
        "config",
        "context",
        "decorators",
        "encoding",
        "engines",
        "exceptions",
        "keys",
        "paths",
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
