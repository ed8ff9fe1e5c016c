"""Values in files of their own: ``fcache``'s store, and ``bcache``'s large values.

Why not pickle: an 80 MB array pickled is copied several times on the way in
and out. Here a NumPy array is written in the ``.npy`` layout after a 64-byte
twat-cache header, so a hit reads it straight into a new array (as
``np.load`` does) or maps it read-only (``mmap_mode="r"``) without reading it
at all. pandas DataFrames and Series (and pyarrow tables, polars frames) are
Arrow IPC files, mapped on read; a pandas object Arrow cannot hold exactly goes
through joblib's pickler, which writes array buffers raw; anything else uses
the configured serializer.

Every file is written to a temp file and renamed, and carries a tag (CRC32 or
HMAC-SHA256) over its payload. Checking an 80 MB tag costs more than reading
the array, so an array's or a table's tag is checked on this process's first
read of each file version (inode, size, mtime, ctime) and trusted afterwards;
a file changed within the last second is always checked, because a coarse
file clock could hide an in-place change made in the same tick.
"""

from __future__ import annotations

import hmac
import importlib.util
import io
import mmap
import os
import pickle
import sys
import threading
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from twat_cache._types import MISSING
from twat_cache.config import CacheConfig
from twat_cache.engines.frames import from_table, read_ipc, rough_nbytes, to_table, write_ipc
from twat_cache.engines.persistent import EntryFiles, deadline
from twat_cache.exceptions import CacheOperationError, SerializationError
from twat_cache.paths import atomic_write, ensure_folder, open_file, remove_path
from twat_cache.serializers import (
    FLAG_COMPRESSED,
    HEAD_SIZE,
    KIND_ARROW,
    KIND_JOBLIB,
    KIND_NPY,
    KIND_SERIALIZED,
    Codec,
    PickleSerializer,
    frame_expiry,
)

__all__ = ["JoblibEngine", "ValueFiles"]

_SUFFIX = ".tc"
_HEADER_BLOCK = 64  # keeps the array data 64-byte aligned, as .npy files are
_TRUST_AFTER_NS = 1_000_000_000
_MAX_TRUSTED = 4096
_ZLIB_LEVEL = 3
_FORMATS = {
    KIND_SERIALIZED: "serialized",
    KIND_NPY: "npy",
    KIND_JOBLIB: "joblib",
    KIND_ARROW: "arrow",
}
#: Modules whose objects may go to Arrow files (checked in ``sys.modules``: nothing is imported).
_TABLE_MODULES = ("pandas", "pyarrow", "polars")
#: Kinds compressed by zlib here (Arrow compresses its own buffers, joblib its own).
_ZLIB_KINDS = (KIND_NPY, KIND_SERIALIZED)


def _mapped(pa: Any, fd: int) -> Any:
    """The Arrow data of the open entry ``fd`` as a buffer over a read-only map of it.

    Through ``/proc/self/fd`` where there is one (the same open file, never its path
    again): Arrow's map keeps no descriptor once closed, so values that live on hold
    none either. Elsewhere Python's ``mmap``, which keeps one while the data is in use.
    """
    proc = f"/proc/self/fd/{fd}"
    if os.path.exists(proc):
        source = pa.memory_map(proc)
        try:
            source.seek(_HEADER_BLOCK)
            return source.read_buffer()
        finally:
            source.close()
    mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    return pa.py_buffer(memoryview(mapped)[_HEADER_BLOCK:])


class _TagWriter(io.RawIOBase):
    """A write-only file that feeds every byte to the entry's tag on its way to disk."""

    def __init__(self, fd: int, tagger: Any) -> None:
        super().__init__()
        self._fd = fd
        self._tagger = tagger
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._tagger.update(view)
        written = 0
        while written < len(view):
            written += os.write(self._fd, view[written:])
        self.size += written
        return written


def _readinto(f: io.FileIO, view: memoryview) -> int:
    """Fill ``view`` from ``f``; the count read (short only at end of file)."""
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            break
        done += got
    return done


def _bytes_view(array: Any) -> memoryview:
    """The array's data as bytes in file order (C, or Fortran for F-ordered arrays).

    Through a ``uint8`` view: the buffer protocol refuses datetime64 and
    timedelta64 arrays, which have no buffer format character.
    """
    order = "C" if array.flags.c_contiguous else "F"
    flat = array.reshape(-1, order=order)
    return memoryview(flat.view("u1") if flat.dtype.itemsize else flat[:0].view("u1"))


