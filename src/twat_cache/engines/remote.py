"""The ``redis`` engine: redis-py for sync functions, ``redis.asyncio`` for async ones.

Used only when asked for (``engine="redis"``, ``redis_url=`` or
``TWAT_CACHE_REDIS_URL``), never as a silent fallback.

- One connection pool per URL for sync calls (shared by every cache of the
  process, closed when the last engine using it closes) and one per URL and
  event loop for coroutines (closed when that loop shuts down its async
  generators, as ``asyncio.run`` does).
- Keys live under ``twat_cache:<cache name>:``; ``clear`` deletes only those,
  with ``SCAN``, never ``FLUSHDB``. Expiry is Redis's own (``SET ... PX``);
  ``size_limit`` is left to the server's ``maxmemory`` policy.
- Faults: connect and read timeouts well under a second, one retry on a
  broken connection only (a server restart), and a circuit breaker per URL:
  after a failure every operation fails at once for a cool-down (0.5 s,
  doubling up to 4 s) and then one call probes the server again, so a dead or
  frozen server costs each call at most one timeout and caching resumes by
  itself within seconds of the server's return. The wrapper counts and logs
  each failure; this module only raises.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Hashable
from typing import TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import urlsplit, urlunsplit

from twat_cache._types import MISSING
from twat_cache.config import CacheConfig
from twat_cache.engines.base import AsyncCacheEngine, CacheEngine
from twat_cache.exceptions import CacheOperationError
from twat_cache.serializers import codec_for

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["AsyncRedisEngine", "RedisEngine"]

KEY_ROOT = "twat_cache:"
LOCK_ROOT = "twat_cache-lock:"
CONNECT_TIMEOUT = 0.25
READ_TIMEOUT = 0.5
COOL_DOWN = (0.5, 4.0)


def redact(url: str) -> str:
    """``url`` without its password, for logs and stats."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _glob_escape(text: str) -> str:
    for char in "\\*?[]":
        text = text.replace(char, "\\" + char)
    return text


class _Breaker:
    """Closed, open (fail at once) or half-open (one call probes) for one server."""

    __slots__ = ("_cool", "_lock", "open_until", "trips", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.open_until = 0.0  # 0.0: closed, the hot path reads only this
        self._cool = 0.0
        self._lock = threading.Lock()
        self.trips = 0

    def check(self) -> None:
        """Raise at once while open; let one caller through to probe when the cool-down ends."""
        if not self.open_until:
            return
        with self._lock:
            now = time.monotonic()
            if now < self.open_until:
                msg = (
                    f"redis at {redact(self.url)} is unreachable; not trying again for "
                    f"{self.open_until - now:.1f} s (circuit open)"
                )
                raise CacheOperationError(msg)
            self.open_until = now + self._cool  # others keep failing fast while this call probes

    def success(self) -> None:
        if self.open_until:
            with self._lock:
                self.open_until = 0.0
                self._cool = 0.0

    def failure(self) -> None:
        with self._lock:
            self._cool = min(max(self._cool * 2, COOL_DOWN[0]), COOL_DOWN[1])
            self.open_until = time.monotonic() + self._cool
            self.trips += 1

    @property
    def state(self) -> str:
        return "closed" if not self.open_until else "open"


async def _close_with_loop(pool: redis.asyncio.ConnectionPool) -> AsyncGenerator[None, None]:
    """Parked async generator: the loop's ``shutdown_asyncgens`` closes the pool in time."""
    try:
        yield
    finally:
        await pool.disconnect()


class _Server:
    """Everything shared by the caches of one URL: pools, clients and the breaker."""

    def __init__(self, url: str) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.users = 0
        self.breaker = _Breaker(url)
        self.pool = redis.ConnectionPool.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=READ_TIMEOUT,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )
        self.client = redis.Redis(connection_pool=self.pool)
        self.errors: tuple[type[BaseException], ...] = (
            redis.ConnectionError,
            redis.TimeoutError,
            OSError,
        )
        self._aclients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    async def aclient(self) -> redis.asyncio.Redis:
        """The client of this URL for the running event loop (made on first use there)."""
        loop = asyncio.get_running_loop()
        entry = self._aclients.get(loop)
        if entry is not None:
            return entry[0]
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        pool = redis.asyncio.ConnectionPool.from_url(
            self.url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=READ_TIMEOUT,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.asyncio.ConnectionError,)),
        )
        client = redis.asyncio.Redis(connection_pool=pool)
        closer = _close_with_loop(pool)
        await closer.__anext__()
        entry = self._aclients.setdefault(loop, (client, closer))
        if entry[0] is not client:  # another task of this loop won the race
            await closer.aclose()
        return entry[0]

    def failed(self) -> None:
        """Trip the breaker and drop pooled sockets, which may be stale after a restart."""
        self.breaker.failure()
        try:
            self.pool.disconnect()
        except Exception:  # dropping sockets is best effort
            return

    async def afailed(self) -> None:
        self.breaker.failure()
        entry = self._aclients.get(asyncio.get_running_loop())
        if entry is not None:
            try:
                await entry[0].connection_pool.disconnect()
            except Exception:  # dropping sockets is best effort
                return

    def close(self) -> None:
        self.pool.disconnect()


