"""The ``redis`` store: redis-py for plain calls, ``redis.asyncio`` for coroutines, one object.

Used only when asked for (``engine="redis"``, ``redis_url=``, ``redis_client=``
or ``TWAT_CACHE_REDIS_URL``), never as a silent fallback.

- Deployments: one server (``redis://``, ``rediss://``, ``unix://``), Redis
  Cluster (``redis+cluster://h:p,h:p``, redis-py's ``RedisCluster``), Sentinel
  (``redis+sentinel://h:p,h:p/service[/db]``, the master found through
  ``Sentinel.master_for``, so a failover is followed on the next connection),
  or a ready client given as ``redis_client=`` (or a factory, called on first use).
- One :class:`_Server` per deployment and fault settings, shared by every cache
  of the process: the sync client, one ``redis.asyncio`` client per event loop
  (closed when that loop shuts down its async generators, as ``asyncio.run``
  does) and the circuit breaker.
- Keys live under ``twat_cache:<length>:<cache name>:``. The length makes the
  prefix unambiguous: clearing cache ``users`` never matches ``users:v2``'s
  keys. ``clear`` and ``len`` SCAN every primary (``RedisCluster.scan_iter``
  visits each) and never FLUSHDB. ``size_limit`` is the server's ``maxmemory``.
- Expiry: ``SET ... PX`` rounded up to the next millisecond, and the deadline
  is also written into the value's frame, which the codec checks on read, so
  an entry is never served after its ttl, however short.
- Faults: connect and read timeouts (``redis_connect_timeout``,
  ``redis_timeout``), one retry on a broken connection only (a restart), and a
  breaker that opens after ``redis_breaker_failures`` consecutive connection
  failures or timeouts, or sooner once failures in a row have cost
  :data:`STREAK_BUDGET` seconds: then every operation fails at once for a
  cool-down (0.5 s, doubling up to 4 s) and one call probes the server again,
  so caching resumes by itself. A slow server (answering within the timeout)
  never counts as failing. Every operation goes through :meth:`RedisStore._run`
  or :meth:`RedisStore._arun`, the one place that checks and feeds the breaker.
  This module only raises; the call path counts and logs.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from twat_cache._threads import executor, run_sync
from twat_cache._types import MISSING
from twat_cache.config import CacheConfig, RedisTarget, parse_redis_url
from twat_cache.engines.base import Store
from twat_cache.exceptions import CacheOperationError
from twat_cache.serializers import codec_for

__all__ = ["RedisStore", "name_prefix"]

KEY_ROOT = "twat_cache:"
LOCK_ROOT = "twat_cache-lock:"
#: A hash per cache with the hits and misses of every process (``get_stats()["fleet"]``);
#: outside the entries' prefix, so ``len`` and the CLI never count it as an entry.
FLEET_ROOT = "twat_cache-fleet:"
COOL_DOWN = (0.5, 4.0)
#: Seconds of failed operations in a row after which the breaker opens whatever their count.
STREAK_BUDGET = 1.0
_SCAN_BATCH = 1000

T = TypeVar("T")


def redact(url: str) -> str:
    """``url`` without its password, for logs and stats."""
    parts = urlsplit(url)
    try:
        password = parts.password
    except ValueError:  # a host list such as h1:1,h2:2 has no single port to parse
        password = None
    if password is None and "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def name_prefix(root: str, name: str) -> str:
    """``root``, the UTF-8 length of ``name``, then ``name``: no cache's prefix starts another's.

    >>> name_prefix("twat_cache:", "users"), name_prefix("twat_cache:", "users:v2")
    ('twat_cache:5:users:', 'twat_cache:8:users:v2:')
    """
    return f"{root}{len(name.encode())}:{name}:"


def _glob_escape(text: str) -> str:
    for char in "\\*?[]":
        text = text.replace(char, "\\" + char)
    return text


class _Breaker:
    """Closed, open (fail at once) or half-open (one call probes) for one deployment.

    It opens after ``threshold`` failures in a row, or sooner once the failures
    in a row have cost :data:`STREAK_BUDGET` seconds of waiting (timeouts, a
    cluster client re-reading its topology from a frozen node), so that a dead
    or frozen server never holds one call for more than about two seconds.
    """

    __slots__ = (
        "_cool",
        "_lock",
        "failures",
        "label",
        "open_until",
        "streak_seconds",
        "threshold",
        "trips",
    )

    def __init__(self, label: str, threshold: int) -> None:
        self.label = label
        self.threshold = threshold
        self.open_until = 0.0  # 0.0: closed; with ``failures``, all the hot path reads
        self.failures = 0  # consecutive, reset by any answer from the server
        self.streak_seconds = 0.0  # time spent in those failures
        self._cool = 0.0
        self._lock = threading.Lock()
        self.trips = 0

    def check(self) -> None:
        """Raise at once while open; let one caller through to probe when the cool-down ends."""
        with self._lock:
            now = time.monotonic()
            if now < self.open_until:
                msg = (
                    f"redis at {self.label} is unreachable; not trying again for "
                    f"{self.open_until - now:.1f} s (circuit open)"
                )
                raise CacheOperationError(msg)
            self.open_until = now + self._cool  # others keep failing fast while this call probes

    def admit(self) -> float:
        """:meth:`check`, then the start of the operation it let through."""
        self.check()
        return time.monotonic()

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.streak_seconds = 0.0
            self.open_until = 0.0
            self._cool = 0.0

    def failure(self, seconds: float, at_once: bool = False) -> None:
        """Count a failure that took ``seconds``; open when the streak is long or costly."""
        with self._lock:
            self.failures += 1
            self.streak_seconds += seconds
            if (
                not at_once
                and self.failures < self.threshold
                and self.streak_seconds < STREAK_BUDGET
            ):
                return
            self._cool = min(max(self._cool * 2, COOL_DOWN[0]), COOL_DOWN[1])
            self.open_until = time.monotonic() + self._cool
            self.trips += 1

    @property
    def state(self) -> str:
        return "open" if self.open_until else "closed"


async def _close_with_loop(clients: list[Any]) -> AsyncGenerator[None, None]:
    """Parked async generator: the loop's ``shutdown_asyncgens`` closes the clients in time."""
    try:
        yield
    finally:
        for client in clients:
            await client.aclose()


