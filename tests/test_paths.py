"""The cache root, cache folders, secure permissions and the per-key process lock."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.conftest import run_python
from twat_cache import CacheConfig, ConfigurationError, bcache, create_cache_config, fcache
from twat_cache.paths import KeyLock, cache_folder, cache_root, open_lock_file, slug


def test_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """cache_dir beats TWAT_CACHE_DIR, which beats the platform's user cache folder."""
    monkeypatch.setenv("TWAT_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root(CacheConfig(cache_dir=tmp_path / "explicit")) == tmp_path / "explicit"
    assert cache_root(CacheConfig()) == tmp_path / "env"
    monkeypatch.delenv("TWAT_CACHE_DIR")
    import platformdirs

    assert cache_root(CacheConfig()) == Path(platformdirs.user_cache_dir()) / "twat_cache"


def test_root_without_platformdirs(tmp_path: Path) -> None:
    """Without platformdirs the root is ~/.cache/twat_cache."""
    code = """
import os, sys
sys.modules["platformdirs"] = None
os.environ.pop("TWAT_CACHE_DIR", None)
from twat_cache.paths import cache_root
print(cache_root())
"""
    out = run_python(code, env={"HOME": str(tmp_path)})
    assert out.strip() == str(tmp_path / ".cache" / "twat_cache")


@pytest.mark.parametrize("bad", ["..", "../x", "a/../../b", "/etc", "a\x00b", "C:\\x", ""])
def test_folder_name_cannot_escape_the_root(bad: str) -> None:
    """'..', absolute paths and NUL bytes in folder_name are ConfigurationErrors."""
    with pytest.raises(ConfigurationError, match="folder_name"):
        bcache(folder_name=bad)


def test_cache_folder_layout(tmp_path: Path) -> None:
    """A cache lives in <root>/<folder_name>/<slug of its name>; odd names stay inside."""
    config = create_cache_config(cache_dir=tmp_path, folder_name="runs/a", name="../../x")
    folder = cache_folder(config)
    assert folder.parent == tmp_path / "runs" / "a"
    assert folder.resolve().is_relative_to(tmp_path.resolve())
    assert slug("mod.f") == "mod.f"
    assert slug("a/b") != slug("a_b")
    assert ".." not in slug("..")


@pytest.fixture
def umask() -> Iterator[None]:
    """Run with a permissive umask, restoring the old one afterwards."""
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize("decorator", [bcache, fcache])
@pytest.mark.parametrize("engine", [None, "klepto"])
def test_secure_permissions(decorator: object, engine: str | None, cache_root: Path) -> None:
    """secure=True (default): every folder 0o700 and every file 0o600, even with umask 0."""

    @decorator(folder_name="private", engine=engine)  # type: ignore[operator]
    def f(x: int) -> object:
        return np.arange(x) if decorator is fcache else [x] * 10

    f(3)
    f(4)
    paths = [cache_root, *cache_root.rglob("*")]
    assert len(paths) > 3
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


@pytest.mark.usefixtures("umask")
def test_insecure_leaves_the_umask_alone(cache_root: Path) -> None:
    """secure=False creates folders and files with the process umask's modes."""

    @fcache(secure=False)
    def f(x: int) -> int:
        return x

    f(1)
    files = [p for p in cache_root.rglob("*") if p.is_file()]
    assert files
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o666 for p in files)


def test_key_lock_is_exclusive_between_processes(tmp_path: Path) -> None:
    """A key locked by another process times out here; other keys and a released key lock."""
    code = f"""
import sys, time
from pathlib import Path
from twat_cache.paths import KeyLock, open_lock_file
fd = open_lock_file(Path({str(tmp_path)!r}), secure=True)
with KeyLock(fd, "k") as locked:
    print(locked, flush=True)
    time.sleep(1.5)
"""
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "True"
    fd = open_lock_file(tmp_path, secure=True)
    try:
        with KeyLock(fd, "k", timeout=0.1) as locked:
            assert not locked
        with KeyLock(fd, "other") as locked:
            assert locked
        holder.communicate(timeout=30)
        with KeyLock(fd, "k", timeout=5) as locked:
            assert locked
    finally:
        os.close(fd)
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]


#: Any text, lone surrogates included (names from bytes decoded with surrogateescape).
any_text = st.text(st.characters(blacklist_characters="\x00"), min_size=1, max_size=600)


@given(st.one_of(st.text(min_size=1, max_size=600), any_text))
def test_slug_is_always_a_safe_short_folder_name(name: str) -> None:
    """Any cache name gives one folder level that fits every file system and stays inside."""
    folder = slug(name)
    assert 0 < len(os.fsencode(folder)) <= 143
    assert folder not in (".", "..")
    assert "/" not in folder
    assert "\\" not in folder
    assert "\x00" not in folder


@given(any_text, any_text)
def test_slug_keeps_names_apart(a: str, b: str) -> None:
    """Two different names never share a folder (a digest is kept whenever a name changes)."""
    if a != b:
        assert slug(a) != slug(b)


folder_levels = st.lists(
    st.text(st.characters(blacklist_characters="/\\\x00:"), min_size=1, max_size=300).filter(
        lambda s: s.strip(".") != ""
    ),
    min_size=1,
    max_size=3,
)


def _os_size(name: str) -> int | None:
    """Bytes the OS would store for ``name``; None when it cannot encode it at all."""
    try:
        return len(os.fsencode(name))
    except UnicodeError:
        return None


@given(folder_levels)
@example(["\ud800"])
@example(["a" * 144, "b" * 143])
def test_every_folder_name_level_fits_the_file_system(levels: list[str]) -> None:
    """Each folder_name level is kept as given unless over 143 bytes (or not encodable)."""
    root = Path("/r")
    config = CacheConfig(cache_dir=root, folder_name="/".join(levels), name="n")
    parts = cache_folder(config).relative_to(root).parts
    assert parts[-1] == "n"
    assert len(parts) == len(levels) + 1
    for given_level, made in zip(levels, parts, strict=False):
        assert len(os.fsencode(made)) <= 143
        size = _os_size(given_level)
        assert (made == given_level) == (size is not None and size <= 143)
