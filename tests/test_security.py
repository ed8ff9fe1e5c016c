"""Attacks on a shared cache root: planted symlinks, hard links and other users' folders.

Every attack here is set up as a local attacker would: before the victim's
first call, in the folder the victim's cache is about to use. The victim's
call must still return the right value; nothing outside the cache root may be
created, written or have its mode changed; and a folder that is not the
victim's own is never used.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Calls, run_python
from twat_cache import CacheOperationError, bcache, fcache, get_stats
from twat_cache._manage import describe, find_caches
from twat_cache.engines.persistent import Manifest
from twat_cache.paths import check_folder, ensure_folder, open_file, open_lock_file, slug
from twat_cache.registry import registry

NOBODY = 65534
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="making a folder another user's needs root")

#: (decorator, engine) of every persistent engine, and the files each opens by a fixed name.
ENGINES = [
    pytest.param(bcache, None, id="diskcache"),
    pytest.param(bcache, "klepto", id="klepto"),
    pytest.param(fcache, None, id="joblib"),
]
FIXED_NAMES = {
    None: (".lock", "twat_cache.json", "cache.db", "cache.db-wal", "cache.db-shm"),
    "klepto": (".lock", "twat_cache.json"),
}
FILE_CASES = [
    pytest.param(decorator, engine, name, id=f"{label}-{name}")
    for decorator, engine, label in ((bcache, None, "diskcache"), (bcache, "klepto", "klepto"))
    for name in FIXED_NAMES[engine]
] + [pytest.param(fcache, None, name, id=f"joblib-{name}") for name in FIXED_NAMES["klepto"]]
FOLDER_NAME_CASES = [
    pytest.param(bcache, None, id="diskcache"),
    pytest.param(bcache, "klepto", id="klepto"),
    pytest.param(fcache, None, id="joblib"),
]


def cached(decorator: Any, engine: str | None, calls: Calls) -> Callable[[int], list[int]]:
    """The victim: a persistent cache named ``victim`` in the folder ``proj``."""

    @decorator(name="victim", folder_name="proj", engine=engine)
    def f(x: int) -> list[int]:
        calls(x)
        return [x] * 3

    return f  # type: ignore[no-any-return]


def folder_of(root: Path) -> Path:
    return root / "proj" / slug("victim")


class Outside:
    """Files of the victim outside the cache root, which the attacker points links at."""

    def __init__(self, path: Path) -> None:
        path.mkdir()
        self.dir = path
        self.file = path / "victim.txt"
        self.file.write_bytes(b"precious")
        self.file.chmod(0o644)
        self.dangling = path / "created-by-the-cache"
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, tuple[int, int, bytes]]:
        return {
            p.name: (stat.S_IMODE(p.stat().st_mode), p.stat().st_uid, p.read_bytes())
            for p in self.dir.iterdir()
        }

    def untouched(self) -> bool:
        return self.snapshot() == self.before and not self.dangling.exists()


@pytest.fixture
def outside(tmp_path: Path) -> Outside:
    return Outside(tmp_path / "outside")


def errors(f: Any) -> int:
    return int(get_stats(f.cache_parameters()["name"])["errors"])


def run_twice(f: Callable[[int], list[int]]) -> None:
    """The victim's calls: right values whatever the cache does."""
    assert f(1) == [1, 1, 1]
    assert f(1) == [1, 1, 1]
    assert f(2) == [2, 2, 2]


# -- planted files -----------------------------------------------------------------------


@pytest.mark.parametrize("dangling", [False, True], ids=["existing", "dangling"])
@pytest.mark.parametrize(("decorator", "engine", "name"), FILE_CASES)
def test_planted_symlink_is_never_followed(
    decorator: Any,
    engine: str | None,
    name: str,
    dangling: bool,
    calls: Calls,
    cache_root: Path,
    outside: Outside,
) -> None:
    """A symlink planted under any file name the cache uses is never followed.

    The target outside the root keeps its content and mode, a dangling
    target is not created, and the victim's calls still give right values.
    """
    folder = folder_of(cache_root)
    ensure_folder(folder, secure=True, root=cache_root)
    link = folder / name
    link.symlink_to(outside.dangling if dangling else outside.file)
    f = cached(decorator, engine, calls)
    run_twice(f)
    assert outside.untouched()
    # Refused (still the planted link, counted as a fault) or replaced by a file of ours.
    if link.is_symlink():
        assert errors(f) >= 1
    else:
        assert link.lstat().st_uid == os.geteuid()
        assert stat.S_IMODE(link.lstat().st_mode) == 0o600