def _npy_exact(np: Any, dtype: Any) -> bool:
    """True when the ``.npy`` header gives ``dtype`` back exactly, in a latin-1 header
    (format 1.0/2.0, which we read).

    The header keeps a dtype's layout only: not its ``metadata`` (h5py's enums), its
    ``np.record`` type, an ``align=True`` flag, nor fields out of offset order; and
    field names outside latin-1 need format 3.0. Such arrays are pickled instead.
    """
    fmt = np.lib.format
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "metadata ... is not saved": not exact
            descr = fmt.dtype_to_descr(dtype)
        repr(descr).encode("latin-1")
        back = fmt.descr_to_dtype(descr)
    except (UnicodeEncodeError, ValueError, TypeError, UserWarning):
        return False
    return bool(back == dtype) and pickle.dumps(back) == pickle.dumps(dtype)


class _ZlibWriter(io.RawIOBase):
    """A write-only stream compressing what it is given into another stream."""

    def __init__(self, out: _TagWriter) -> None:
        super().__init__()
        self._out = out
        self._zlib = zlib.compressobj(_ZLIB_LEVEL)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._out.write(self._zlib.compress(view))
        return len(view)

    def finish(self) -> None:
        """Write what the compressor still holds."""
        self._out.write(self._zlib.flush())


