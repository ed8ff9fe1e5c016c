"""The near cache: an in-process layer in front of Redis, kept coherent by the server.

``near=True`` (with ``redis_url=``) selects :class:`NearRedisStore`. It is an
*in-process* store to the call path: its ``mapping`` (a dict of live values)
is read by the generated hit path, so a repeated hit costs about what an
``mcache`` hit costs. A miss there falls through to Redis, and the value read
is kept in the mapping.

Coherence comes from the server's client-side caching invalidation: one
connection per near cache runs ``CLIENT TRACKING on REDIRECT <itself> BCAST
PREFIX <the cache's prefix>`` and listens on ``__redis__:invalidate``; every
write or delete of a key under the prefix, from any process (``set``,
``cache_delete``, ``cache_refresh``, ``cache_clear``, expiry, ``FLUSHDB``),
arrives there and drops the local copy. A value read while an invalidation
arrived is not kept (a sequence number guards the read), so a stale value is
never kept after its invalidation. While the listener is not connected
(starting, reconnecting after a fault, after a fork) nothing is served from
or kept in the mapping: calls go to Redis as without ``near``.

Keys: the call path gives in-process keys; the Redis name is a stable digest
of that key under the cache's name, so processes agree on it. A key holding
a process-local token (an instance without ``__cache_key__``, an interned
object) has no name other processes could find: it is kept in this process
only. A server that cannot track (or a Cluster or Sentinel deployment, or a
``redis_client=``, which this version does not track) leaves plain Redis
behaviour, logged once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import weakref
from collections.abc import Hashable
from typing import Any, ClassVar

from twat_cache._log import warn_once
from twat_cache._types import MISSING
from twat_cache.config import CacheConfig, parse_redis_url
from twat_cache.encoding import DigestKey, stable_digest
from twat_cache.engines.remote import RedisFamily, RedisStore
from twat_cache.keys import Token, _Tag

__all__ = ["NearRedisStore"]

logger = logging.getLogger(__name__)

#: Seconds between pings on an idle listener: a silent server is found out within about this.
PING_EVERY = 2.0
#: Seconds to wait before listening again after a fault.
RETRY_AFTER = 0.5
#: The invalidation channel of RESP2 client-side caching.
CHANNEL = b"__redis__:invalidate"

_stores: weakref.WeakSet[NearRedisStore] = weakref.WeakSet()


class _LocalKeyError(Exception):
    """A key with a process-local part: no other process can name it."""


@dataclasses.dataclass(frozen=True)
class _Marker:
    """A plain key's marker (a list, a dict, ``-0.0``, a content digest) for the digest.

    An instance of this private class: the stable encoding writes its class
    name, so no argument a caller passes (a tuple spelling ``"<list>"``, say)
    digests like it.
    """

    kind: str
    text: str = ""


def _shareable(part: Any) -> Any:
    """``part`` with the plain key's markers spelled out, for a stable digest."""
    cls = type(part)
    if cls is tuple:
        return tuple([_shareable(item) for item in part])
    if cls is frozenset:
        return frozenset([_shareable(item) for item in part])
    if cls is Token:
        raise _LocalKeyError
    if cls is DigestKey:
        return _Marker("keyed", str(part))
    if cls is _Tag:
        return _Marker(part.name)
    return part


class _Copies(dict[Hashable, Any]):
    """The in-process copies: a dict (read directly by the hit path) of a class of its own,
    so that a shipped function's copy finds the worker's copies (``call/shipping.py``)."""

    __slots__ = ("__weakref__",)