@pytest.mark.parametrize("name", FIXED_NAMES[None])
def test_planted_hard_link_is_refused(
    name: str, calls: Calls, cache_root: Path, outside: Outside
) -> None:
    """A hard link to a file outside the root is neither chmodded nor written through."""
    folder = folder_of(cache_root)
    ensure_folder(folder, secure=True, root=cache_root)
    os.link(outside.file, folder / name)
    f = cached(bcache, None, calls)
    run_twice(f)
    assert outside.untouched()


def test_planted_fifo_never_hangs(tmp_path: Path) -> None:
    """A FIFO planted as the lock file or the manifest is refused at once (no blocking open)."""
    code = f"""
import os
from pathlib import Path
from twat_cache.engines.persistent import Manifest
from twat_cache.exceptions import CacheOperationError
from twat_cache.paths import open_lock_file
folder = Path({str(tmp_path)!r})
os.mkfifo(folder / ".lock")
os.mkfifo(folder / "twat_cache.json")
try:
    open_lock_file(folder, secure=True)
except CacheOperationError as exc:
    print("lock:", exc)
try:
    Manifest.read(folder)
except OSError as exc:
    print("manifest:", exc)
"""
    out = run_python(code)  # in a subprocess with a timeout: a regression hangs no test run
    assert "lock:" in out
    assert "not a plain file" in out
    assert "manifest:" in out


@pytest.mark.parametrize("plant", ["fifo", "symlink"])
@pytest.mark.parametrize(
    ("kind", "engine", "pattern"),
    [
        ("bcache", None, "values/*.tc"),
        ("bcache", "klepto", "K_*/output.json"),
        ("fcache", None, "*.tc"),
    ],
    ids=["diskcache-value-file", "klepto-entry", "joblib-entry"],
)
def test_a_planted_entry_never_hangs_and_is_never_followed(
    kind: str, engine: str | None, pattern: str, plant: str, tmp_path: Path, outside: Outside
) -> None:
    """An entry written, then replaced by a FIFO (a read of it would block forever) or
    by a symlink out of the root: the next call is a miss with the right value."""
    code = f"""
import os, shutil
from pathlib import Path
from twat_cache import {kind}, get_stats
root = Path(os.environ["TWAT_CACHE_DIR"])

@{kind}(name="victim", engine={engine!r})
def big(n):
    return "x" * n

n = 2 << 20  # a value file of its own under bcache
assert big(n) == "x" * n
(entry,) = [p for p in root.rglob({pattern!r}) if not p.name.startswith(".")]
if entry.is_dir():
    shutil.rmtree(entry)
else:
    entry.unlink()
if {plant!r} == "fifo":
    os.mkfifo(entry)
else:
    entry.symlink_to({str(outside.file)!r})
for _ in range(2):
    assert big(n) == "x" * n
print("ok", get_stats("victim")["errors"] >= 1)
"""
    env = {"TWAT_CACHE_DIR": str(tmp_path / "root")}
    assert run_python(code, env).split() == ["ok", "True"]  # a subprocess with a timeout
    assert outside.untouched()


@pytest.mark.parametrize("level", ["cache folder", "values folder"])
def test_large_values_are_never_written_through_a_symlinked_folder(
    level: str, cache_root: Path, outside: Outside, calls: Calls
) -> None:
    """bcache's folder, or its folder of large values, planted as a symlink out of the
    root: no value file lands outside, and the call returns the right value."""
    folder = folder_of(cache_root)
    ensure_folder(folder.parent, secure=True, root=cache_root)
    if level == "values folder":
        ensure_folder(folder, secure=True, root=cache_root)
        folder = folder / "values"
    folder.symlink_to(outside.dir, target_is_directory=True)

    @bcache(name="victim", folder_name="proj")
    def big(n: int) -> str:
        calls(n)
        return "x" * n

    n = 2 << 20
    assert big(n) == "x" * n
    assert big(n) == "x" * n
    assert outside.untouched()
    assert sorted(p.name for p in outside.dir.iterdir()) == ["victim.txt"]