class ValueFiles:
    """One value per file, in the format that reads it back fastest, checked by its tag.

    The file stores of ``fcache`` (every entry) and ``bcache`` (large values)
    share it. Formats, counted per format in :attr:`formats`:

    - ``npy``: a NumPy array without Python objects, in the ``.npy`` layout
      (zlib-compressed with ``compress=True``); read into a new array, or
      mapped with ``mmap_mode``.
    - ``arrow``: a pandas DataFrame or Series, a pyarrow Table or a polars
      DataFrame, as an Arrow IPC (Feather v2) file, mapped on read; see ``frames.py``.
    - ``joblib``: a pandas object Arrow cannot hold exactly, through joblib's
      pickler (the configured serializer when joblib is not installed).
    - ``serialized``: anything else, through the configured serializer.
    """

    def __init__(self, config: CacheConfig, codec: Codec, root: Path | None) -> None:
        self.config = config
        self.codec = codec
        self.secure = config.secure
        #: The cache root: every level below it is checked before a write (no symlink).
        self.root = root
        self._native = isinstance(codec.serializer, PickleSerializer)
        self._trusted: dict[str, tuple[int, int, int, int]] = {}
        self._lock = threading.Lock()
        #: Entries this process wrote, by format.
        self.formats: Counter[str] = Counter()

    # -- writing -------------------------------------------------------------------

    def native(self, value: Any, min_bytes: int = 0) -> tuple[int, Any] | None:
        """``(kind, form)`` when ``value`` has a format of its own (an array, a table).

        ``None`` too when its data is smaller than about ``min_bytes``.
        """
        if not self._native:
            return None
        np = sys.modules.get("numpy")
        if np is not None and type(value) is np.ndarray:
            if value.dtype.hasobject or value.nbytes < min_bytes or not _npy_exact(np, value.dtype):
                return None
            return KIND_NPY, value
        if any(name in sys.modules for name in _TABLE_MODULES):
            if min_bytes and (rough_nbytes(value) or 0) < min_bytes:
                return None
            try:
                table = to_table(value)
            except ImportError:  # pandas without pyarrow: pickled instead
                return None
            if table is not None:
                return KIND_ARROW, table
        return None

    def form(self, value: Any) -> tuple[int, Any]:
        """The kind of file ``value`` goes to, and what is written (an array, a table, bytes).

        Raises:
            SerializationError: the serializer refuses the value (nothing is written).
        """
        native = self.native(value)
        if native is not None:
            return native
        pd = sys.modules.get("pandas")
        if (
            self._native
            and pd is not None
            and isinstance(value, (pd.DataFrame, pd.Series, pd.Index))
            and importlib.util.find_spec("joblib") is not None
        ):
            return KIND_JOBLIB, value
        return KIND_SERIALIZED, self.codec.dumps(value)

    def write(self, path: Path, key: str, kind: int, form: Any, expire: float) -> int:
        """Write one entry atomically (temp file, then rename); the file's size."""
        compressed = self.config.compress
        head = self.codec.head(kind, expire, compressed and kind in _ZLIB_KINDS)
        tagger = self.codec.tagger(key, head)
        ensure_folder(path.parent, self.secure, self.root)
        with atomic_write(path, self.secure) as fd:
            os.write(fd, bytes(_HEADER_BLOCK))  # the header goes in once the tag is known
            out = _TagWriter(fd, tagger)
            if kind == KIND_NPY:
                sink: Any = _ZlibWriter(out) if compressed else out
                sys.modules["numpy"].lib.format.write_array(sink, form, allow_pickle=False)
                if compressed:
                    sink.finish()
            elif kind == KIND_ARROW:
                self._write_table(out, form)
            elif kind == KIND_JOBLIB:
                import joblib

                joblib.dump(form, out, compress=("zlib", _ZLIB_LEVEL) if compressed else 0)
            else:
                out.write(zlib.compress(form, _ZLIB_LEVEL) if compressed else form)
            block = head + tagger.digest()
            os.pwrite(fd, block + bytes(_HEADER_BLOCK - len(block)), 0)
            size = _HEADER_BLOCK + out.size
        with self._lock:
            self._trusted.pop(str(path), None)
            self.formats[_FORMATS[kind]] += 1
        return size

    def _write_table(self, out: _TagWriter, table: Any) -> None:
        import pyarrow as pa

        codec = "zstd" if self.config.compress and pa.Codec.is_available("zstd") else None
        with pa.PythonFile(out, mode="w") as sink:
            write_ipc(sink, table, codec)

    # -- reading ---------------------------------------------------------------------

    def read(self, path: Path, key: str) -> Any:
        """The value in ``path`` stored under ``key``; ``MISSING`` if absent or expired.

        Raises:
            SerializationError: the file is damaged, forged or of another key.
        """
        try:  # never through a symlink, never blocking on a planted FIFO
            fd = open_file(path, os.O_RDONLY, secure=False)
        except FileNotFoundError:
            return MISSING
        except CacheOperationError as exc:  # not a plain file: a damaged entry
            raise SerializationError(str(exc)) from None
        try:
            return self._read(key, path, fd)
        finally:
            os.close(fd)

    def forget(self, path: Path) -> None:
        """Drop what this process remembers of ``path`` (before it is replaced or removed)."""
        with self._lock:
            self._trusted.pop(str(path), None)

    def forget_all(self) -> None:
        """Drop what this process remembers of every file."""
        with self._lock:
            self._trusted.clear()

    def _read(self, key: str, path: Path, fd: int) -> Any:
        st = os.fstat(fd)
        block = os.read(fd, _HEADER_BLOCK)
        flags, kind, expire = self.codec.parse_head(block)
        if expire and expire <= time.time():
            remove_path(path)
            return MISSING
        tag = block[HEAD_SIZE : HEAD_SIZE + self.codec.tag_size]
        tagger = self.codec.tagger(key, block[:HEAD_SIZE])
        if kind == KIND_NPY and not flags & FLAG_COMPRESSED:
            return self._read_array(path, fd, st, tag, tagger)
        if kind == KIND_ARROW:
            return self._read_table(path, fd, st, tag, tagger)
        payload = os.read(fd, max(st.st_size - _HEADER_BLOCK, 0))
        tagger.update(payload)
        self._check(tag, tagger)
        if flags & FLAG_COMPRESSED:
            payload = zlib.decompress(payload)
        if kind == KIND_NPY:
            import numpy as np  # an array entry means NumPy wrote it

            return np.lib.format.read_array(io.BytesIO(payload), allow_pickle=False)
        if kind == KIND_JOBLIB:
            import joblib  # a joblib entry means joblib wrote it

            return joblib.load(io.BytesIO(payload))
        if kind != KIND_SERIALIZED:
            msg = f"stored entry has an unexpected kind {kind}"
            raise SerializationError(msg)
        return self.codec.loads(payload)

    def _verify(
        self,
        path: Path,
        st: os.stat_result,
        tag: bytes,
        tagger: Any,
        chunks: Callable[[], Iterable[Any]],
    ) -> None:
        """Check the tag over ``chunks`` unless this process checked this file version already."""
        identity = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if self._trusted.get(str(path)) == identity:
            return
        for chunk in chunks():
            tagger.update(chunk)
        self._check(tag, tagger)
        self._trust(path, st, identity)

    def _read_table(self, path: Path, fd: int, st: os.stat_result, tag: bytes, tagger: Any) -> Any:
        import pyarrow as pa  # an Arrow entry means pyarrow wrote it

        # Mapped, not read: a table's columns (and, under pandas' copy-on-write, a frame's)
        # are views of the map, never copied. The map outlives ``fd``, and entries are
        # replaced by rename, never rewritten in place.
        try:
            data = _mapped(pa, fd)
            self._verify(path, st, tag, tagger, lambda: (data,))
            table = read_ipc(data)
            return from_table(table, views=self.config.mmap_mode == "r")
        except (pa.ArrowException, ValueError, KeyError) as exc:
            msg = f"stored Arrow table cannot be read: {type(exc).__name__}: {exc}"
            raise SerializationError(msg) from exc

    def _read_array(self, path: Path, fd: int, st: os.stat_result, tag: bytes, tagger: Any) -> Any:
        import numpy as np  # an array entry means NumPy wrote it

        fmt = np.lib.format
        with open(fd, "rb", buffering=0, closefd=False) as f:
            version = fmt.read_magic(f)
            shape: Any
            dtype: Any
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                msg = f"stored array has an unsupported .npy version {version}"
                raise SerializationError(msg)
            offset = f.tell()
            if dtype.hasobject:
                msg = "stored array holds Python objects (never unpickled)"
                raise SerializationError(msg)
            count = 1
            for dim in shape:
                count *= dim
            if offset + count * dtype.itemsize != st.st_size:
                msg = "stored array is truncated or has trailing bytes"
                raise SerializationError(msg)
            order: Any = "F" if fortran else "C"
            array: Any
            if self.config.mmap_mode is not None:
                array = np.memmap(
                    f, dtype=dtype, mode=self.config.mmap_mode, shape=shape, order=order,
                    offset=offset,
                )  # fmt: skip
            else:
                array = np.empty(shape, dtype=dtype, order=order)
                if count and _readinto(f, _bytes_view(array)) != count * dtype.itemsize:
                    msg = "stored array is truncated"
                    raise SerializationError(msg)

            def chunks() -> tuple[bytes, Any]:
                os.lseek(fd, _HEADER_BLOCK, os.SEEK_SET)
                header = os.read(fd, offset - _HEADER_BLOCK)
                return header, _bytes_view(array) if count else b""

            self._verify(path, st, tag, tagger, chunks)
        return array

    def _check(self, tag: bytes, tagger: Any) -> None:
        if not hmac.compare_digest(tag, tagger.digest()):
            msg = "stored entry failed its integrity check (damaged or tampered with)"
            raise SerializationError(msg)

    def _trust(self, path: Path, st: os.stat_result, identity: tuple[int, int, int, int]) -> None:
        if time.time_ns() - st.st_ctime_ns < _TRUST_AFTER_NS:
            return
        with self._lock:
            if len(self._trusted) >= _MAX_TRUSTED:
                self._trusted.clear()
            self._trusted[str(path)] = identity