_servers: dict[str, _Server] = {}
_servers_lock = threading.Lock()


def _acquire(url: str) -> _Server:
    with _servers_lock:
        server = _servers.get(url)
        if server is None:
            server = _servers[url] = _Server(url)
        server.users += 1
        return server


def _release(server: _Server) -> None:
    with _servers_lock:
        server.users -= 1
        if server.users > 0 or _servers.get(server.url) is not server:
            return
        del _servers[server.url]
    server.close()


class RedisEngine(CacheEngine):
    """A cache stored on a Redis (or Valkey) server, shared by processes and machines."""

    name: ClassVar[str] = "redis"
    requires: ClassVar[str | None] = "redis"
    #: Seconds before a cross-process compute lock expires on its own (a crashed holder).
    lock_timeout: ClassVar[float] = 60.0

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        if config.redis_url is None:
            return "no redis_url given (pass redis_url= or set TWAT_CACHE_REDIS_URL)"
        return None

    def __init__(self, config: CacheConfig) -> None:
        super().__init__(config)
        assert config.redis_url is not None
        self.codec = codec_for(config.serializer, config.compress, config.secure)
        self.prefix = f"{KEY_ROOT}{config.name or 'default'}:"
        self.lock_prefix = f"{LOCK_ROOT}{config.name or 'default'}:"
        self.server = _acquire(config.redis_url)
        self.breaker = self.server.breaker
        self.client = self.server.client
        self._async: AsyncRedisEngine | None = None
        self._closed = False

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, self.server.errors):
            self.server.failed()
        else:  # the server answered (with an error): it is up
            self.breaker.success()

    def get(self, key: Hashable) -> Any:
        self.breaker.check()
        try:
            data = self.client.get(self.prefix + str(key))
        except Exception as exc:
            self._failed(exc)
            raise
        self.breaker.success()
        if data is None:
            return MISSING
        return self.codec.decode(str(key), cast(bytes, data))  # responses are never decoded

    def set(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        ttl = self.config.ttl if ttl is None else ttl
        if ttl == 0:
            return  # expires at once: never stored
        data = self.codec.encode(str(key), value)
        self.breaker.check()
        try:
            self.client.set(self.prefix + str(key), data, px=_millis(ttl))
        except Exception as exc:
            self._failed(exc)
            raise
        self.breaker.success()

    def delete(self, key: Hashable) -> bool:
        self.breaker.check()
        try:
            done = self.client.delete(self.prefix + str(key))
        except Exception as exc:
            self._failed(exc)
            raise
        self.breaker.success()
        return bool(done)

    def _keys(self) -> list[bytes]:
        return list(self.client.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000))

    def clear(self) -> None:
        self.breaker.check()
        try:
            keys = self._keys()
            for start in range(0, len(keys), 1000):
                self.client.unlink(*keys[start : start + 1000])
        except Exception as exc:
            self._failed(exc)
            raise
        self.breaker.success()

    def __len__(self) -> int:
        self.breaker.check()
        try:
            size = len(self._keys())
        except Exception as exc:
            self._failed(exc)
            raise
        self.breaker.success()
        return size

    def key_lock(self, key: str) -> _KeyLock:
        return _KeyLock(self, key)

    def async_engine(self) -> AsyncRedisEngine:
        if self._async is None:
            self._async = AsyncRedisEngine(self)
        return self._async

    def stats(self) -> dict[str, Any]:
        return {
            "redis_url": redact(self.server.url),
            "prefix": self.prefix,
            "breaker": self.breaker.state,
            "breaker_trips": self.breaker.trips,
            "signed": self.codec.signed,
        }

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release(self.server)


