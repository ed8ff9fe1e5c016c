"""Engines of the ``bcache`` chain: diskcache > klepto (then the memory chain).

Both store framed bytes (see ``serializers.py``) under the 32-hex digest key,
so neither library ever unpickles anything: a stored value is checked by its
CRC32 or HMAC before the configured serializer sees it.

diskcache keeps a value of :data:`FILE_MIN_BYTES` or more out of SQLite, in a
file of its own under ``values/`` written by :class:`~twat_cache.engines.files.ValueFiles`
(arrays in the ``.npy`` layout, DataFrames as Arrow files); its row holds the
file's name. Such a value is written once on disk (not again in the WAL) and
its hit costs about what reading the file costs; diskcache itself counts the
file toward ``size_limit`` and removes it with the row (delete, eviction, expiry).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import os
import re
import sqlite3
import stat
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any, ClassVar

from twat_cache._types import MISSING
from twat_cache.config import CacheConfig
from twat_cache.engines.files import ValueFiles
from twat_cache.engines.persistent import STALE_TEMP, EntryFiles, PersistentEngine, deadline
from twat_cache.exceptions import CacheOperationError, SerializationError
from twat_cache.paths import open_file, own_file, remove_path, secure_file
from twat_cache.serializers import HEAD_SIZE, KIND_SERIALIZED, frame_expiry

__all__ = ["FILE_MIN_BYTES", "DiskCacheEngine", "KleptoEngine"]

#: Values this large (serialized, or an array's or a table's data) get a file of their own.
FILE_MIN_BYTES = 1 << 20
_MODE_RAW = 1  # diskcache's mode for bytes kept verbatim in the database
_MODE_BINARY = 2  # diskcache's mode for a value kept in a file (``filename`` column)
_SELECT = (
    "SELECT mode, value, filename FROM Cache WHERE key = ? AND raw = 1"
    " AND (expire_time IS NULL OR expire_time > ?)"
)
#: diskcache never makes value files of its own: small values stay in SQLite
#: (one transaction per write), large ones are written here (:class:`_InFile`).
_INLINE_LIMIT = 2**40
_VALUES = "values"
_VALUE_NAME = re.compile(r"values/[0-9a-f]{32}\.tc")
_UNBOUNDED = 2**62
_CORRUPT_MARKERS = ("malformed", "not a database", "no such table", "no such column", "corrupt")
_DB_FILES = ("cache.db", "cache.db-wal", "cache.db-shm")

_live: weakref.WeakSet[DiskCacheEngine] = weakref.WeakSet()


def _after_fork() -> None:
    """SQLite connections must not cross a fork: the child opens its own."""
    for engine in list(_live):
        engine._epoch = object()


os.register_at_fork(after_in_child=_after_fork)


def _corrupt(exc: BaseException) -> bool:
    """True for SQLite errors meaning the database itself is damaged (not busy, not full)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    text = str(exc).lower()
    return any(marker in text for marker in _CORRUPT_MARKERS)


class _InFile:
    """What ``diskcache.Cache.set`` is given for a value already written to its own file."""

    __slots__ = ("name", "size")

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size


@functools.cache
def _disk_class(diskcache: Any) -> Any:
    """diskcache's ``Disk``, taught to record an :class:`_InFile` as a file-backed row."""

    class Disk(diskcache.Disk):  # type: ignore[misc]
        def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
            if type(value) is _InFile:
                return value.size, _MODE_BINARY, value.name, None
            return super().store(value, read, key=key)

    return Disk


