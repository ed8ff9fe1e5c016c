"""What every on-disk engine shares: its folder, its codec, the per-key process lock.

The folder is worked out when the engine is built (at decoration) but created
only by the first write; reads of a cache that was never written are misses
that touch nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

from twat_cache.config import CacheConfig
from twat_cache.engines.base import CacheEngine
from twat_cache.paths import KeyLock, cache_folder, open_lock_file
from twat_cache.serializers import Codec, codec_for

__all__ = ["PersistentEngine"]

#: Per-call folders (``cache_path=``, ``location_arg=``) kept open at once per cache.
_MAX_SIBLINGS = 16


class PersistentEngine(CacheEngine):
    """An engine storing framed bytes under a cache folder.

    Subclasses implement ``get``/``set``/``delete``/``clear``/``__len__`` for
    one folder; this class adds the same cache under other roots (:meth:`at`)
    and the lock that makes processes compute a cold key once.
    """

    persistent: ClassVar[bool] = True

    def __init__(self, config: CacheConfig, base: Path | None = None) -> None:
        super().__init__(config)
        self.base = base
        self.folder = cache_folder(config, base)
        self.secure = config.secure
        self.codec: Codec = codec_for(config.serializer, config.compress, config.secure)
        self._siblings: OrderedDict[Path, PersistentEngine] = OrderedDict()
        self._siblings_lock = threading.Lock()
        self._lock_fd = -1

    def key_lock(self, key: str) -> KeyLock:
        """An exclusive lock on ``key`` shared by every process using this folder."""
        fd = self._lock_fd
        if fd < 0:
            with self._siblings_lock:
                if self._lock_fd < 0:
                    self._lock_fd = open_lock_file(self.folder, self.secure)
                fd = self._lock_fd
        return KeyLock(fd, key)

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
