"""Where persistent caches live, and the file habits every persistent engine shares.

Why one module: the cache root (``cache_dir`` > ``TWAT_CACHE_DIR`` > the
platform's user cache folder), the folder of each cache, secure permissions,
atomic writes and the per-key process lock must behave identically in every
engine, so that two engines never disagree on where an entry is or who may
read it. Nothing here touches the disk until a cache writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from twat_cache.config import CacheConfig
from twat_cache.exceptions import ConfigurationError

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
    "ensure_folder",
    "open_lock_file",
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
    """A folder name for a cache name: readable, filesystem-safe and never ``..``.

    Unsafe characters become ``_``; a short digest keeps two names that slug
    alike (``a/b`` and ``a_b``) in different folders.

    >>> slug("mod.func")
    'mod.func'
    >>> slug("a/b") != slug("a_b")
    True
    """
    safe = _UNSAFE.sub("_", name).strip(".") or "cache"
    if safe == name:
        return safe
    return f"{safe[:80]}-{hashlib.blake2b(name.encode(), digest_size=4).hexdigest()}"


def cache_folder(config: CacheConfig, base: Path | None = None) -> Path:
    """The folder of one cache: ``<root>/<folder_name>/<slug of the cache name>``.

    ``base`` replaces the root for per-call folders (``cache_path=``,
    ``location_arg=``). ``folder_name`` was validated by ``CacheConfig`` and
    cannot leave the root.
    """
    folder = base if base is not None else cache_root(config)
    if config.folder_name is not None:
        folder = folder / config.folder_name
    return folder / slug(config.name or "default")


def ensure_folder(path: Path, secure: bool) -> Path:
    """Create ``path`` and its missing parents, 0o700 whatever the umask when ``secure``."""
    if path.is_dir():
        return path
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
    return path


def secure_file(path: Path | str, secure: bool) -> None:
    """Give a file 0o600 whatever the umask (a no-op when not ``secure``)."""
    if secure:
        os.chmod(path, FILE_MODE)


@contextlib.contextmanager
def atomic_write(path: Path, secure: bool) -> Iterator[int]:
    """Yield a file descriptor whose content replaces ``path`` in one rename.

    Readers see the old file or the new one, never half of one: a process
    killed mid-write leaves only a ``.part`` file, which :func:`prune_to_size`
    and ``clear`` remove. The temp file is created 0o600 from the start.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE if secure else 0o666)
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
    """An exclusive lock on one key, shared by every process using a cache folder.

    A POSIX record lock (``fcntl.lockf``) on one byte of the folder's ``.lock``
    file, at an offset picked by the key's CRC32: one lock file per folder,
    held open by the engine, so a lock costs two system calls and creates
    nothing on disk. The kernel releases a dead holder's locks, so a killed
    process never blocks the others, and after ``timeout`` seconds a caller
    proceeds without the lock. Record locks belong to the process, and two
    threads of one process never compete for a key (the wrapper's per-key
    flight admits one). Where ``fcntl`` does not exist (Windows) no lock is
    taken. A class rather than a generator: it sits on every persistent miss.
    """

    __slots__ = ("_held", "fd", "offset", "timeout")

    def __init__(self, fd: int, key: str, timeout: float = LOCK_TIMEOUT) -> None:
        self.fd = fd
        self.offset = zlib.crc32(key.encode())
        self.timeout = timeout
        self._held = False

    def __enter__(self) -> bool:
        if _lockf is None:
            return False
        deadline = 0.0
        while True:
            try:
                _lockf(self.fd, _EXCLUSIVE_NOW, 1, self.offset)
                break
            except (BlockingIOError, PermissionError):  # held elsewhere (EAGAIN or EACCES)
                now = time.monotonic()
                deadline = deadline or now + self.timeout
                if now >= deadline:
                    return False
                time.sleep(_LOCK_POLL)
        self._held = True
        return True

    def __exit__(self, *exc_info: object) -> None:
        if self._held and _lockf is not None:
            self._held = False
            _lockf(self.fd, _UNLOCK, 1, self.offset)


def open_lock_file(folder: Path, secure: bool) -> int:
    """The descriptor of ``<folder>/.lock``, created (0o600 when ``secure``) if needed.

    Keep it open for the life of the engine: closing any descriptor of the
    file would drop every record lock this process holds on it.
    """
    ensure_folder(folder, secure)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE if secure else 0o666)
    if secure:
        os.fchmod(fd, FILE_MODE)
    return fd
