"""Old code versions leave the disk: the first write under a new code version removes the
entries of the version the cache folder held before (issue 11, item 6)."""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import run_python

pytest.importorskip("numpy")

STAGE = """
import numpy as np
from twat_cache import {decorator}


def helper(n):
    return np.arange(n, dtype=float) * {factor}


@{decorator}(name="stage"{extra})
def stage(n):
    return helper(n)
"""

RUN = """
import sys
sys.path.insert(0, {folder!r})
import stage_mod
value = stage_mod.stage(200_000)
assert value[1] == {factor}, value[:3]
print(stage_mod.stage.engine.disk_bytes(), len(stage_mod.stage.engine))
"""


def _run(tmp_path, decorator: str, factor: int, extra: str = "") -> tuple[int, int]:
    (tmp_path / "stage_mod.py").write_text(
        STAGE.format(decorator=decorator, factor=factor, extra=extra)
    )
    script = textwrap.dedent(RUN.format(folder=str(tmp_path), factor=factor))
    out = run_python(script, env={"TWAT_CACHE_DIR": str(tmp_path / "cache")})
    size, count = out.split()
    return int(size), int(count)


@pytest.mark.parametrize("decorator", ["fcache", "bcache"])
def test_editing_a_helper_twice_keeps_one_copy(tmp_path, decorator):
    """A 1.6 MB result recomputed after each of two edits of its helper (in new
    processes) keeps one entry: disk bytes stay those of one copy instead of growing."""
    first_bytes, first_count = _run(tmp_path, decorator, 1)
    assert first_bytes > 1_600_000
    assert first_count == 1
    for factor in (2, 3):
        size, count = _run(tmp_path, decorator, factor)
        assert count == 1
        assert size < first_bytes * 1.2


def test_explicit_version_change_removes_the_old_entries(tmp_path):
    """version= names the code version: changing it removes the old version's entries."""
    _run(tmp_path, "fcache", 1, extra=', version="1"')
    _, count = _run(tmp_path, "fcache", 1, extra=', version="2"')
    assert count == 1
    _, count = _run(tmp_path, "fcache", 1, extra=', version="2"')
    assert count == 1


def test_same_version_keeps_entries_of_other_arguments(tmp_path):
    """Without an edit nothing is removed: a new process adds its entry to the old ones."""
    (tmp_path / "keep_mod.py").write_text(
        "from twat_cache import fcache\n\n@fcache\ndef f(x):\n    return [x] * 1000\n"
    )
    env = {"TWAT_CACHE_DIR": str(tmp_path / "cache")}
    script = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\nimport keep_mod\n"
    run_python(script + "keep_mod.f(1)\n", env=env)
    out = run_python(script + "keep_mod.f(2)\nprint(len(keep_mod.f.engine))\n", env=env)
    assert out.strip() == "2"


def test_closures_of_one_factory_do_not_remove_each_others_entries(tmp_path, monkeypatch):
    """Two closures sharing a folder (same code, different captured objects) write under
    one code version: neither removes the other's entries."""
    monkeypatch.setenv("TWAT_CACHE_DIR", str(tmp_path / "cache"))
    from twat_cache import fcache

    def make(table):
        @fcache
        def look(key):
            return table[key]

        return look

    first, second = make({"a": 1}), make({"a": 2})
    assert first("a") == 1
    assert second("a") == 2
    assert [look.cache_explain("a").reason for look in (first, second)] == ["hit", "hit"]
