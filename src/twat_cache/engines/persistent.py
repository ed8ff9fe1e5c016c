"""What every on-disk store shares: its folder, its codec, its manifest, the process lock.

The folder is worked out when the store is built (at decoration) but created
only by the first write; reads of a cache that was never written are misses
that touch nothing. The first write also leaves a small manifest
(:data:`MANIFEST`) in the folder, so that another process (the command line)
can find the cache and reopen it with the same engine.

:class:`EntryFiles` is the housekeeping of stores keeping one file (or folder)
per entry, with the deadline in the entry's frame header: expiry, ``prune``
and ``size_limit`` are worked out here once, for klepto and the file store.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
import time
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from twat_cache._types import MISSING
from twat_cache.config import CacheConfig
from twat_cache.engines.base import Store
from twat_cache.exceptions import CacheOperationError, SerializationError
from twat_cache.paths import (
    KeyLock,
    atomic_write,
    cache_folder,
    cache_root,
    check_folder,
    ensure_folder,
    open_file,
    open_lock_file,
    prune_to_size,
    remove_path,
)
from twat_cache.serializers import (
    Codec,
    JsonSerializer,
    PickleSerializer,
    TypedSerializer,
    codec_for,
)

__all__ = [
    "FILE_STATES",
    "MANIFEST",
    "VERSIONS",
    "EntryFiles",
    "Manifest",
    "PersistentEngine",
    "deadline",
]

#: Per-call folders (``cache_path=``, ``location_arg=``) kept open at once per cache.
_MAX_SIBLINGS = 16
#: The file naming a cache folder's cache and engine, written on the first write.
MANIFEST = "twat_cache.json"
#: The hits and misses of every process using the folder (``get_stats()["fleet"]``).
FLEET = "twat_cache.fleet.json"
_MANIFEST_FORMAT = 1
_MANIFEST_MAX_BYTES = 64 * 1024
#: The file naming the code version a cache folder's entries belong to.
VERSIONS = "twat_cache_version.json"
#: The file keeping the last keyed state of each ``files=`` path (for ``cache_explain``).
FILE_STATES = "twat_cache_files.json"
_MAX_FILE_STATES = 1024
#: Temp files or folders older than this were left by a killed writer.
STALE_TEMP = 3600.0


def deadline(ttl: float | None) -> float:
    """The frame header's deadline for an entry living ``ttl`` seconds (``0.0``: never).

    >>> deadline(None)
    0.0
    >>> deadline(60) > 0
    True
    """
    return 0.0 if ttl is None else time.time() + ttl


def _plain_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _serializer_name(serializer: Any) -> str:
    for cls, name in ((PickleSerializer, "pickle"), (JsonSerializer, "json")):
        if type(serializer) is cls:
            return name
    if isinstance(serializer, TypedSerializer):
        return "typed"
    if isinstance(serializer, str):
        return serializer
    return type(serializer).__qualname__


@dataclass(frozen=True)
class Manifest:
    """What another process needs to find a cache folder and reopen it.

    Only facts about the cache are kept (no secret, no function, no value):
    the name it is registered under, the engine that wrote it, and the options
    housekeeping needs (``ttl``, ``size_limit``).

    >>> m = Manifest("mod.f", "diskcache", None, 60.0, None, False, "pickle", True, 0.0)
    >>> Manifest.loads(m.dumps()) == m
    True
    """

    name: str
    engine: str
    folder_name: str | None
    ttl: float | None
    size_limit: int | None
    compress: bool
    serializer: str
    secure: bool
    created: float

    @classmethod
    def of(cls, engine: PersistentEngine) -> Manifest:
        """The manifest describing ``engine``'s cache, created now."""
        config = engine.config
        return cls(
            name=config.name or "default",
            engine=engine.name,
            folder_name=config.folder_name,
            ttl=config.ttl,
            size_limit=config.size_limit,
            compress=config.compress,
            serializer=_serializer_name(config.serializer),
            secure=config.secure,
            created=time.time(),
        )

    def dumps(self) -> bytes:
        """The manifest as JSON bytes."""
        return json.dumps({"format": _MANIFEST_FORMAT, **asdict(self)}, indent=1).encode()

    @classmethod
    def loads(cls, data: bytes) -> Manifest:
        """A manifest back from :meth:`dumps`.

        Raises:
            ValueError: not a twat-cache manifest (or a newer format).
        """
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            msg = f"not JSON: {exc}"
            raise ValueError(msg) from None
        if not isinstance(raw, dict) or raw.get("format") != _MANIFEST_FORMAT:
            msg = "not a twat-cache manifest of a known format"
            raise ValueError(msg)
        checks: dict[str, tuple[type, ...]] = {
            "name": (str,),
            "engine": (str,),
            "folder_name": (str, type(None)),
            "ttl": (int, float, type(None)),
            "size_limit": (int, type(None)),
            "compress": (bool,),
            "serializer": (str,),
            "secure": (bool,),
            "created": (int, float),
        }
        for field, types in checks.items():
            value = raw.get(field)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                msg = f"manifest field {field!r} has a bad value {value!r}"
                raise ValueError(msg)
        return cls(**{field: raw[field] for field in checks})

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """The manifest of the cache folder ``folder``, never read through a symlink.

        Raises:
            OSError: no readable manifest there (or a symlink, or not a plain file).
            ValueError: the file is not a twat-cache manifest.
        """
        try:
            fd = open_file(folder / MANIFEST, os.O_RDONLY, secure=False)
        except CacheOperationError as exc:
            raise OSError(str(exc)) from None
        with open(fd, "rb") as f:
            return cls.loads(f.read(_MANIFEST_MAX_BYTES))