def test_symlinked_manifest_is_not_read(tmp_path: Path, outside: Outside) -> None:
    """The command line never reads a manifest through a symlink."""
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "twat_cache.json").symlink_to(outside.file)
    with pytest.raises(OSError, match="symlink"):
        Manifest.read(tmp_path / "c")


# -- planted folders ----------------------------------------------------------------------


@pytest.mark.parametrize(("decorator", "engine"), ENGINES)
def test_symlinked_cache_folder_is_refused(
    decorator: Any, engine: str | None, calls: Calls, cache_root: Path, outside: Outside
) -> None:
    """A cache folder that is a symlink is not used: every call computes, nothing lands outside."""
    (cache_root / "proj").mkdir(parents=True)
    folder_of(cache_root).symlink_to(outside.dir, target_is_directory=True)
    f = cached(decorator, engine, calls)
    run_twice(f)
    assert calls == [1, 1, 2]
    assert errors(f) >= 1
    assert outside.untouched()
    assert sorted(p.name for p in outside.dir.iterdir()) == ["victim.txt"]


@pytest.mark.parametrize(("decorator", "engine"), FOLDER_NAME_CASES)
def test_symlinked_level_above_the_cache_folder_is_refused(
    decorator: Any, engine: str | None, calls: Calls, cache_root: Path, outside: Outside
) -> None:
    """A symlink at any level below the root (here ``folder_name``) is not followed."""
    cache_root.mkdir()
    (cache_root / "proj").symlink_to(outside.dir, target_is_directory=True)
    f = cached(decorator, engine, calls)
    run_twice(f)
    assert calls == [1, 1, 2]
    assert sorted(p.name for p in outside.dir.iterdir()) == ["victim.txt"]


@needs_root
@pytest.mark.parametrize(
    ("decorator", "engine", "level"),
    [
        *(pytest.param(*case.values, "proj", id=f"{case.id}-proj", marks=case.marks)
          for case in FOLDER_NAME_CASES),
        *(pytest.param(*case.values, "proj/victim", id=f"{case.id}-cache")
          for case in FOLDER_NAME_CASES),
    ],
)  # fmt: skip
def test_world_writable_folder_of_another_user_is_refused(
    decorator: Any, engine: str | None, level: str, calls: Calls, cache_root: Path
) -> None:
    """A folder made (0o777) by another user is never used: calls compute, nothing is written."""
    folder = cache_root / level
    folder.mkdir(parents=True)
    for path in (cache_root / "proj", folder):
        os.chown(path, NOBODY, NOBODY)
        path.chmod(0o777)
    f = cached(decorator, engine, calls)
    run_twice(f)
    assert calls == [1, 1, 2]
    assert errors(f) >= 1
    assert not [p for p in (cache_root / "proj").rglob("*") if p.stat().st_uid != NOBODY]


@pytest.mark.parametrize(("decorator", "engine"), ENGINES)
def test_our_world_writable_folder_is_repaired_and_emptied(
    decorator: Any, engine: str | None, calls: Calls, cache_root: Path, log: list[str]
) -> None:
    """Our own cache folder left writable by others becomes 0o700, and what it held is dropped.

    Anyone could have planted an entry there, so nothing in it is trusted;
    the cache then works normally.
    """
    folder = folder_of(cache_root)
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    (folder / "planted").write_bytes(b"x")
    (folder / "planted-dir").mkdir()
    f = cached(decorator, engine, calls)
    run_twice(f)
    assert calls == [1, 2]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert not (folder / "planted").exists()
    assert not (folder / "planted-dir").exists()
    assert any("writable by other users" in m for m in log)


def test_repairing_a_shared_level_keeps_other_caches(tmp_path: Path) -> None:
    """A group-writable level above a cache folder is made 0o700 but not emptied."""
    root = tmp_path / "root"
    (root / "proj" / "other").mkdir(parents=True)
    (root / "proj").chmod(0o775)
    ensure_folder(root / "proj" / "mine", secure=True, root=root)
    assert stat.S_IMODE((root / "proj").stat().st_mode) == 0o700
    assert (root / "proj" / "other").is_dir()


