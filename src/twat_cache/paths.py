"""Where persistent caches live, and the file habits every persistent engine shares.

Why one module: the cache root (``cache_dir`` > ``TWAT_CACHE_DIR`` > the
platform's user cache folder), the folder of each cache, secure permissions,
atomic writes and the per-key process lock must behave identically in every
engine, so that two engines never disagree on where an entry is or who may
read it. Nothing here touches the disk until a cache writes.

The root may be shared (``/tmp/...``) or a symlink: it is the user's choice
and is followed. Below it nothing is: no folder level and no file the
package creates, opens or chmods is reached through a symlink, and with
``secure`` every level must be this user's (one other users can write is
made 0o700 and emptied), so another local user can neither read entries,
plant them, nor turn the cache against files outside it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePath
from typing import Any

from twat_cache._log import warn_once
from twat_cache.config import CacheConfig
from twat_cache.exceptions import CacheOperationError, ConfigurationError

_lockf: Callable[..., Any] | None
try:
    import fcntl

    _lockf, _EXCLUSIVE_NOW, _UNLOCK = fcntl.lockf, fcntl.LOCK_EX | fcntl.LOCK_NB, fcntl.LOCK_UN
except ImportError:  # Windows: no advisory locks, see KeyLock
    _lockf, _EXCLUSIVE_NOW, _UNLOCK = None, 0, 0

__all__ = [
    "KeyLock",
    "atomic_write",
    "cache_folder",
    "cache_root",
    "check_folder",
    "ensure_folder",
    "open_file",
    "open_lock_file",
    "own_file",
    "prune_to_size",
    "remove_path",
    "secure_file",
    "slug",
]

APP_NAME = "twat_cache"
FOLDER_MODE = 0o700
FILE_MODE = 0o600
#: A process that cannot take a key's lock within this many seconds computes anyway:
#: a hung holder slows the others down but never blocks them for good.
LOCK_TIMEOUT = 60.0
_LOCK_POLL = 0.005
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Longest folder name kept as given: most file systems allow 255 bytes, eCryptfs 143.
_MAX_NAME = 143
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
#: O_NONBLOCK: a planted FIFO must not hang the open; it is refused once opened.
_FILE_FLAGS = _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)
#: Folders below the root are walked with openat-style calls where the OS has them.
_OPENAT = bool(_NOFOLLOW) and {os.open, os.mkdir} <= os.supports_dir_fd


def cache_root(config: CacheConfig | None = None) -> Path:
    """The folder every persistent cache lives under.

    ``cache_dir`` wins, then ``TWAT_CACHE_DIR`` (read now, never at import),
    then the platform's user cache folder (``platformdirs`` when installed,
    else ``~/.cache``) with ``twat_cache`` appended.

    >>> cache_root(CacheConfig(cache_dir="/tmp/x")).as_posix()
    '/tmp/x'
    """
    if config is not None and config.cache_dir is not None:
        return config.cache_dir
    env = os.environ.get("TWAT_CACHE_DIR")
    if env:
        path = Path(env).expanduser()
        if not path.is_absolute() or "\x00" in env:
            msg = f"environment variable TWAT_CACHE_DIR: invalid value {env!r}: must be absolute"
            raise ConfigurationError(msg)
        return path
    try:
        import platformdirs  # optional, and only needed without a configured root
    except ImportError:
        return Path.home() / ".cache" / APP_NAME
    return Path(platformdirs.user_cache_dir()) / APP_NAME


def slug(name: str) -> str:
    """A folder name for a cache name: readable, filesystem-safe, short and never ``..``.

    Unsafe characters become ``_``; a short digest keeps two names that slug
    alike (``a/b`` and ``a_b``) in different folders, and keeps a name too
    long for the file system (most allow 255 bytes) apart from its truncation.

    >>> slug("mod.func")
    'mod.func'
    >>> slug("a/b") != slug("a_b")
    True
    >>> len(slug("x" * 1000))
    89
    """
    safe = _UNSAFE.sub("_", name).strip(".") or "cache"
    if safe == name and len(name) <= _MAX_NAME:
        return safe
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    return f"{safe[:80]}-{digest}"


def _fit(part: str) -> str:
    """A ``folder_name`` level as given, unless too long for (or not encodable by) the OS."""
    try:
        size = len(os.fsencode(part))
    except UnicodeError:  # a lone surrogate: no file system can hold the name
        return slug(part)
    return part if size <= _MAX_NAME else slug(part)


def cache_folder(config: CacheConfig, base: Path | None = None) -> Path:
    """The folder of one cache: ``<root>/<folder_name>/<slug of the cache name>``.

    ``base`` replaces the root for per-call folders (``cache_path=``,
    ``location_arg=``). ``folder_name`` was validated by ``CacheConfig`` and
    cannot leave the root; a level of it too long for the file system is
    shortened as :func:`slug` shortens names.
    """
    folder = base if base is not None else cache_root(config)
    if config.folder_name is not None:
        folder = folder.joinpath(*(_fit(part) for part in PurePath(config.folder_name).parts))
    return folder / slug(config.name or "default")


def _refusal(path: Path, why: str) -> CacheOperationError:
    return CacheOperationError(f"refusing to use {path}: {why}")


def _foreign(st: os.stat_result) -> str | None:
    """Why a file or folder is not this user's, or ``None`` (also where ACLs decide)."""
    if not hasattr(os, "geteuid") or st.st_uid == os.geteuid():
        return None
    return f"it belongs to user id {st.st_uid}, not to this user ({os.geteuid()})"


