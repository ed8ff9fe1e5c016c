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

_flock: Callable[[int, int], Any] | None
try:
    import fcntl

    _flock, _EXCLUSIVE_NOW = fcntl.flock, fcntl.LOCK_EX | fcntl.LOCK_NB
except ImportError:  # Windows: no advisory locks, see KeyLock
    _flock, _EXCLUSIVE_NOW = None, 0

__all__ = [
    "KeyLock",
    "atomic_write",
    "cache_folder",
    "cache_root",
    "ensure_folder",
    "lock_path",
    "prune_to_size",
    "remove_path",
    "secure_file",
    "slug",
]

APP_NAME = "twat_cache"
FOLDER_MODE = 0o700
FILE_MODE = 0o600
#: Lock files per cache folder (keys are spread over them by CRC32, see ``lock_path``).
LOCK_STRIPES = 1024
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


def prune_to_size(entries: Iterable[tuple[float, int, Path]], limit: int) -> int:
    """Delete the oldest entries until their total size is at most ``limit`` bytes.

    Args:
        entries: ``(mtime, size, path)`` of every entry of one cache.
        limit: the cache's ``size_limit`` in bytes.

    Returns:
        The total size left.
    """
    ordered = sorted(entries, key=lambda entry: entry[0])
    total = sum(size for _, size, _ in ordered)
    for _, size, path in ordered:
        if total <= limit:
            break
        remove_path(path)
        total -= size
    return total


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


def lock_path(folder: Path, key: str) -> str:
    """The lock file guarding ``key`` in a cache folder: one of ``LOCK_STRIPES`` files.

    Striping keeps the number of lock files bounded (one per key would grow
    with the cache), and the files are never removed, so taking a lock creates
    nothing on disk after the first use; two keys sharing a stripe take turns.
    """
    return os.path.join(folder, ".locks", f"{zlib.crc32(key.encode()) % LOCK_STRIPES:03x}.lock")


class KeyLock:
    """An exclusive ``flock`` on the lock file ``path``; entering returns whether it was taken.

    The kernel releases the lock when its holder dies, so a killed process
    never blocks the others, and after ``timeout`` seconds a caller proceeds
    without it. Where ``fcntl`` does not exist (Windows) the lock is not taken.
    A class rather than a generator: it sits on every persistent miss.
    """

    __slots__ = ("_fd", "path", "secure", "timeout")

    def __init__(self, path: str, secure: bool, timeout: float = LOCK_TIMEOUT) -> None:
        self.path = path
        self.secure = secure
        self.timeout = timeout
        self._fd = -1

    def __enter__(self) -> bool:
        if _flock is None:
            return False
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:  # first use of this stripe, or the folder was removed
            ensure_folder(Path(self.path).parent, self.secure)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE if self.secure else 0o666)
            if self.secure:
                os.fchmod(fd, FILE_MODE)
        deadline = 0.0
        while True:
            try:
                _flock(fd, _EXCLUSIVE_NOW)
                break
            except BlockingIOError:
                now = time.monotonic()
                deadline = deadline or now + self.timeout
                if now >= deadline:
                    os.close(fd)
                    return False
                time.sleep(_LOCK_POLL)
            except BaseException:
                os.close(fd)
                raise
        self._fd = fd
        return True

    def __exit__(self, *exc_info: object) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)  # closing releases the flock