class JoblibEngine(EntryFiles):
    """``fcache``'s store: one file per entry in the cache folder (see :class:`ValueFiles`)."""

    name: ClassVar[str] = "joblib"
    requires: ClassVar[str | None] = "joblib"

    def __init__(self, config: CacheConfig, base: Path | None = None) -> None:
        import joblib  # noqa: F401 - the engine is chosen only when joblib is installed

        super().__init__(config, base)
        self.files = ValueFiles(config, self.codec, self.root)
        self._checked = False  # the folder's levels were checked once (no symlink, ours)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}{_SUFFIX}"

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "formats": dict(self.files.formats)}

    def set(self, key: Any, value: Any, ttl: float | None = None) -> None:
        kind, form = self.files.form(value)  # a value the serializer refuses touches no file
        if ttl is not None and ttl <= 0:  # expires at once: keep nothing, not even an old value
            self.delete(key)
            return
        if not self._checked:
            self.make_folder()
            self._checked = True
        self.before_write()
        self._stored(self.files.write(self._path(key), key, kind, form, deadline(ttl)))

    def peek(self, key: Any) -> str:
        return self._peek_at(self._path(key), key)

    def get(self, key: Any) -> Any:
        if not self._checked:
            if not self.has_folder():
                return MISSING
            self._checked = True
        return self.files.read(self._path(key), key)

    # -- what EntryFiles needs ---------------------------------------------------------

    def _is_entry(self, name: str) -> bool:
        return name.endswith(_SUFFIX)

    def _is_temp(self, name: str) -> bool:
        return name.endswith(".part")

    def _expiry(self, path: Path) -> float | None:
        try:
            with open(path, "rb") as f:
                return frame_expiry(f.read(HEAD_SIZE))
        except OSError:
            return None

    def _forget(self, path: Path) -> None:
        self.files.forget(path)

    def delete(self, key: Any) -> bool:
        path = self._path(key)
        self._forget(path)
        return remove_path(path)

    def clear(self) -> None:
        self.files.forget_all()
        super().clear()