def _make_root(path: Path, secure: bool) -> None:
    """Create the root and its missing parents, 0o700 whatever the umask when ``secure``.

    The root and what lies above it are the user's choice (a symlinked
    ``~/.cache`` is fine), so they are followed and not checked.
    """
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE if secure else 0o777)
        except FileExistsError:  # another process made it meanwhile
            continue
        if secure:
            os.chmod(folder, FOLDER_MODE)  # mkdir's mode is masked by the umask


def _levels(path: Path, root: Path | None) -> tuple[str, list[str]]:
    """The trusted folder to start from, and the levels below it that get checked.

    String work, not pathlib: this runs on every persistent write.
    """
    text = str(path)
    if root is not None:
        prefix = str(root).rstrip(os.sep) + os.sep
        if text.startswith(prefix) and len(text) > len(prefix):
            return str(root), text[len(prefix) :].split(os.sep)
    parent, name = os.path.split(text)
    return parent, [name]


def _enter(
    parent: int, name: str, where: str, secure: bool, create: bool, last: bool, repair: bool
) -> int | None:
    """Open the folder ``name`` of the folder ``parent`` without following a symlink.

    With ``secure`` the folder must belong to this user and is made 0o700;
    when others could write it and it is the cache's own folder (``last``),
    its entries are dropped, since anyone could have planted them (a folder
    above it holds other caches' folders, each checked when used). Without
    ``repair`` (reports, which change nothing) such a folder is refused
    instead. ``None`` when it does not exist and ``create`` is false.
    """
    created = False
    while True:
        try:
            fd = os.open(name, _DIR_FLAGS | _NOFOLLOW, dir_fd=parent)
            break
        except FileNotFoundError:
            if not create:
                return None
            if created:  # made, then removed by someone else at once
                raise
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            kind = "a symlink" if os.path.islink(where) else "not a folder"
            why = f"it is {kind}; nothing under the cache root is followed"
            raise _refusal(Path(where), why) from None
        try:
            os.mkdir(name, FOLDER_MODE if secure else 0o777, dir_fd=parent)
            created = True
        except FileExistsError:  # another process made it meanwhile
            pass
    try:
        if secure:
            st = os.fstat(fd)
            foreign = _foreign(st)
            if foreign is not None:
                raise _refusal(Path(where), foreign)
            mode = stat.S_IMODE(st.st_mode)
            if not repair and mode & _OTHERS_WRITE:
                why = "other users can write it (the next cache write repairs it)"
                raise _refusal(Path(where), why)
            if repair and (created or mode != FOLDER_MODE):
                os.fchmod(fd, FOLDER_MODE)  # mkdir's mode is masked by the umask
            if last and not created and mode & _OTHERS_WRITE:
                _empty(Path(where))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _empty(folder: Path) -> None:
    """Drop what a folder others could write holds (it is 0o700 by now): it may be planted.

    ``remove_path`` never follows a symlink, and ``shutil.rmtree`` resists them.
    """
    warn_once(
        ("unsafe-folder", str(folder)),
        f"twat_cache: {folder} was writable by other users: made it 0o700 and dropped its "
        "entries, which anyone could have planted",
    )
    with os.scandir(folder) as listing:
        doomed = [Path(item.path) for item in listing]
    for path in doomed:
        with contextlib.suppress(FileNotFoundError):
            remove_path(path)


def _walk(path: Path, secure: bool, root: Path | None, create: bool, repair: bool = True) -> bool:
    """Open each level of ``path`` below ``root`` as :func:`_enter` does; False if one is absent."""
    base, parts = _levels(path, root)
    if not _OPENAT:  # Windows: no dir_fd, no O_NOFOLLOW; ownership is a matter of ACLs there
        return _walk_by_path(Path(base), parts, secure, create)
    if _already_safe(base, parts, secure):
        return True
    try:
        fd = os.open(base, _DIR_FLAGS)
    except FileNotFoundError:
        if not create:
            return False
        _make_root(Path(base), secure)
        fd = os.open(base, _DIR_FLAGS)
    try:
        where = base
        for depth, part in enumerate(parts, 1):
            where = f"{where}{os.sep}{part}"
            last = depth == len(parts)
            child = _enter(fd, part, where, secure, create, last, repair)
            if child is None:
                return False
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    return True