class DiskCacheEngine(PersistentEngine):
    """diskcache's SQLite store: one small transaction per write, any number of processes.

    Reads go through one read connection per thread with a single prepared
    ``SELECT`` (the same row diskcache's ``get`` reads, minus its per-call
    Python overhead); writes, expiry and size culling go through
    ``diskcache.Cache``. A damaged database is removed and started afresh.
    """

    name: ClassVar[str] = "diskcache"
    requires: ClassVar[str | None] = "diskcache"
    entry_dirs: ClassVar[tuple[str, ...]] = (_VALUES,)

    def __init__(self, config: CacheConfig, base: Path | None = None) -> None:
        import diskcache  # optional engine, imported on use

        super().__init__(config, base)
        self._diskcache = diskcache
        self._db = self.folder / "cache.db"
        self._cache: Any = None
        self._open_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._epoch = object()
        self.files = ValueFiles(config, self.codec, self.root)
        _live.add(self)

    # -- connections -----------------------------------------------------------

    def _store(self, create: bool) -> Any:
        """The ``diskcache.Cache``, opened on first use; ``None`` if never written and not
        ``create``."""
        cache = self._cache
        if cache is not None:
            return cache
        with self._open_lock:
            if self._cache is None:
                if create:
                    self.make_folder()
                elif not self.has_folder():
                    return None
                # SQLite opens these by name, following symlinks, and gives -wal and -shm
                # the database's mode: each must be a plain file of ours (the database
                # created 0o600) before it connects; the checked folder keeps them so.
                if not own_file(self._db, self.secure, create):
                    return None
                for name in _DB_FILES[1:]:
                    own_file(self.folder / name, self.secure, create=False)
                try:
                    self._cache = self._connect()
                except sqlite3.DatabaseError as exc:
                    if _corrupt(exc) and self.repair:  # the next write starts afresh
                        self._remove_files()
                    raise
            return self._cache

    def _connect(self) -> Any:
        return self._diskcache.Cache(
            str(self.folder),
            size_limit=self.config.size_limit or _UNBOUNDED,
            eviction_policy="least-recently-stored",  # reads never write
            disk=_disk_class(self._diskcache),
            disk_min_file_size=_INLINE_LIMIT,
            statistics=False,
            tag_index=False,
            timeout=60,
            sqlite_mmap_size=0,
        )

    def _reader(self) -> sqlite3.Connection | None:
        """This thread's read connection (``None`` while the cache was never written)."""
        if self._store(create=False) is None:
            return None
        uri = f"file:{self._db.as_posix()}?mode=rw"
        con = sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False)
        con.execute("PRAGMA mmap_size = 0")  # a mapped file truncated by someone else is a SIGBUS
        self._local.con = con
        self._local.epoch = self._epoch
        with self._open_lock:
            self._readers.append(con)
        return con

    def _remove_files(self) -> None:
        """Drop a damaged database and its value files: the next write starts a fresh one."""
        for name in _DB_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.folder / name)
        remove_path(self.folder / _VALUES)
        self.files.forget_all()

    def _reset(self) -> None:
        """Close everything and remove the database files (after corruption)."""
        self._close_connections()
        with self._open_lock:
            self._remove_files()

    def _close_connections(self) -> None:
        with self._open_lock:
            cache, self._cache = self._cache, None
            readers, self._readers = self._readers, []
            self._epoch = object()
        if cache is not None:
            with contextlib.suppress(Exception):
                cache.close()
        for con in readers:
            with contextlib.suppress(Exception):
                con.close()

    def _failed(self, exc: BaseException) -> None:
        if _corrupt(exc) and self.repair:
            self._reset()

    def _row(self, query: str, *params: Any, every: bool = False) -> Any:
        """One row (or ``every`` row) read through this thread's read connection.

        ``None`` (or no rows) while the cache was never written.
        """
        local = self._local
        con = getattr(local, "con", None)
        if con is None or local.epoch is not self._epoch:
            con = self._reader()
            if con is None:
                return [] if every else None
        try:
            cursor = con.execute(query, params)
            return cursor.fetchall() if every else cursor.fetchone()
        except sqlite3.DatabaseError as exc:
            self._failed(exc)
            raise

    # -- the store contract ------------------------------------------------------

    def get(self, key: Any) -> Any:
        row = self._row(_SELECT, key, time.time())
        if row is None:
            return MISSING
        mode, data, filename = row
        if mode == _MODE_RAW and type(data) is bytes:
            return self.codec.decode(key, data)
        if mode == _MODE_BINARY and type(filename) is str and _VALUE_NAME.fullmatch(filename):
            return self.files.read(self.folder / filename, key)
        msg = "stored entry is neither raw bytes nor a value file (written by something else)"
        raise SerializationError(msg)

    def peek(self, key: Any) -> str:
        """Expired rows are found (diskcache's read skips them) and kept."""
        row = self._row("SELECT expire_time FROM Cache WHERE key = ? AND raw = 1", key)
        if row is None:
            return "missing"
        if row[0] is not None and row[0] <= time.time():
            return "expired"
        try:
            return "missing" if self.get(key) is MISSING else "hit"
        except SerializationError:
            return "corrupt"

    def set(self, key: Any, value: Any, ttl: float | None = None) -> None:
        native = self.files.native(value, FILE_MIN_BYTES)
        payload = b"" if native is not None else self.codec.dumps(value)
        if ttl is not None and ttl <= 0:  # expires at once: keep nothing, not even an old value
            self.delete(key)
            return
        self.before_write()
        stored: bytes | _InFile
        if native is None and len(payload) < FILE_MIN_BYTES:
            stored = self.codec.frame(key, payload)
        else:
            kind, form = native or (KIND_SERIALIZED, payload)
            name = f"{_VALUES}/{uuid.uuid4().hex}.tc"
            size = self.files.write(self.folder / name, key, kind, form, deadline(ttl))
            stored = _InFile(name, size)
        try:
            self._set_row(key, stored, ttl)
        except BaseException:
            if isinstance(stored, _InFile):  # no row will ever name it
                remove_path(self.folder / stored.name)
            raise
        self.wrote()

    def _set_row(self, key: Any, stored: bytes | _InFile, ttl: float | None) -> None:
        try:
            self._store(create=True).set(key, stored, expire=ttl, retry=True)
        except sqlite3.DatabaseError as exc:
            if not _corrupt(exc) or isinstance(stored, _InFile):
                raise  # (a reset removes value files, this one included)
            self._reset()
            self._store(create=True).set(key, stored, expire=ttl, retry=True)

    def delete(self, key: Any) -> bool:
        cache = self._store(create=False)
        if cache is None:
            return False
        try:
            return bool(cache.delete(key, retry=True))
        except sqlite3.DatabaseError as exc:
            self._failed(exc)
            raise

    def clear(self) -> None:
        super().clear()
        try:
            cache = self._store(create=False)
            if cache is not None:
                cache.clear(retry=True)
        except sqlite3.DatabaseError as exc:
            if not _corrupt(exc):
                raise
            self._reset()

    def close(self) -> None:
        super().close()
        self._close_connections()

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "formats": dict(self.files.formats)}

    def prune(self) -> int:
        removed = super().prune()
        cache = self._store(create=False)
        if cache is None:
            return removed
        try:  # cull() expires first, then evicts down to size_limit (unbounded without one)
            removed += int(cache.cull(retry=True))
        except sqlite3.DatabaseError as exc:
            self._failed(exc)
            raise
        return removed + self._sweep_values()

    def _sweep_values(self) -> int:
        """Remove value files no row names, left by writers killed before their row landed."""
        folder = self.folder / _VALUES
        if not self.repair or not folder.is_dir():
            return 0
        rows = self._row("SELECT filename FROM Cache WHERE mode = ?", _MODE_BINARY, every=True)
        named = {filename for (filename,) in rows}
        stale = time.time() - STALE_TEMP
        removed = 0
        with os.scandir(folder) as listing:
            for item in listing:
                with contextlib.suppress(FileNotFoundError):
                    if f"{_VALUES}/{item.name}" not in named and item.stat().st_mtime < stale:
                        removed += remove_path(Path(item.path))
        return removed

    def _scalar(self, query: str, *params: Any) -> Any:
        row = self._row(query, *params)
        return None if row is None else row[0]

    def expired(self) -> int:
        query = "SELECT COUNT(*) FROM Cache WHERE expire_time IS NOT NULL AND expire_time <= ?"
        return int(self._scalar(query, time.time()) or 0)

    def last_write(self) -> float | None:
        """When the newest entry was stored; ``None`` while the cache holds none.

        Not the files' mtime: opening a ``diskcache.Cache`` rewrites its settings
        table, so the database's mtime says when someone last looked.
        """
        newest = self._scalar("SELECT MAX(store_time) FROM Cache")
        return None if newest is None else float(newest)

    def __len__(self) -> int:
        cache = self._store(create=False)
        return 0 if cache is None else len(cache)