def test_secure_false_keeps_shared_folders_as_they_are(tmp_path: Path) -> None:
    """secure=False (a cache shared on purpose) leaves modes alone but still follows no link."""
    root = tmp_path / "root"
    (root / "team").mkdir(parents=True)
    (root / "team").chmod(0o777)
    (root / "team" / "entry").write_bytes(b"kept")
    ensure_folder(root / "team", secure=False, root=root)
    assert stat.S_IMODE((root / "team").stat().st_mode) == 0o777
    assert (root / "team" / "entry").exists()
    (root / "link").symlink_to(root / "team", target_is_directory=True)
    with pytest.raises(CacheOperationError, match="symlink"):
        ensure_folder(root / "link" / "x", secure=False, root=root)


# -- the path helpers, directly ----------------------------------------------------------------


def test_check_folder_creates_nothing(tmp_path: Path) -> None:
    """check_folder reports an absent folder as False and creates no level of it."""
    assert not check_folder(tmp_path / "a" / "b", secure=True, root=tmp_path)
    assert list(tmp_path.iterdir()) == []
    ensure_folder(tmp_path / "a" / "b", secure=True, root=tmp_path)
    assert check_folder(tmp_path / "a" / "b", secure=True, root=tmp_path)


def test_symlinked_root_is_followed(tmp_path: Path) -> None:
    """The root itself is the user's choice: a symlinked root (e.g. ~/.cache) works."""
    (tmp_path / "real").mkdir()
    (tmp_path / "root").symlink_to(tmp_path / "real", target_is_directory=True)
    ensure_folder(tmp_path / "root" / "c", secure=True, root=tmp_path / "root")
    assert (tmp_path / "real" / "c").is_dir()


@pytest.mark.parametrize("kind", ["file", "symlink-to-file", "symlink-to-dir", "dangling"])
def test_no_level_may_be_a_file_or_a_link(kind: str, tmp_path: Path, outside: Outside) -> None:
    """Each level below the root must be a real folder; the error names the level."""
    root = tmp_path / "root"
    root.mkdir()
    level = root / "a"
    if kind == "file":
        level.write_bytes(b"")
    else:
        target = {"symlink-to-file": outside.file, "symlink-to-dir": outside.dir}
        level.symlink_to(target.get(kind, outside.dangling))
    with pytest.raises(CacheOperationError, match=str(level)):
        ensure_folder(root / "a" / "b", secure=True, root=root)
    with pytest.raises(CacheOperationError):
        open_lock_file(root / "a" / "b", secure=True, root=root)
    assert outside.untouched()


@pytest.mark.parametrize("flags", [os.O_RDONLY, os.O_RDWR | os.O_CREAT])
def test_open_file_refuses_links(flags: int, tmp_path: Path, outside: Outside) -> None:
    """open_file never opens through a symlink (existing or dangling target) nor a hard link."""
    for target in (outside.file, outside.dangling):
        link = tmp_path / f"link-{target.name}"
        link.symlink_to(target)
        with pytest.raises(CacheOperationError, match="symlink"):
            open_file(link, flags, secure=True)
    os.link(outside.file, tmp_path / "hard")
    with pytest.raises(CacheOperationError, match="hard link"):
        open_file(tmp_path / "hard", flags, secure=True)
    assert outside.untouched()


@needs_root
def test_open_file_refuses_another_users_file(tmp_path: Path) -> None:
    """With secure=True a file of another user is refused; secure=False may open it."""
    path = tmp_path / "f"
    path.write_bytes(b"")
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(CacheOperationError, match=f"user id {NOBODY}"):
        open_file(path, os.O_RDONLY, secure=True)
    os.close(open_file(path, os.O_RDONLY, secure=False))


@pytest.mark.parametrize(("decorator", "engine"), FOLDER_NAME_CASES)
def test_reports_refuse_an_unsafe_folder_without_changing_it(
    decorator: Any, engine: str | None, calls: Calls, cache_root: Path
) -> None:
    """``stats`` (a report) names a folder others can write and neither chmods nor empties it."""
    f = cached(decorator, engine, calls)
    f(1)
    registry.reset()
    folder = folder_of(cache_root)
    folder.chmod(0o777)
    before = sorted(p.name for p in folder.iterdir())
    [found] = find_caches(cache_root)
    info = describe(found)
    assert "other users can write it" in info["error"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777
    assert sorted(p.name for p in folder.iterdir()) == before