def _already_safe(base: str, parts: list[str], secure: bool) -> bool:
    """True when every level is a real folder (ours and 0o700 with ``secure``): one lstat each.

    The common case of every write, answered without opening anything: no
    other user can change a level that is ours and 0o700, so checking by
    path is as safe here as the descriptor walk, which handles the rest.
    """
    euid = os.geteuid() if secure else -1
    where = base
    for part in parts:
        where = f"{where}{os.sep}{part}"
        try:
            st = os.lstat(where)
        except OSError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            return False
        if secure and (st.st_uid != euid or stat.S_IMODE(st.st_mode) != FOLDER_MODE):
            return False
    return True


def _walk_by_path(base: Path, parts: list[str], secure: bool, create: bool) -> bool:
    """:func:`_walk` where only paths exist: refuse links, best effort (racy)."""
    where = base
    for part in parts:
        where = where / part
        try:
            st = os.lstat(where)
        except FileNotFoundError:
            if not create:
                return False
            with contextlib.suppress(FileExistsError):
                where.mkdir(mode=FOLDER_MODE if secure else 0o777)
            st = os.lstat(where)
        if not stat.S_ISDIR(st.st_mode):  # lstat: a symlink is not a folder
            raise _refusal(where, "it is a link or not a folder")
    return True


def ensure_folder(path: Path, secure: bool, root: Path | None = None) -> Path:
    """Create ``path`` (0o700 when ``secure``), checking every level below ``root``.

    No level below ``root`` (only ``path`` itself without one) is followed
    through a symlink; with ``secure`` each must belong to this user, and one
    that other users can write is made 0o700 and emptied.

    Raises:
        CacheOperationError: a level is a symlink, not a folder, or another user's.
        OSError: a folder cannot be created.
    """
    _walk(path, secure, root, create=True)
    return path


def check_folder(path: Path, secure: bool, root: Path | None = None, repair: bool = True) -> bool:
    """True if ``path`` exists and passes :func:`ensure_folder`'s checks; False if absent.

    ``repair=False`` (reports) refuses a folder other users can write rather
    than repairing and emptying it.

    Raises:
        CacheOperationError: a level is a symlink, not a folder, or another user's.
    """
    return _walk(path, secure, root, create=False, repair=repair)


def open_file(path: Path, flags: int, secure: bool) -> int:
    """Open a file of a cache folder, never through a symlink, and check what was opened.

    The file must be a plain file; with ``secure`` it must also be this
    user's, with no other name (a planted hard link), and it is made 0o600.
    A file created here is 0o600 (0o666 less the umask without ``secure``).

    Raises:
        CacheOperationError: the file is a symlink, not a plain file, or another user's.
        OSError: it cannot be opened (``FileNotFoundError`` without ``os.O_CREAT``).
    """
    if not _NOFOLLOW and os.path.islink(path):  # Windows: check first, as best we can
        raise _refusal(path, "it is a symlink; nothing under the cache root is followed")
    try:
        fd = os.open(path, flags | _FILE_FLAGS, FILE_MODE if secure else 0o666)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise _refusal(path, "it is a symlink; nothing under the cache root is followed") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refusal(path, "it is not a plain file")
        if secure:
            foreign = _foreign(st)
            if foreign is not None:
                raise _refusal(path, foreign)
            if st.st_nlink > 1:
                raise _refusal(path, "it has another name (a hard link)")
            if stat.S_IMODE(st.st_mode) != FILE_MODE:
                os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def own_file(path: Path, secure: bool, create: bool) -> bool:
    """Check ``path`` as :func:`open_file` does, creating it first when ``create``.

    For files another library opens by name (SQLite's database): once the
    folder is checked and this file is, nobody else can swap it.

    Returns:
        False when the file does not exist and ``create`` is false.
    """
    try:
        fd = open_file(path, os.O_RDONLY | (os.O_CREAT if create else 0), secure)
    except FileNotFoundError:
        return False
    os.close(fd)
    return True


def secure_file(path: Path, secure: bool) -> None:
    """Give a file 0o600 whatever the umask (a no-op when not ``secure``), never via a symlink.

    Raises:
        FileNotFoundError: the file does not exist.
        CacheOperationError: it is a symlink, not a plain file, or another user's.
    """
    if secure:
        os.close(open_file(path, os.O_RDONLY, secure))


