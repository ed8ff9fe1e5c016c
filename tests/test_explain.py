"""``f.cache_explain(...)``: whether a call would hit and why not, without calling it (API.md 8)."""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from pathlib import Path

import pytest

import twat_cache
from tests.conftest import run_python
from twat_cache import CacheExplanation, acache, bcache, fcache, mcache

DECORATORS = [mcache, bcache, fcache]


@pytest.fixture(autouse=True)
def _cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TWAT_CACHE_DIR", str(tmp_path / "cache"))


def test_explanation_is_exported_and_reads_as_one_line():
    """CacheExplanation is exported, frozen, and str() is one readable line."""
    e = CacheExplanation(False, "new", "never computed with these arguments")
    assert "CacheExplanation" in twat_cache.__all__
    assert str(e) == "miss (new): never computed with these arguments"
    assert str(CacheExplanation(True, "hit", "")) == "hit"
    with pytest.raises(AttributeError):
        e.hit = True  # type: ignore[misc]


@pytest.mark.parametrize("decorator", DECORATORS, ids=lambda d: d.__name__)
def test_new_then_hit_without_calling_the_function(decorator):
    """Before the first call: new; after it: hit; asking never runs the function."""
    calls = []

    @decorator
    def double(x):
        calls.append(x)
        return 2 * x

    before = double.cache_explain(3)
    assert (before.hit, before.reason) == (False, "new")
    assert calls == []
    assert double(3) == 6
    after = double.cache_explain(x=3)
    assert (after.hit, after.reason) == (True, "hit")
    assert double.cache_explain(4).reason == "new"
    assert calls == [3]


@pytest.mark.parametrize("decorator", DECORATORS, ids=lambda d: d.__name__)
def test_expired_entry_is_reported(decorator):
    """An entry past its ttl is reported as expired (not as never computed)."""

    @decorator(ttl=0.05)
    def value(x):
        return x

    value(1)
    time.sleep(0.3)
    assert value.cache_explain(1).reason == "expired"


@pytest.mark.parametrize("given", [None, list, frozenset], ids=["path", "list", "set"])
@pytest.mark.parametrize("decorator", DECORATORS, ids=lambda d: d.__name__)
def test_file_changed_names_the_file(decorator, given, tmp_path):
    """A files= argument whose file changed since the call was stored: file_changed, naming
    the parameter and the path (alone, or one of a list or set of paths)."""
    data, other = tmp_path / "in.txt", tmp_path / "other.txt"
    for path in (data, other):
        path.write_text("a")
        os.utime(path, ns=(10**9, 10**9))
    arg = data if given is None else given([other, data])

    @decorator(files=("path",))
    def size(path):
        return sum(len(Path(p).read_text()) for p in ([path] if given is None else path))

    base = size(arg)
    data.write_text("abc")
    os.utime(data, ns=(2 * 10**9, 2 * 10**9))
    why = size.cache_explain(arg)
    assert why.reason == "file_changed"
    assert "path" in why.detail
    assert str(data) in why.detail
    assert str(other) not in why.detail
    assert size.cache_explain(arg).reason == "file_changed"  # asking twice says the same
    assert size(arg) == base + 2
    assert size.cache_explain(arg).reason == "hit"


@pytest.mark.parametrize("decorator", [bcache, fcache], ids=lambda d: d.__name__)
def test_damaged_entry_is_corrupt(decorator, tmp_path):
    """A persistent entry whose bytes were damaged is reported as corrupt."""

    @decorator
    def big(n):
        return bytes(n)

    big(2_000_000)  # large enough for bcache to keep the value in a file of its own
    files = [p for p in (tmp_path / "cache").rglob("*.tc") if p.stat().st_size > 1000]
    assert len(files) == 1
    raw = bytearray(files[0].read_bytes())
    raw[-100:] = b"\xff" * 100
    files[0].write_bytes(bytes(raw))
    assert big.cache_explain(2_000_000).reason == "corrupt"


def test_not_stored_and_disabled():
    """maxsize=0 and readonly() say nothing is kept; disabled() and refreshing() say the
    cache is not read."""

    @mcache(maxsize=0)
    def never(x):
        return x

    never(1)
    assert never.cache_explain(1).reason == "not_stored"

    @mcache
    def kept(x):
        return x

    with twat_cache.readonly():
        assert kept.cache_explain(1).reason == "not_stored"
    kept(1)
    with twat_cache.disabled():
        assert kept.cache_explain(1).reason == "disabled"
    with twat_cache.refreshing():
        assert kept.cache_explain(1).reason == "disabled"
    assert kept.cache_explain(1).hit


def test_disabled_by_environment(monkeypatch):
    """Under TWAT_CACHE_DISABLE=1 every call is explained as disabled."""
    monkeypatch.setenv("TWAT_CACHE_DISABLE", "1")

    @mcache
    def f(x):
        return x

    f(1)
    assert f.cache_explain(1) == CacheExplanation(
        False, "disabled", "TWAT_CACHE_DISABLE is set: caching is off"
    )