class _KeyLock:
    """A Redis lock around one key's computation; expires after ``lock_timeout``."""

    def __init__(self, engine: RedisEngine, key: str) -> None:
        self.engine = engine
        self.lock = engine.client.lock(
            engine.lock_prefix + key,
            timeout=engine.lock_timeout,
            sleep=0.02,
            blocking_timeout=engine.lock_timeout,
        )
        self.acquired = False

    def __enter__(self) -> bool:
        self.engine.breaker.check()
        try:
            self.acquired = bool(self.lock.acquire())
        except Exception as exc:
            self.engine._failed(exc)
            raise
        return self.acquired

    def __exit__(self, *exc_info: object) -> None:
        if self.acquired:
            self.lock.release()


class AsyncRedisEngine(AsyncCacheEngine):
    """The coroutine side of :class:`RedisEngine`: same keys, codec and breaker."""

    name: ClassVar[str] = "redis"

    def __init__(self, engine: RedisEngine) -> None:
        super().__init__(engine.config)
        self.engine = engine
        self.server = engine.server
        self.breaker = engine.breaker
        self.prefix = engine.prefix
        self.codec = engine.codec

    async def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, self.server.errors):
            await self.server.afailed()
        else:
            self.breaker.success()

    async def get(self, key: Hashable) -> Any:
        self.breaker.check()
        try:
            data = await (await self.server.aclient()).get(self.prefix + str(key))
        except Exception as exc:
            await self._failed(exc)
            raise
        self.breaker.success()
        if data is None:
            return MISSING
        return self.codec.decode(str(key), cast(bytes, data))  # responses are never decoded

    async def set(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        ttl = self.config.ttl if ttl is None else ttl
        if ttl == 0:
            return
        data = self.codec.encode(str(key), value)
        self.breaker.check()
        try:
            client = await self.server.aclient()
            await client.set(self.prefix + str(key), data, px=_millis(ttl))
        except Exception as exc:
            await self._failed(exc)
            raise
        self.breaker.success()

    async def delete(self, key: Hashable) -> bool:
        self.breaker.check()
        try:
            done = await (await self.server.aclient()).delete(self.prefix + str(key))
        except Exception as exc:
            await self._failed(exc)
            raise
        self.breaker.success()
        return bool(done)

    async def clear(self) -> None:
        self.breaker.check()
        try:
            client = await self.server.aclient()
            match = _glob_escape(self.prefix) + "*"
            keys = [key async for key in client.scan_iter(match=match, count=1000)]
            for start in range(0, len(keys), 1000):
                await client.unlink(*keys[start : start + 1000])
        except Exception as exc:
            await self._failed(exc)
            raise
        self.breaker.success()

    def clear_sync(self) -> None:
        self.engine.clear()

    def close(self) -> None:
        self.engine.close()

    def __len__(self) -> int:
        return len(self.engine)

    def key_lock(self, key: str) -> _AsyncKeyLock:
        return _AsyncKeyLock(self, key)


class _AsyncKeyLock:
    """The ``redis.asyncio`` form of :class:`_KeyLock`."""

    def __init__(self, engine: AsyncRedisEngine, key: str) -> None:
        self.engine = engine
        self.name = engine.engine.lock_prefix + key
        self.lock: Any = None
        self.acquired = False

    async def __aenter__(self) -> bool:
        engine = self.engine
        engine.breaker.check()
        try:
            client = await engine.server.aclient()
            timeout = engine.engine.lock_timeout
            self.lock = client.lock(
                self.name, timeout=timeout, sleep=0.02, blocking_timeout=timeout
            )
            self.acquired = bool(await self.lock.acquire())
        except Exception as exc:
            await engine._failed(exc)
            raise
        return self.acquired

    async def __aexit__(self, *exc_info: object) -> None:
        if self.acquired:
            await self.lock.release()


def _millis(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, int(ttl * 1000))