@contextlib.contextmanager
def atomic_write(path: Path, secure: bool) -> Iterator[int]:
    """Yield a file descriptor whose content replaces ``path`` in one rename.

    Readers see the old file or the new one, never half of one: a process
    killed mid-write leaves only a ``.part`` file, which :func:`prune_to_size`
    and ``clear`` remove. The temp file is created 0o600 from the start, and
    the rename replaces whatever ``path`` was (a planted symlink included)
    without following it.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    fd = os.open(tmp, flags, FILE_MODE if secure else 0o666)
    try:
        if secure:
            os.fchmod(fd, FILE_MODE)
        yield fd
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def prune_to_size(entries: Iterable[tuple[float, int, Path]], limit: int) -> tuple[int, int]:
    """Delete the oldest entries until their total size is at most ``limit`` bytes.

    Args:
        entries: ``(mtime, size, path)`` of every entry of one cache.
        limit: the cache's ``size_limit`` in bytes.

    Returns:
        The total size left, and how many entries were deleted.
    """
    ordered = sorted(entries, key=lambda entry: entry[0])
    total = sum(size for _, size, _ in ordered)
    removed = 0
    for _, size, path in ordered:
        if total <= limit:
            break
        removed += remove_path(path)
        total -= size
    return total, removed


def remove_path(path: Path) -> bool:
    """Remove a file or a folder entry; False if another process removed it first."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    return True


class KeyLock:
    """An exclusive lock on one key, for every thread of every process using a cache folder.

    Across processes: a POSIX record lock (``fcntl.lockf``) on one byte of the
    folder's ``.lock`` file, at an offset picked by the key's CRC32: one lock
    file per folder, held open by the engine, so a lock costs two system calls
    and creates nothing on disk. The kernel releases a dead holder's locks, so a
    killed process never blocks the others, and after ``timeout`` seconds a
    caller proceeds without the lock. Record locks belong to the process, so
    threads of one process first take a per-key thread lock. Where ``fcntl``
    does not exist (Windows) only the thread lock is taken. A class rather than
    a generator: it sits on every persistent miss.
    """

    __slots__ = ("_held", "_slot", "fd", "offset", "timeout")

    def __init__(self, fd: int, key: str, timeout: float = LOCK_TIMEOUT) -> None:
        self.fd = fd
        self.offset = zlib.crc32(key.encode())
        self.timeout = timeout
        self._held = False
        self._slot: list[Any] | None = None

    def __enter__(self) -> bool:
        deadline = time.monotonic() + self.timeout
        slot = _thread_slot((self.fd, self.offset))
        if not slot[0].acquire(timeout=self.timeout):
            _leave_slot((self.fd, self.offset), slot)
            return False
        self._slot = slot
        if _lockf is not None:
            while True:
                try:
                    _lockf(self.fd, _EXCLUSIVE_NOW, 1, self.offset)
                    break
                except (BlockingIOError, PermissionError):  # held elsewhere (EAGAIN or EACCES)
                    if time.monotonic() >= deadline:
                        self._release_thread()
                        return False
                    time.sleep(_LOCK_POLL)
        self._held = True
        return True

    def _release_thread(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            slot[0].release()
            _leave_slot((self.fd, self.offset), slot)

    def __exit__(self, *exc_info: object) -> None:
        if self._held:
            self._held = False
            if _lockf is not None:
                _lockf(self.fd, _UNLOCK, 1, self.offset)
            self._release_thread()


#: (lock file descriptor, offset) -> [thread lock, users]: the in-process half of KeyLock.
_slots: dict[tuple[int, int], list[Any]] = {}
_slots_guard = threading.Lock()


# The guard is taken with acquire/release, not ``with``: every persistent miss passes
# here twice, and ``with`` on a lock costs about twice as many instructions.


def _thread_slot(where: tuple[int, int]) -> list[Any]:
    guard = _slots_guard
    guard.acquire()
    try:
        slot = _slots.get(where)
        if slot is None:
            slot = _slots[where] = [threading.Lock(), 0]
        slot[1] += 1
        return slot
    finally:
        guard.release()


def _leave_slot(where: tuple[int, int], slot: list[Any]) -> None:
    guard = _slots_guard
    guard.acquire()
    try:
        slot[1] -= 1
        if slot[1] == 0 and _slots.get(where) is slot:
            del _slots[where]
    finally:
        guard.release()


def _forget_slots_after_fork() -> None:
    global _slots_guard
    _slots_guard = threading.Lock()
    _slots.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_slots_after_fork)


def open_lock_file(folder: Path, secure: bool, root: Path | None = None) -> int:
    """The descriptor of ``<folder>/.lock``, created (0o600 when ``secure``) if needed.

    The folder is checked as :func:`ensure_folder` does (from ``root``) and
    the lock file as :func:`open_file` does, so a planted symlink is never
    followed. Keep it open for the life of the engine: closing any
    descriptor of the file would drop every record lock this process holds
    on it.

    Raises:
        CacheOperationError: the folder or the lock file is unsafe to use.
    """
    ensure_folder(folder, secure, root)
    return open_file(folder / ".lock", os.O_RDWR | os.O_CREAT, secure)