#: klepto's folder-per-key layout: ``K_<key>/output.json``; ``.I_*`` are its temp folders.
_KLEPTO_PREFIX = "K_"
_KLEPTO_TEMP = ".I_"
_KLEPTO_FILE = "output.json"
#: Base64 characters covering the frame header at the start of an entry's JSON string.
_KLEPTO_HEAD_CHARS = 4 * -(-HEAD_SIZE // 3)


class KleptoEngine(EntryFiles):
    """klepto's ``dir_archive``: a folder per key, written to a temp folder and renamed.

    Entries are stored as JSON text (the framed bytes in base64), so klepto
    never unpickles; expiry travels in the frame, and ``size_limit`` is
    enforced by :class:`EntryFiles` (the oldest entries go first).
    """

    name: ClassVar[str] = "klepto"
    requires: ClassVar[str | None] = "klepto"
    entry_dirs: ClassVar[tuple[str, ...]] = (_KLEPTO_PREFIX, _KLEPTO_TEMP)

    def __init__(self, config: CacheConfig, base: Path | None = None) -> None:
        import klepto.archives  # optional engine, imported on use

        super().__init__(config, base)
        self._archives = klepto.archives
        self._archive: Any = None
        self._lock = threading.Lock()

    def _open(self, create: bool) -> Any:
        archive = self._archive
        if archive is not None:
            return archive
        if not create and not self.has_folder():
            return None
        with self._lock:
            if self._archive is None:
                self.make_folder()
                self._archive = self._archives.dir_archive(
                    str(self.folder),
                    cached=False,
                    serialized=True,
                    protocol="json",
                    permissions=0o700 if self.secure else None,
                )
            return self._archive

    def _entry(self, key: str) -> Path:
        return self.folder / f"{_KLEPTO_PREFIX}{key}"

    @staticmethod
    def _planted(path: Path) -> bool:
        """True when an entry's folder or file is not what klepto writes (a symlink, a
        FIFO that would block klepto's read forever): it is never opened."""
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return True
            return not stat.S_ISREG(os.lstat(path / _KLEPTO_FILE).st_mode)
        except FileNotFoundError:
            return False  # absent (or half written): klepto says so itself

    # -- what EntryFiles needs -------------------------------------------------------

    def _is_entry(self, name: str) -> bool:
        return name.startswith(_KLEPTO_PREFIX)

    def _is_temp(self, name: str) -> bool:
        return name.startswith(_KLEPTO_TEMP)

    def _entry_stat(self, path: Path) -> os.stat_result:
        return os.stat(path / _KLEPTO_FILE)

    def _expiry(self, path: Path) -> float | None:
        try:
            fd = open_file(path / _KLEPTO_FILE, os.O_RDONLY, secure=False)
        except (OSError, CacheOperationError):
            return None
        with open(fd, "rb") as f:
            start = f.read(1 + _KLEPTO_HEAD_CHARS)
        if start[:1] != b'"':
            return None
        try:
            return frame_expiry(base64.b64decode(start[1:], validate=True))
        except (binascii.Error, ValueError):
            return None

    # -- the store contract -----------------------------------------------------------

    def get(self, key: Any) -> Any:
        archive = self._open(create=False)
        if archive is None:
            return MISSING
        if self._planted(self._entry(key)):
            msg = "stored entry is not a plain folder and file (a link or a FIFO)"
            raise SerializationError(msg)
        try:
            text = archive[key]
        except KeyError:
            if self._entry(key).exists():  # klepto reports an unreadable entry as missing
                msg = "stored entry cannot be read (damaged)"
                raise SerializationError(msg) from None
            return MISSING
        if not isinstance(text, str):
            msg = "stored entry is not text (written by something else)"
            raise SerializationError(msg)
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            msg = "stored entry is not base64 (damaged)"
            raise SerializationError(msg) from None
        value = self.codec.decode(key, data)
        if value is MISSING:
            self.delete(key)
        return value

    def set(self, key: Any, value: Any, ttl: float | None = None) -> None:
        data = self.codec.encode(key, value, deadline(ttl))  # a refused value touches no file
        if ttl is not None and ttl <= 0:  # expires at once: keep nothing, not even an old value
            self.delete(key)
            return
        self.before_write()
        text = base64.b64encode(data).decode("ascii")
        archive = self._open(create=True)
        archive[key] = text
        entry = self._entry(key)
        try:  # klepto swallows write errors (a full disk): check the whole entry landed
            landed = os.stat(entry / _KLEPTO_FILE).st_size == len(text) + 2  # a JSON string
            if self.secure:
                os.chmod(entry, 0o700)
            secure_file(entry / _KLEPTO_FILE, self.secure)
        except FileNotFoundError:
            landed = False
        if not landed:
            remove_path(entry)
            msg = f"klepto could not store the entry in {self.folder} (disk full?)"
            raise CacheOperationError(msg)
        self._stored(len(text))

    def peek(self, key: Any) -> str:
        return self._peek_at(self._entry(key), key)

    def delete(self, key: Any) -> bool:
        return remove_path(self._entry(key))