class NearRedisStore(RedisFamily):
    """Redis with an in-process copy of what was read, dropped when any process changes it."""

    in_process: ClassVar[bool] = True

    def __init__(self, config: CacheConfig) -> None:
        super().__init__(config)
        self.remote = RedisStore(config)
        self.stamped = config.ttl is not None
        self.mapping: dict[Hashable, Any] = _Copies()
        self.maxsize = config.near_maxsize
        self.namespace = config.name or "default"
        self._names: dict[str, Hashable] = {}
        self._lock = threading.Lock()
        #: Bumped by every invalidation: a read that saw it change keeps nothing.
        self._seq = 0
        #: True while the listener is subscribed: only then are copies kept.
        self.tracking = False
        self.invalidations = 0
        self._closed = False
        self._started = False
        self._pid = os.getpid()
        self._conn: Any = None
        self._why_not = self._cannot_track(config)
        _stores.add(self)

    @staticmethod
    def _cannot_track(config: CacheConfig) -> str | None:
        if config.redis_client is not None:
            return "redis_client= is given (the near cache tracks redis_url= servers)"
        assert config.redis_url is not None
        kind = parse_redis_url(config.redis_url).kind
        if kind != "server":
            return f"a {kind} deployment (the near cache tracks one server)"
        return None

    # -- keys ------------------------------------------------------------------------

    def _name(self, key: Hashable) -> str | None:
        """The Redis name of an in-process key, or ``None`` for a process-local key."""
        try:
            return stable_digest(self.namespace, _shareable(key))
        except _LocalKeyError:
            return None

    # -- the local copy ----------------------------------------------------------------

    def _start(self) -> None:
        """Start listening (once per process), unless the deployment cannot be tracked."""
        if self._pid != os.getpid():  # a forked child: the parent's listener is not here
            self._after_fork()
        if self._started or self._closed:
            return
        with self._lock:  # one thread starts the listener
            mine, self._started = not self._started, True
        if not mine:
            return
        if self._why_not is not None:
            self._fallback(self._why_not)
            return
        threading.Thread(
            target=self._listen, name=f"twat_cache-near-{self.namespace}", daemon=True
        ).start()

    def _fallback(self, why: str) -> None:
        warn_once(
            ("near", self.remote.server.label, why),
            f"twat_cache: near cache of {self.namespace!r} is off, using plain Redis: {why}",
        )

    def _keep(self, key: Hashable, name: str, value: Any, deadline: float, seq: int) -> None:
        """Keep a copy unless an invalidation arrived since ``seq`` was read."""
        with self._lock:
            if not self.tracking or self._seq != seq:
                return
            mapping = self.mapping
            while len(mapping) >= self.maxsize:  # oldest first
                try:
                    old = next(iter(mapping))
                    del mapping[old]
                except (StopIteration, KeyError, RuntimeError):
                    break
            mapping[key] = (value, deadline) if self.stamped else value
            self._names[name] = key

    def _drop_local(self, key: Hashable, name: str | None) -> None:
        with self._lock:
            self._seq += 1
            self.mapping.pop(key, None)
            if name is not None:
                self._names.pop(name, None)

    def _invalidate(self, names: list[bytes] | None) -> None:
        """The server says these names changed (``None``: everything did)."""
        with self._lock:
            self._seq += 1
            self.invalidations += 1
            if names is None:
                self.mapping.clear()
                self._names.clear()
                return
            cut = len(self.remote.prefix.encode())  # names arrive as bytes
            for raw in names:
                key = self._names.pop(raw[cut:].decode(errors="replace"), MISSING)
                if key is not MISSING:
                    self.mapping.pop(key, None)

    def _forget_all(self, tracking: bool) -> None:
        with self._lock:
            self._seq += 1
            self.tracking = tracking
            self.mapping.clear()
            self._names.clear()

    def _after_fork(self) -> None:
        self._pid = os.getpid()
        self._started = False
        self._conn = None
        self._forget_all(False)

    # -- the listener thread ---------------------------------------------------------------

    def _listen(self) -> None:
        while not self._closed:
            try:
                self._subscribe_and_read()
            except _CannotTrackError as exc:
                self._forget_all(False)
                self._fallback(str(exc))
                return
            except Exception:  # the connection failed: forget everything, listen again
                self._forget_all(False)
            if not self._closed:
                time.sleep(RETRY_AFTER)

    def _subscribe_and_read(self) -> None:
        import redis

        config = self.config
        assert config.redis_url is not None
        pool = redis.ConnectionPool.from_url(
            config.redis_url,
            protocol=2,
            socket_connect_timeout=config.redis_connect_timeout,
            socket_timeout=max(config.redis_timeout, 1.0),
        )
        conn: Any = pool.make_connection()
        self._conn = conn
        try:
            conn.connect()
            try:  # a server without the command (or with CLIENT renamed away) answers an error
                conn.send_command("CLIENT", "ID")
                client_id = conn.read_response()
                conn.send_command(
                    "CLIENT", "TRACKING", "on", "REDIRECT", client_id, "BCAST",
                    "PREFIX", self.remote.prefix,
                )  # fmt: skip
                conn.read_response()
            except redis.ResponseError as exc:
                raise _CannotTrackError(f"the server cannot track keys ({exc})") from None
            conn.send_command("SUBSCRIBE", CHANNEL)
            conn.read_response()
            self._forget_all(True)  # copies are kept from now on
            quiet_since = time.monotonic()
            waiting_pong = False
            while not self._closed:
                if conn.can_read(timeout=0.5):
                    message = conn.read_response()
                    quiet_since = time.monotonic()
                    waiting_pong = False
                    if message[0] == b"message" and message[1] == CHANNEL:
                        self._invalidate(message[2])
                elif time.monotonic() - quiet_since >= PING_EVERY:
                    if waiting_pong:  # no answer to the last ping: the server is gone
                        raise ConnectionError("no answer from the server")
                    conn.send_command("PING")
                    waiting_pong = True
                    quiet_since = time.monotonic()
        finally:
            self._conn = None
            conn.disconnect()

    # -- the store contract --------------------------------------------------------------

    def _look(self, key: Hashable) -> tuple[Any, str | None, int]:
        """The local copy of ``key`` (listening started first), else ``MISSING`` with the
        key's Redis name (``None``: process-local) and the invalidation number now."""
        self._start()
        local = self._local(key)
        if local is not MISSING:
            return local, None, 0
        return MISSING, self._name(key), self._seq

    def get(self, key: Hashable) -> Any:
        local, name, seq = self._look(key)
        if local is not MISSING or name is None:
            return local
        if not self.tracking or not self.stamped:
            value = self.remote.get(name)
            if value is not MISSING:
                self._keep(key, name, value, 0.0, seq)
            return value
        value, left = self.remote.get_with_ttl(name)
        if value is not MISSING and left is not None:
            self._keep(key, name, value, time.monotonic() + left, seq)
        return value

    def _local(self, key: Hashable) -> Any:
        try:
            stored = self.mapping[key]
        except (KeyError, TypeError):
            return MISSING
        if not self.stamped:
            return stored
        value, deadline = stored
        return value if deadline > time.monotonic() else MISSING

    def set(self, key: Hashable, value: Any, ttl: float | None) -> None:
        self._start()
        name = self._name(key)
        self._drop_local(key, name)
        if name is None:  # this process only
            if ttl is None or ttl > 0:
                deadline = time.monotonic() + ttl if ttl is not None else float("inf")
                with self._lock:
                    self.mapping[key] = (value, deadline) if self.stamped else value
            return
        self.remote.set(name, value, ttl)  # the server's invalidation drops other copies

    def delete(self, key: Hashable) -> bool:
        name = self._name(key)
        had = key in self.mapping
        self._drop_local(key, name)
        if name is None:
            return had
        return self.remote.delete(name)

    def clear(self) -> None:
        self._forget_all(self.tracking)
        self.remote.clear()

    def __len__(self) -> int:
        return len(self.remote)

    def key_lock(self, key: str) -> Any:
        return self.remote.key_lock(stable_digest(self.namespace, key))

    def akey_lock(self, key: str) -> Any:
        return self.remote.akey_lock(stable_digest(self.namespace, key))

    async def aget(self, key: Hashable) -> Any:
        local, name, seq = self._look(key)
        if local is not MISSING or name is None:
            return local
        value = await self.remote.aget(name)
        if value is not MISSING and not self.stamped:
            self._keep(key, name, value, 0.0, seq)
        return value

    async def aset(self, key: Hashable, value: Any, ttl: float | None) -> None:
        name = self._name(key)
        if name is None:
            self.set(key, value, ttl)
            return
        self._start()
        self._drop_local(key, name)
        await self.remote.aset(name, value, ttl)

    async def adelete(self, key: Hashable) -> bool:
        name = self._name(key)
        had = key in self.mapping
        self._drop_local(key, name)
        if name is None:
            return had
        return await self.remote.adelete(name)

    async def aclear(self) -> None:
        self._forget_all(self.tracking)
        await self.remote.aclear()

    def add_counts(self, hits: int, misses: int) -> None:
        self.remote.add_counts(hits, misses)

    async def aadd_counts(self, hits: int, misses: int) -> None:
        await self.remote.aadd_counts(hits, misses)

    def fleet_counts(self) -> tuple[int, int]:
        return self.remote.fleet_counts()

    def reset_counts(self) -> None:
        self.remote.reset_counts()

    def stats(self) -> dict[str, Any]:
        return {
            **self.remote.stats(),
            "near": self.tracking,
            "near_size": len(self.mapping),
            "near_invalidations": self.invalidations,
        }

    def close(self) -> None:
        self._closed = True
        conn = self._conn
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:  # closing is best effort
                logger.debug("near cache listener did not close cleanly", exc_info=True)
        self.remote.close()


class _CannotTrackError(Exception):
    """The server refused ``CLIENT TRACKING``."""


def _after_fork_in_child() -> None:
    for store in list(_stores):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