def test_async_function_explanation_is_awaitable():
    """On an async def function cache_explain is awaited, and never runs the coroutine."""
    calls = []

    @acache
    async def fetch(x):
        calls.append(x)
        return x

    async def main() -> tuple[str, str]:
        first = await fetch.cache_explain(1)
        await fetch(1)
        second = await fetch.cache_explain(1)
        return first.reason, second.reason

    assert asyncio.run(main()) == ("new", "hit")
    assert calls == [1]


def test_async_function_on_disk():
    """An async def function over a persistent store explains through the thread pool."""

    @bcache
    async def fetch(x):
        return x

    async def main() -> tuple[str, str]:
        first = await fetch.cache_explain(1)
        await fetch(1)
        return first.reason, (await fetch.cache_explain(1)).reason

    assert asyncio.run(main()) == ("new", "hit")


def test_method_explanation_binds_the_instance():
    """a.f.cache_explain(x) asks about a's entry."""

    class Model:
        @mcache
        def predict(self, x):
            return x

    a, b = Model(), Model()
    a.predict(1)
    assert a.predict.cache_explain(1).hit
    assert b.predict.cache_explain(1).reason == "new"


def test_code_changed_names_the_edited_function(tmp_path):
    """After the function's body is edited (a new process), the call stored under the old
    code version is explained as code_changed, naming the function."""
    module = tmp_path / "stage_mod.py"
    source = textwrap.dedent(
        """
        from twat_cache import bcache

        @bcache
        def stage(x):
            return x + {n}
        """
    )
    script = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import stage_mod\n"
        "print(stage_mod.stage.cache_explain(1))\n"
        "stage_mod.stage(1)\n"
    )
    env = {"TWAT_CACHE_DIR": str(tmp_path / "cache")}
    module.write_text(source.format(n=1))
    assert run_python(script, env=env).strip() == "miss (new): never computed with these arguments"
    module.write_text(source.format(n=2))
    out = run_python(script, env=env).strip()
    assert out.startswith("miss (code_changed): ")
    assert "stage" in out
    assert run_python(script, env=env).strip().startswith("hit")


def _assert_first_evicted(fn, calls, limit):
    """Call ``fn`` over ``calls``: the first reads "evicted" naming ``limit``, the last hits,
    and a call never made reads "new"."""
    calls = list(calls)
    for x in calls:
        fn(x)
    first = fn.cache_explain(calls[0])
    assert (first.hit, first.reason) == (False, "evicted")
    assert limit in first.detail
    assert fn.cache_explain(calls[-1]).reason == "hit"
    assert fn.cache_explain(max(calls) + 6).reason == "new"


def test_mcache_entry_pushed_out_by_maxsize_is_evicted():
    """mcache(maxsize=2): the entry pushed out by a third call reads "evicted", a call
    never made reads "new", and a deleted or cleared entry is "new" again (not evicted)."""

    @mcache(maxsize=2)
    def ident(x):
        return x

    _assert_first_evicted(ident, range(1, 4), "maxsize=2")
    assert ident.cache_delete(3) is True
    assert ident.cache_explain(3).reason == "new"
    ident.cache_clear()
    assert ident.cache_explain(2).reason == "new"
    assert ident.cache_explain(1).reason == "new"


def test_bcache_entry_culled_by_size_limit_is_evicted():
    """bcache(size_limit=...): entries culled to stay under the limit read "evicted",
    naming the limit; the newest entry still hits."""

    @bcache(size_limit=500_000)
    def blob(x):
        return bytes(200_000) + bytes([x])

    _assert_first_evicted(blob, range(4), "size_limit=500000")


def test_call_stored_under_another_folder_is_named(tmp_path):
    """A call stored by the same cache under another folder_name (another process)
    reads "other_folder" with that folder; a call stored nowhere stays "new" and names
    the other folder."""
    module = tmp_path / "stage.py"
    module.write_text(
        textwrap.dedent(
            """
            import os, sys
            from twat_cache import bcache

            @bcache(name="explain.moved", folder_name=os.environ.get("FOLDER") or None)
            def stage(x):
                return x

            if sys.argv[1] == "write":
                stage(5)
            else:
                for x in (5, 6):
                    e = stage.cache_explain(x)
                    print(e.reason, e.detail, sep="|")
            """
        )
    )
    run = f"import runpy, sys; sys.argv = ['stage', '{{}}']; runpy.run_path({str(module)!r})"
    run_python(run.format("write"))
    out = run_python(run.format("ask"), env={"FOLDER": "v2"}).splitlines()
    old = Path(os.environ["TWAT_CACHE_DIR"]) / "explain.moved"
    assert out[0] == f"other_folder|stored under another folder: {old.as_posix()}"
    assert out[1].startswith("new|never computed")
    assert old.as_posix() in out[1]


def test_async_evicted():
    """An async def function's cache_explain says "evicted" too once maxsize pushed
    an entry out."""

    @mcache(maxsize=1)
    async def fetch(x):
        return x

    async def main() -> str:
        await fetch(1)
        await fetch(2)
        return (await fetch.cache_explain(1)).reason

    assert asyncio.run(main()) == "evicted"