class _UnreachableError(CacheOperationError):
    """No client could be made (a cluster with no node answering, a factory that failed)."""


def _is_async_client(client: Any) -> bool:
    return type(client).__module__.startswith("redis.asyncio")


class _Server:
    """Everything shared by the caches of one deployment: clients and the breaker.

    The sync client is made on first use (a ``RedisCluster`` connects when
    built, so building it is a fault like any other); coroutines get one client
    per event loop. A client given as ``redis_client=`` serves both: a sync
    client runs coroutines' operations in the shared thread pool, an asyncio
    client runs plain calls' operations on the shared background loop.
    """

    def __init__(self, key: tuple[Any, ...], config: CacheConfig) -> None:
        import redis

        self.key = key
        self.users = 0
        self.url = config.redis_url
        self.given = config.redis_client
        self.target: RedisTarget | None = None
        if self.given is None:
            assert self.url is not None
            self.target = parse_redis_url(self.url)
        self.label = redact(self.url) if self.url is not None else "redis_client"
        self.connect_timeout = config.redis_connect_timeout
        self.timeout = config.redis_timeout
        self.breaker = _Breaker(self.label, config.redis_breaker_failures)
        self.errors: tuple[type[BaseException], ...] = (
            redis.ConnectionError,
            redis.TimeoutError,
            redis.exceptions.ClusterError,
            redis.exceptions.RedisClusterException,
            asyncio.TimeoutError,
            OSError,
            _UnreachableError,
        )
        #: The client plain calls use, and whether its methods are plain calls.
        self.client: Any = None
        self.sync_native = True
        #: Whether coroutines get a native ``redis.asyncio`` client.
        self.async_native = True
        self._given_async: Any = None
        self._companions: list[Any] = []
        self._lock = threading.Lock()
        self._aclients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop,
            tuple[Any, AsyncGenerator[None, None]]
            | asyncio.Task[tuple[Any, AsyncGenerator[None, None]]],
        ] = weakref.WeakKeyDictionary()
        self._last: tuple[Callable[[], asyncio.AbstractEventLoop | None], Any] = (
            lambda: None,
            None,
        )

    # -- clients -------------------------------------------------------------------

    def connect(self) -> Any:
        """The client plain calls use, made (or the factory called) on first use."""
        with self._lock:
            if self.client is None:
                try:
                    if self.given is not None:
                        self._adopt(self.given() if callable(self.given) else self.given)
                    else:
                        self.client, self._companions = self._make_client(asynchronous=False)
                except Exception as exc:
                    msg = f"cannot make a client for {self.label}: {type(exc).__name__}: {exc}"
                    raise _UnreachableError(msg) from exc
            return self.client

    def _adopt(self, client: Any) -> None:
        if _is_async_client(client):
            self.sync_native = False
            self._given_async = client
        else:
            self.async_native = False
        self.client = client

    def _make_client(self, asynchronous: bool) -> tuple[Any, list[Any]]:
        """A client for this URL (redis-py's or its ``redis.asyncio`` twin) and the clients
        it relies on (a Sentinel's), to close with it."""
        import redis
        import redis.asyncio
        from redis.backoff import NoBackoff

        # Typed Any: redis-py's cluster and sentinel modules are not fully annotated.
        cluster: Any
        sentinel: Any
        if asynchronous:
            from redis.asyncio import cluster, sentinel
            from redis.asyncio.retry import Retry as AsyncRetry

            retry_cls: Any = AsyncRetry
            plain: Any = redis.asyncio.Redis
        else:
            from redis import cluster, sentinel
            from redis.retry import Retry

            retry_cls = Retry
            plain = redis.Redis
        target = self.target
        assert target is not None
        assert self.url is not None
        common: dict[str, Any] = {
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": self.timeout,
        }
        if target.kind == "cluster":
            client = cluster.RedisCluster(
                startup_nodes=[cluster.ClusterNode(host, port) for host, port in target.nodes],
                username=target.username,
                password=target.password,
                retry=retry_cls(NoBackoff(), 0),  # a retry would double each timeout
                **({"max_connections": 2**16} if asynchronous else {}),  # (default 100 raises)
                **common,
            )
            return client, []
        retry = retry_cls(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
        if target.kind == "sentinel":
            # No retries with backoff on the sentinels (redis-py's default): a dead one
            # must cost one refused connection, not seconds.
            asked = {**common, "retry": retry_cls(NoBackoff(), 0)}
            found = sentinel.Sentinel(list(target.nodes), sentinel_kwargs=asked, **common)
            master = found.master_for(
                target.service,
                db=target.db,
                username=target.username,
                password=target.password,
                retry=retry,
            )
            return master, list(found.sentinels)
        return plain.from_url(self.url, retry=retry, **common), []

    async def aclient(self) -> Any:
        """The ``redis.asyncio`` client for the running event loop (made on first use there)."""
        loop = asyncio.get_running_loop()
        last_loop, client = self._last
        if last_loop() is loop:
            return client
        if self.given is not None:
            if self._given_async is None:
                self.connect()
            return self._given_async
        entry = self._aclients.get(loop)
        if entry is None:
            # One task per loop makes the client; every other caller awaits it (redis-py's
            # asyncio RedisCluster fails when many tasks initialize one client at once).
            entry = self._aclients[loop] = loop.create_task(self._new_aclient())
        if isinstance(entry, asyncio.Task):
            try:
                made = await asyncio.shield(entry)
            except Exception:
                if self._aclients.get(loop) is entry:
                    del self._aclients[loop]
                raise
            self._aclients[loop] = made  # drop the task: it holds the loop alive
            client = made[0]
        else:
            client = entry[0]
        self._last = (weakref.ref(loop), client)
        return client

    async def _new_aclient(self) -> tuple[Any, AsyncGenerator[None, None]]:
        client, companions = self._make_client(asynchronous=True)
        if self.target is not None and self.target.kind == "cluster":
            try:
                await client.initialize()
            except BaseException:
                await client.aclose()
                raise
        closer = _close_with_loop([client, *companions])
        await closer.__anext__()
        return client, closer

    # -- faults --------------------------------------------------------------------

    def failed(self, exc: Exception, seconds: float) -> None:
        """Feed the breaker; a connection fault also drops pooled sockets (stale after restarts)."""
        if not isinstance(exc, self.errors):
            self.breaker.success()  # the server answered (with an error): it is up
            return
        self.breaker.failure(seconds, at_once=isinstance(exc, _UnreachableError))
        pool = getattr(self.client, "connection_pool", None)
        if pool is not None and self.sync_native:
            try:
                pool.disconnect()
            except Exception:  # dropping sockets is best effort
                return

    async def afailed(self, exc: Exception, seconds: float) -> None:
        if not isinstance(exc, self.errors):
            self.breaker.success()
            return
        self.breaker.failure(seconds)
        pool = getattr(self._last[1], "connection_pool", None)
        if pool is not None and self._last[0]() is asyncio.get_running_loop():
            try:
                await pool.disconnect()
            except Exception:  # dropping sockets is best effort
                return

    def close(self) -> None:
        """Close the clients this module made (a client given by the user stays open)."""
        client, self.client = self.client, None
        if client is not None and self.given is None:
            for each in [client, *self._companions]:
                each.close()


_servers: dict[tuple[Any, ...], _Server] = {}
_servers_lock = threading.Lock()


def _acquire(config: CacheConfig) -> _Server:
    # A given client is shared by identity (the config holds it, so the id stays valid).
    key = (
        config.redis_url if config.redis_client is None else id(config.redis_client),
        config.redis_connect_timeout,
        config.redis_timeout,
        config.redis_breaker_failures,
    )
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            server = _servers[key] = _Server(key, config)
        server.users += 1
        return server


def _release(server: _Server) -> None:
    with _servers_lock:
        server.users -= 1
        if server.users > 0 or _servers.get(server.key) is not server:
            return
        del _servers[server.key]
    server.close()


# -- the operations, each as a plain-call and a coroutine twin ---------------------------
# Module functions (not lambdas): the guard calls them with the client of the moment.


def _get(client: Any, name: str) -> Any:
    return client.get(name)


async def _aget(client: Any, name: str) -> Any:
    return await client.get(name)


def _set(client: Any, name: str, data: bytes, px: int | None) -> Any:
    return client.set(name, data, px=px)


async def _aset(client: Any, name: str, data: bytes, px: int | None) -> Any:
    return await client.set(name, data, px=px)


def _delete(client: Any, name: str) -> int:
    return int(client.delete(name))


async def _adelete(client: Any, name: str) -> int:
    return int(await client.delete(name))


def _clear(client: Any, match: str) -> None:
    # RedisCluster.scan_iter visits every primary; its unlink splits keys by slot.
    keys = list(client.scan_iter(match=match, count=_SCAN_BATCH))
    for start in range(0, len(keys), _SCAN_BATCH):
        client.unlink(*keys[start : start + _SCAN_BATCH])


async def _aclear(client: Any, match: str) -> None:
    keys = [key async for key in client.scan_iter(match=match, count=_SCAN_BATCH)]
    for start in range(0, len(keys), _SCAN_BATCH):
        await client.unlink(*keys[start : start + _SCAN_BATCH])


def _count(client: Any, match: str) -> int:
    return sum(1 for _ in client.scan_iter(match=match, count=_SCAN_BATCH))


async def _acount(client: Any, match: str) -> int:
    return len([key async for key in client.scan_iter(match=match, count=_SCAN_BATCH)])


def _parse_name(key: bytes) -> str | None:
    """The cache name in ``twat_cache:<length>:<name>:<digest>``, or ``None``."""
    rest = key[len(KEY_ROOT) :]
    digits, colon, tail = rest.partition(b":")
    if not colon or not digits.isdigit() or tail[int(digits) : int(digits) + 1] != b":":
        return None
    return tail[: int(digits)].decode(errors="replace")


def _tally(keys: list[bytes]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for key in keys:
        name = _parse_name(key)
        if name is not None:
            sizes[name] = sizes.get(name, 0) + 1
    return dict(sorted(sizes.items()))


def _sizes(client: Any, match: str) -> dict[str, int]:
    return _tally(list(client.scan_iter(match=match, count=_SCAN_BATCH)))


async def _asizes(client: Any, match: str) -> dict[str, int]:
    return _tally([key async for key in client.scan_iter(match=match, count=_SCAN_BATCH)])


def _get_pttl(client: Any, name: str) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    pipe.get(name)
    pipe.pttl(name)
    return list(pipe.execute())


async def _aget_pttl(client: Any, name: str) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    pipe.get(name)
    pipe.pttl(name)
    return list(await pipe.execute())


def _incr(client: Any, name: str, hits: int, misses: int) -> None:
    pipe = client.pipeline(transaction=False)  # one slot: one node, even on a cluster
    pipe.hincrby(name, "hits", hits)
    pipe.hincrby(name, "misses", misses)
    pipe.execute()


async def _aincr(client: Any, name: str, hits: int, misses: int) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(name, "hits", hits)
    pipe.hincrby(name, "misses", misses)
    await pipe.execute()


def _counts(client: Any, name: str) -> tuple[int, int]:
    return _pair(client.hmget(name, "hits", "misses"))


async def _acounts(client: Any, name: str) -> tuple[int, int]:
    return _pair(await client.hmget(name, "hits", "misses"))


def _pair(values: list[Any]) -> tuple[int, int]:
    return int(values[0] or 0), int(values[1] or 0)


def _lock(client: Any, name: str, timeout: float) -> Any:
    lock = client.lock(name, timeout=timeout, sleep=0.02, blocking_timeout=timeout)
    return lock if lock.acquire() else None


async def _alock(client: Any, name: str, timeout: float) -> Any:
    lock = client.lock(name, timeout=timeout, sleep=0.02, blocking_timeout=timeout)
    return lock if await lock.acquire() else None


def _unlock(client: Any, lock: Any) -> None:
    lock.release()


async def _aunlock(client: Any, lock: Any) -> None:
    await lock.release()


class RedisFamily(Store):
    """What every Redis store shares (this one and the near cache): its engine name,
    requirement, capabilities and the check that a server was given."""

    name: ClassVar[str] = "redis"
    requires: ClassVar[str | None] = "redis"
    shared: ClassVar[bool] = True
    native_async: ClassVar[bool] = True

    @classmethod
    def unsupported(cls, config: CacheConfig) -> str | None:
        if config.redis_url is None and config.redis_client is None:
            return "no redis_url given (pass redis_url=, redis_client= or set TWAT_CACHE_REDIS_URL)"
        return None


class RedisStore(RedisFamily):
    """A cache stored on Redis or Valkey (one server, Cluster or Sentinel), shared by processes."""

    #: Read by the old call path (wrapper.py); removed when call/ lands.
    in_memory: ClassVar[bool] = False
    #: Seconds before a cross-process compute lock expires on its own (a crashed holder).
    lock_timeout: ClassVar[float] = 60.0

    def __init__(self, config: CacheConfig) -> None:
        super().__init__(config)
        self.codec = codec_for(config.serializer, config.compress, config.secure)
        name = config.name or "default"
        self.prefix = name_prefix(KEY_ROOT, name)
        self.lock_prefix = name_prefix(LOCK_ROOT, name)
        self.fleet_key = name_prefix(FLEET_ROOT, name)
        self._match = _glob_escape(self.prefix) + "*"
        self.server = _acquire(config)
        self.breaker = self.server.breaker
        self._closed = False

    # -- the one fault guard -----------------------------------------------------------

    def _run(self, fn: Callable[..., T], afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``fn(client, *args)`` behind the breaker (``afn`` for an asyncio-only client)."""
        server = self.server
        breaker = server.breaker
        start = breaker.admit() if breaker.open_until else time.monotonic()
        try:
            client = server.client if server.client is not None else server.connect()
            if server.sync_native:
                result = fn(client, *args)
            else:
                result = run_sync(cast(Any, afn(client, *args)))
        except Exception as exc:
            server.failed(exc, time.monotonic() - start)
            raise
        if breaker.failures:
            breaker.success()
        return result

    async def _arun(self, fn: Callable[..., T], afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """The coroutine form of :meth:`_run` (``fn`` in the pool for a sync-only client)."""
        server = self.server
        breaker = server.breaker
        start = breaker.admit() if breaker.open_until else time.monotonic()
        try:
            if server.async_native:
                result = await afn(await server.aclient(), *args)
            else:
                client = server.client if server.client is not None else server.connect()
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(executor(), fn, client, *args)
        except Exception as exc:
            await server.afailed(exc, time.monotonic() - start)
            raise
        if breaker.failures:
            breaker.success()
        return result

    # -- the store contract --------------------------------------------------------------

    def _frame(self, key: str, value: Any, ttl: float | None) -> tuple[bytes, int | None]:
        """The framed value and its PX: rounded up, the frame's deadline cuts it exactly."""
        if ttl is None:
            return self.codec.encode(key, value), None
        return self.codec.encode(key, value, time.time() + ttl), max(1, math.ceil(ttl * 1000))

    def get(self, key: Hashable) -> Any:
        skey = str(key)
        data = self._run(_get, _aget, self.prefix + skey)
        if data is None:
            return MISSING
        return self.codec.decode(skey, data)  # responses are bytes: never decoded

    def get_with_ttl(self, key: Hashable) -> tuple[Any, float | None]:
        """The stored value (or ``MISSING``) and its seconds left (``math.inf``: no expiry)."""
        skey = str(key)
        data, pttl = self._run(_get_pttl, _aget_pttl, self.prefix + skey)
        if data is None:
            return MISSING, None
        left = math.inf if pttl == -1 else max(pttl, 0) / 1000
        return self.codec.decode(skey, data), left

    def set(self, key: Hashable, value: Any, ttl: float | None) -> None:
        skey = str(key)
        if ttl is not None and ttl <= 0:  # expires at once: nothing is kept, not even the old
            self._run(_delete, _adelete, self.prefix + skey)
            return
        data, px = self._frame(skey, value, ttl)
        self._run(_set, _aset, self.prefix + skey, data, px)

    def delete(self, key: Hashable) -> bool:
        return bool(self._run(_delete, _adelete, self.prefix + str(key)))

    def clear(self) -> None:
        self._run(_clear, _aclear, self._match)

    def __len__(self) -> int:
        return self._run(_count, _acount, self._match)

    def key_lock(self, key: str) -> _KeyLock:
        return _KeyLock(self, self.lock_prefix + key)

    def add_counts(self, hits: int, misses: int) -> None:
        if hits or misses:
            self._run(_incr, _aincr, self.fleet_key, hits, misses)

    async def aadd_counts(self, hits: int, misses: int) -> None:
        if hits or misses:
            await self._arun(_incr, _aincr, self.fleet_key, hits, misses)

    def fleet_counts(self) -> tuple[int, int]:
        return self._run(_counts, _acounts, self.fleet_key)

    def reset_counts(self) -> None:
        self._run(_delete, _adelete, self.fleet_key)

    def all_caches(self) -> dict[str, int]:
        """Entries of every twat-cache cache on this deployment, by name (for the CLI)."""
        return self._run(_sizes, _asizes, _glob_escape(KEY_ROOT) + "*")

    async def aget(self, key: Hashable) -> Any:
        skey = str(key)
        data = await self._arun(_get, _aget, self.prefix + skey)
        if data is None:
            return MISSING
        return self.codec.decode(skey, data)

    async def aset(self, key: Hashable, value: Any, ttl: float | None) -> None:
        skey = str(key)
        if ttl is not None and ttl <= 0:
            await self._arun(_delete, _adelete, self.prefix + skey)
            return
        data, px = self._frame(skey, value, ttl)
        await self._arun(_set, _aset, self.prefix + skey, data, px)

    async def adelete(self, key: Hashable) -> bool:
        return bool(await self._arun(_delete, _adelete, self.prefix + str(key)))

    async def aclear(self) -> None:
        await self._arun(_clear, _aclear, self._match)

    def akey_lock(self, key: str) -> _AsyncKeyLock:
        return _AsyncKeyLock(self, self.lock_prefix + key)

    def stats(self) -> dict[str, Any]:
        return {
            "redis_url": self.server.label,
            "prefix": self.prefix,
            "breaker": self.breaker.state,
            "breaker_trips": self.breaker.trips,
            "signed": self.codec.signed,
        }

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release(self.server)


class _HeldLock:
    """A Redis lock around one key's computation, held between enter and exit."""

    __slots__ = ("_held", "_name", "_store")

    def __init__(self, store: RedisStore, name: str) -> None:
        self._store = store
        self._name = name
        self._held: Any = None

    def _release(self) -> Any:
        """The lock held (to release), or ``None``; either way no longer held here."""
        held, self._held = self._held, None
        return held


class _KeyLock(_HeldLock):
    """A Redis lock around one key's computation; expires after ``lock_timeout``."""

    __slots__ = ()

    def __enter__(self) -> bool:
        self._held = self._store._run(_lock, _alock, self._name, self._store.lock_timeout)
        return self._held is not None

    def __exit__(self, *exc_info: object) -> None:
        held = self._release()
        if held is not None:
            self._store._run(_unlock, _aunlock, held)


class _AsyncKeyLock(_HeldLock):
    """The coroutine form of :class:`_KeyLock`."""

    __slots__ = ()

    async def __aenter__(self) -> bool:
        self._held = await self._store._arun(_lock, _alock, self._name, self._store.lock_timeout)
        return self._held is not None

    async def __aexit__(self, *exc_info: object) -> None:
        held = self._release()
        if held is not None:
            await self._store._arun(_unlock, _aunlock, held)