class PersistentEngine(Store):
    """A store keeping framed bytes under a cache folder, read by any process.

    Subclasses implement ``get``/``set``/``delete``/``clear``/``__len__`` for
    one folder; this class adds the same cache under other roots (:meth:`at`)
    and the lock that makes processes compute a cold key once (:meth:`key_lock`).

    ``set(key, value, ttl)``: ``ttl`` seconds of life, ``None`` for no expiry,
    ``0`` keeps nothing (the value is still serialized, so a value the
    serializer refuses is reported the same way whatever the ttl).

    ``CacheEngine`` is a base only while ``wrapper.py`` still calls engines
    through it; the ``call`` package needs ``Store`` alone.
    """

    persistent: ClassVar[bool] = True
    shared: ClassVar[bool] = True
    #: Prefixes of the sub-folders holding entries, which a scan for caches need not enter.
    entry_dirs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: CacheConfig, base: Path | None = None) -> None:
        super().__init__(config)
        self.base = base
        #: Where trust ends: the root is followed as given, every level below it is checked.
        self.root = base if base is not None else cache_root(config)
        self.folder = cache_folder(config, self.root)
        self.secure = config.secure
        self.codec: Codec = codec_for(config.serializer, config.compress, config.secure)
        self._siblings: OrderedDict[Path, PersistentEngine] = OrderedDict()
        self._siblings_lock = threading.Lock()
        self._lock_fd = -1
        self._manifest_written = False
        #: Drop damaged files and temp files of killed writers when met. The command
        #: line turns this off for commands that only report, which delete nothing.
        self.repair = True
        #: The code version this process writes under (``adopt_version``), the parts it
        #: is made of (computed on the first write only), and whether that write is done.
        self._tag: tuple[str, ...] | None = None
        self._parts: Callable[[], dict[str, str]] | None = None
        self._adopted = False
        self._adopt_lock = threading.Lock()
        self._files: dict[str, tuple[Any, ...]] | None = None

    # -- code versions ------------------------------------------------------------------

    def adopt_version(self, tag: tuple[str, ...], parts: Callable[[], dict[str, str]]) -> None:
        """Write under the code version ``tag`` (see :meth:`Store.adopt_version`).

        Two different tags in one process (functions sharing one ``name=``) turn
        the clean-up off: entries do not say which version wrote them.
        """
        if self._tag is not None and self._tag != tag:
            self._adopted = True  # nothing is removed for either
            return
        self._tag, self._parts = tag, parts
        for engine in self.siblings():
            engine.adopt_version(tag, parts)

    def track_files(self, states: dict[str, tuple[Any, ...]]) -> None:
        self._files = states
        for engine in self.siblings():
            engine.track_files(states)

    def tracked_files(self) -> dict[str, tuple[Any, ...]]:
        raw = self._read_json(FILE_STATES)
        if not isinstance(raw, dict):
            return {}
        return {path: tuple(state) for path, state in raw.items() if isinstance(state, list)}

    def _note_files(self, states: dict[str, tuple[Any, ...]]) -> None:
        """Merge the file states of the call being stored into :data:`FILE_STATES`.

        Only writes of a ``files=`` function pay for it; a race between two writers
        loses a state, which only makes an explanation say "new"."""
        known = self.tracked_files()
        known.update(states)
        if len(known) > _MAX_FILE_STATES:  # the oldest-recorded paths go first
            known = dict(list(known.items())[-_MAX_FILE_STATES:])
        with contextlib.suppress(OSError, CacheOperationError):
            self.make_folder()
            with atomic_write(self.folder / FILE_STATES, self.secure) as fd:
                os.write(fd, json.dumps(known).encode())

    def _read_json(self, name: str) -> Any:
        """A small JSON file of this folder, ``None`` if missing or unreadable."""
        try:
            fd = open_file(self.folder / name, os.O_RDONLY, secure=False)
        except (CacheOperationError, OSError):
            return None
        try:
            with open(fd, "rb") as f:
                return json.loads(f.read(_MANIFEST_MAX_BYTES * 16))
        except (OSError, ValueError):
            return None

    def version_record(self) -> dict[str, Any] | None:
        """The folder's code-version record (``tag``, ``parts``, ``previous``), ``None`` if
        there is none or it is unreadable."""
        record = self._read_json(VERSIONS)
        if not isinstance(record, dict) or not isinstance(record.get("tag"), list):
            return None
        return record

    def before_write(self) -> None:
        """Called before each write: the first under a new code version removes the
        entries of the version the folder held before and records the new one.

        Only writes pay for this (one flag test after the first): hits read nothing
        more. A record that cannot be read or written only skips the clean-up.
        """
        if self._files:
            self._note_files(dict(self._files))
        if self._adopted:
            return
        with self._adopt_lock:  # another thread's first write waits: its entry must stay
            if not self._adopted:
                # Housekeeping: if it fails (a folder level refused, a code walk that
                # cannot read a source), the write goes ahead and old entries stay.
                with contextlib.suppress(Exception):
                    self._adopt()
                self._adopted = True

    def _adopt(self) -> None:
        tag, parts = self._tag, self._parts
        if tag is None or parts is None:
            return
        record = self.version_record()
        if record is not None and record["tag"] == list(tag):
            return
        if record is not None:  # written under another version: its entries are unreachable
            self._clear_here()
        previous = None if record is None else {"tag": record["tag"], "parts": record.get("parts")}
        new = {"format": 1, "tag": list(tag), "parts": parts(), "previous": previous}
        with contextlib.suppress(OSError, CacheOperationError):
            self.make_folder()
            with atomic_write(self.folder / VERSIONS, self.secure) as fd:
                os.write(fd, json.dumps(new, indent=1).encode())

    def _clear_here(self) -> None:
        """:meth:`clear` of this folder only (per-call folders keep their own versions)."""
        with self._siblings_lock:
            saved, self._siblings = self._siblings, OrderedDict()
        try:
            self.clear()
        finally:
            with self._siblings_lock:
                saved.update(self._siblings)
                self._siblings = saved

    def make_folder(self) -> Path:
        """Create this cache's folder, checking every level below the root (see ``ensure_folder``).

        Raises:
            CacheOperationError: a level is a symlink, not a folder, or another user's.
        """
        return ensure_folder(self.folder, self.secure, self.root)

    def has_folder(self) -> bool:
        """True if this cache's folder exists and passes :meth:`make_folder`'s checks.

        Without :attr:`repair` (reports), a folder other users can write is
        refused rather than repaired and emptied.

        Raises:
            CacheOperationError: a level is a symlink, not a folder, or another user's.
        """
        return check_folder(self.folder, self.secure, self.root, repair=self.repair)

    def wrote(self) -> None:
        """Called after each stored entry: the first one leaves the folder's manifest.

        An existing manifest (another process wrote it) is kept. A manifest that
        cannot be written only hides the cache from the command line, so the
        error is swallowed and the next write tries again.
        """
        if self._manifest_written:
            return
        path = self.folder / MANIFEST
        try:
            self.make_folder()
            if not _plain_file(path):  # a planted symlink is replaced, not followed
                with atomic_write(path, self.secure) as fd:
                    os.write(fd, Manifest.of(self).dumps())
        except (OSError, CacheOperationError):
            return
        self._manifest_written = True

    def key_lock(self, key: str) -> KeyLock:
        """An exclusive lock on ``key`` shared by every process using this folder."""
        fd = self._lock_fd
        if fd < 0:
            with self._siblings_lock:
                if self._lock_fd < 0:
                    self._lock_fd = open_lock_file(self.folder, self.secure, self.root)
                fd = self._lock_fd
        return KeyLock(fd, key)

    def add_counts(self, hits: int, misses: int) -> None:
        """Add to the folder's fleet counters, under the folder's lock (read, add, replace)."""
        if not (hits or misses):
            return
        self.make_folder()
        path = self.folder / FLEET
        with self.key_lock(FLEET):
            old = self._read_counts(path)
            data = json.dumps({"hits": old[0] + hits, "misses": old[1] + misses}).encode()
            with atomic_write(path, self.secure) as fd:
                os.write(fd, data)

    def fleet_counts(self) -> tuple[int, int]:
        return self._read_counts(self.folder / FLEET)

    def reset_counts(self) -> None:
        if not self.folder.is_dir():
            return
        with self.key_lock(FLEET), contextlib.suppress(FileNotFoundError):
            (self.folder / FLEET).unlink()

    @staticmethod
    def _read_counts(path: Path) -> tuple[int, int]:
        """The counters in ``path``; a missing or damaged file counts from zero."""
        try:
            data = json.loads(path.read_bytes())
            return int(data["hits"]), int(data["misses"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0, 0

    def at(self, base: str | Path) -> PersistentEngine:
        """The same cache (config, codec) stored under the root ``base`` instead."""
        root = Path(base).expanduser().absolute()
        if root == self.base:
            return self
        with self._siblings_lock:
            engine = self._siblings.get(root)
            if engine is not None:
                self._siblings.move_to_end(root)
                return engine
            engine = type(self)(self.config, base=root)
            engine.codec = self.codec
            engine._tag, engine._parts = self._tag, self._parts
            engine._files = self._files
            self._siblings[root] = engine
            evicted = (
                self._siblings.popitem(last=False)[1]
                if len(self._siblings) > _MAX_SIBLINGS
                else None
            )
        if evicted is not None:
            evicted.close()
        return engine

    def siblings(self) -> list[PersistentEngine]:
        """The per-call folders this process opened, for ``clear`` and ``close``."""
        with self._siblings_lock:
            return list(self._siblings.values())

    def close(self) -> None:
        for engine in self.siblings():
            engine.close()
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            os.close(fd)

    def clear(self) -> None:
        for engine in self.siblings():
            engine.clear()

    def prune(self) -> int:
        """Drop expired entries, then the oldest ones beyond ``size_limit``; how many went.

        Engines drop an expired entry when they next read it; ``prune`` is for
        entries nobody reads again, which would otherwise stay on disk.
        """
        return sum(engine.prune() for engine in self.siblings())

    def expired(self) -> int:
        """How many stored entries are past their deadline (what :meth:`prune` drops first)."""
        return 0

    def last_write(self) -> float | None:
        """When a file of this cache last changed (epoch seconds), ``None`` before any write."""
        newest: float | None = None
        try:
            for path in self.folder.rglob("*"):
                with contextlib.suppress(OSError):
                    st = path.stat()
                    if newest is None or st.st_mtime > newest:
                        newest = st.st_mtime
        except OSError:  # the folder vanished while we walked it
            return newest
        return newest

    def stats(self) -> dict[str, Any]:
        return {"directory": str(self.folder), "bytes": self.disk_bytes()}

    def disk_bytes(self) -> int:
        """Bytes this cache's folder holds on disk (0 before the first write)."""
        total = 0
        try:
            for path in self.folder.rglob("*"):
                with contextlib.suppress(OSError):
                    if path.is_file():
                        total += path.stat().st_size
        except OSError:  # the folder vanished while we walked it
            return total
        return total


class EntryFiles(PersistentEngine):
    """A persistent store keeping each entry in its own file or folder under :attr:`folder`.

    Subclasses say which names are entries (:meth:`_is_entry`) and temp
    leftovers of writers (:meth:`_is_temp`), how to stat an entry
    (:meth:`_entry_stat`) and read its deadline (:meth:`_expiry`); this class
    does the rest of the housekeeping: expiry (:meth:`expired`, :meth:`prune`),
    ``size_limit`` (oldest entries go first), ``clear`` and the entry count.
    """

    def __init__(self, config: CacheConfig, base: Path | None = None) -> None:
        super().__init__(config, base)
        self._limit_lock = threading.Lock()
        #: Bytes the entries hold, as last counted plus what was written since
        #: (``None``: not counted yet); a full scan happens only past the limit.
        self._approx_bytes: int | None = None

    @abstractmethod
    def _is_entry(self, name: str) -> bool:
        """True for the name of an entry in the folder."""

    @abstractmethod
    def _is_temp(self, name: str) -> bool:
        """True for the name of a writer's temp file or folder."""

    def _entry_stat(self, path: Path) -> os.stat_result:
        """The stat of the file holding the entry at ``path`` (its size is the entry's)."""
        return os.stat(path)

    @abstractmethod
    def _expiry(self, path: Path) -> float | None:
        """The deadline in the entry's frame header (``0.0``: never), ``None`` if unreadable."""

    def _forget(self, path: Path) -> None:
        """Called before the entry at ``path`` is removed by housekeeping."""

    def _peek_at(self, path: Path, key: str) -> str:
        """:meth:`Store.peek` of the entry at ``path``: its deadline is read from the frame
        header, so an expired entry is reported (and kept) rather than dropped."""
        if not path.exists():
            return "missing"
        expire = self._expiry(path)
        if expire is None:
            return "corrupt"
        if 0 < expire <= time.time():
            return "expired"
        try:
            return "missing" if self.get(key) is MISSING else "hit"
        except SerializationError:
            return "corrupt"

    def _stored(self, size: int) -> None:
        """Called after an entry of ``size`` bytes landed: manifest, then ``size_limit``."""
        self.wrote()
        if self.config.size_limit is not None:
            self._enforce_limit(size)

    def _entries(self) -> list[tuple[float, int, Path]]:
        """``(mtime, size, path)`` of every entry; stale temp leftovers are removed on the way."""
        entries: list[tuple[float, int, Path]] = []
        stale = time.time() - STALE_TEMP
        with os.scandir(self.folder) as listing:
            for item in listing:
                path = Path(item.path)
                try:
                    if self._is_entry(item.name):
                        st = self._entry_stat(path)
                        entries.append((st.st_mtime, st.st_size, path))
                    elif self.repair and self._is_temp(item.name) and item.stat().st_mtime < stale:
                        remove_path(path)  # left by a killed or racing writer
                except FileNotFoundError:
                    entries.append((0.0, 0, path))  # a half-removed entry goes first
        return entries

    def _enforce_limit(self, added: int) -> None:
        limit = self.config.size_limit
        assert limit is not None
        with self._limit_lock:
            if self._approx_bytes is not None:
                self._approx_bytes += added
                if self._approx_bytes <= limit:
                    return
            self._approx_bytes, _ = prune_to_size(self._entries(), limit)

    def _expired(self, entries: list[tuple[float, int, Path]]) -> list[Path]:
        now = time.time()
        return [
            path
            for _, _, path in entries
            if (expire := self._expiry(path)) is not None and 0 < expire <= now
        ]

    def expired(self) -> int:
        if not self.has_folder():
            return 0
        return len(self._expired(self._entries()))

    def prune(self) -> int:
        removed = super().prune()
        if not self.has_folder():
            return removed
        entries = self._entries()
        doomed = set(self._expired(entries))
        for path in doomed:
            self._forget(path)
            removed += remove_path(path)
        if self.config.size_limit is not None:
            live = [entry for entry in entries if entry[2] not in doomed]
            with self._limit_lock:
                self._approx_bytes, culled = prune_to_size(live, self.config.size_limit)
            removed += culled
        return removed

    def clear(self) -> None:
        super().clear()
        with self._limit_lock:
            self._approx_bytes = None
        if not self.has_folder():
            return
        with os.scandir(self.folder) as listing:
            doomed = [
                Path(item.path)
                for item in listing
                if self._is_entry(item.name) or self._is_temp(item.name)
            ]
        for path in doomed:
            remove_path(path)

    def __len__(self) -> int:
        if not self.has_folder():
            return 0
        with os.scandir(self.folder) as listing:
            return sum(1 for item in listing if self._is_entry(item.name))
