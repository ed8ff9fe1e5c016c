"""The one store contract (``engines/base.py``), run against every registered engine.

Modelled on dogpile.cache's ``_GenericBackendTestSuite`` and cachetools'
``CacheTestMixin``: one set of tests, parametrised over every engine with the
real library underneath (Redis on the real test server, ``backend`` on user
objects written below), once on the store itself, built the way the call path
builds it (``get_engine_manager().select([name], config)``), and once through
``CacheContext``.

**A new engine joins by adding one line to ENGINES.** What an engine can do is
read from the store class itself (``in_process``, ``persistent``, ``shared``,
``key_lock``); the line says only how to make a real fault, if it can have one.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twat_cache import (
    MISSING,
    AsyncBackend,
    Backend,
    CacheConfig,
    CacheContext,
    CacheOperationError,
    SerializationError,
    get_engine_manager,
)
from twat_cache.engines.base import Store


@dataclass(frozen=True)
class Engine:
    """One registered engine as the suite runs it.

    ``backend`` makes the user object behind the ``backend`` engine (one per
    cache name, like a folder or a server); ``fault`` gives a real fault for
    the engine (``None``: the suite uses an unhashable key on in-process stores);
    ``deletes``/``counts``: the engine can drop one entry and count its entries.
    """

    name: str
    backend: Callable[[], Any] | None = None
    fault: Callable[[Path], Fault] | None = None
    deletes: bool = True
    counts: bool = True


# Every registered engine, one entry each. A new engine joins with one entry here:
#     pytest.param(Engine("myengine"), id="myengine"),
# (a ``fault=`` if it can be broken for real; ``marks=`` if it needs a server).
ENGINES = [
    pytest.param(Engine("cachebox"), id="cachebox"),
    pytest.param(Engine("cachetools"), id="cachetools"),
    pytest.param(Engine("functools"), id="functools"),
    pytest.param(Engine("aiocache"), id="aiocache"),
    pytest.param(Engine("diskcache", fault=lambda tmp: _folder_is_a_file(tmp)), id="diskcache"),
    pytest.param(Engine("klepto", fault=lambda tmp: _folder_is_a_file(tmp)), id="klepto"),
    pytest.param(Engine("joblib", fault=lambda tmp: _folder_is_a_file(tmp)), id="joblib"),
    pytest.param(
        Engine("redis", fault=lambda tmp: _closed_port()), id="redis", marks=pytest.mark.redis
    ),
    pytest.param(
        Engine("backend", backend=lambda: DictBackend(), fault=lambda tmp: _offline(DictBackend)),
        id="backend",
    ),
    pytest.param(
        Engine(
            "backend",
            backend=lambda: AsyncDictBackend(),
            fault=lambda tmp: _offline(AsyncDictBackend),
        ),
        id="backend-async",
    ),
    pytest.param(
        Engine("backend", backend=lambda: WriteOnlyBackend(), deletes=False, counts=False),
        id="backend-write",
    ),
]

#: Cache names that share a folder root or a server, one being a prefix of the other.
USERS, USERS_V2 = "users", "users:v2"
VALUES = [
    None,
    b"\x00\xffbytes",
    {"nested": [1, 2.5, (3, "four")], "set": frozenset({1, 2}), "none": None},
    "unicode ✓ ключ 日本 🔑",
]
UNICODE_KEYS = ["ключ", "日本語", "🔑", "e\u0301", ""]
TEN_MB = 10 * 2**20


# -- user backends (the ``backend`` engine) ------------------------------------------------


class DictBackend(Backend):
    """A user's :class:`Backend`: bytes in a dict; ``online=False`` is a store that is down."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.online = True

    def _up(self) -> None:
        if not self.online:
            raise ConnectionError("backend is down")

    def get(self, key: str) -> bytes:
        self._up()
        return self.data[key]

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._up()
        self.data[key] = value

    def delete(self, key: str) -> bool:
        self._up()
        return self.data.pop(key, None) is not None

    def clear(self) -> None:
        self._up()
        self.data.clear()

    def __len__(self) -> int:
        return len(self.data)


class AsyncDictBackend(AsyncBackend):
    """A user's :class:`AsyncBackend`: the same dict behind coroutines."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.online = True

    def _up(self) -> None:
        if not self.online:
            raise ConnectionError("backend is down")

    async def get(self, key: str) -> bytes:
        self._up()
        return self.data[key]

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._up()
        self.data[key] = value

    async def delete(self, key: str) -> bool:
        self._up()
        return self.data.pop(key, None) is not None

    async def clear(self) -> None:
        self._up()
        self.data.clear()

    def __len__(self) -> int:
        return len(self.data)


class WriteOnlyBackend:
    """A backend written the pydantic-cache way: ``get`` (None on a miss) and ``write`` only."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def write(self, key: str, value: bytes) -> None:
        self.data[key] = value


# -- real faults ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """Config options that break an engine for real, and what its methods then raise."""

    options: dict[str, Any]
    errors: tuple[type[BaseException], ...]
    reads_fail: bool  # False: reading a store that cannot exist is a plain miss


def _folder_is_a_file(tmp: Path) -> Fault:
    """A cache folder that cannot be made: a file stands where a level should be.

    (``cache_dir=`` pointing at a file is refused at decoration; a folder_name
    level blocked later, after decoration, is a fault of the store.)
    """
    blocker = tmp / "blocked"
    blocker.write_bytes(b"not a folder")
    errors = (OSError, CacheOperationError)  # refused by the folder checks, or by the OS
    return Fault({"cache_dir": tmp, "folder_name": "blocked"}, errors, reads_fail=True)


def _closed_port() -> Fault:
    import redis

    with socket.socket() as sock:  # a port that was free a moment ago: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    errors = (redis.ConnectionError, redis.TimeoutError, CacheOperationError)
    return Fault({"redis_url": f"redis://127.0.0.1:{port}"}, errors, reads_fail=True)


def _offline(cls: type[DictBackend] | type[AsyncDictBackend]) -> Fault:
    backend = cls()
    backend.online = False
    return Fault({"backend": backend}, (ConnectionError,), reads_fail=True)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Engine:
    spec: Engine = request.param
    return spec


@pytest.fixture
def options(
    engine: Engine, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[str], dict[str, Any]]:
    """The options a cache named ``name`` of ``engine`` needs: its folder root, server or backend.

    The same name gets the same backend object, as it would get the same folder
    or server; the Redis server is started only for the ``redis`` engine.
    """
    common: dict[str, Any] = {"cache_dir": tmp_path / "root"}
    if engine.name == "redis":
        common["redis_url"] = request.getfixturevalue("redis_url")
    backends: dict[str, Any] = {}

    def of(name: str) -> dict[str, Any]:
        if engine.backend is None:
            return dict(common)
        if name not in backends:
            backends[name] = engine.backend()
        return {**common, "backend": backends[name]}

    return of


@pytest.fixture
def make(
    engine: Engine, options: Callable[[str], dict[str, Any]]
) -> Iterator[Callable[..., Store]]:
    """``make(name, **config)``: the store the call path would build; all closed afterwards."""
    stores: list[Store] = []

    def build(name: str = USERS, **config: Any) -> Store:
        selection = get_engine_manager().select(
            [engine.name], CacheConfig(name=name, **{**options(name), **config})
        )
        assert selection.fallback is None, selection.fallback
        store = selection.engine
        assert store.name == engine.name
        stores.append(store)
        return store

    yield build
    for store in stores:
        store.close()


@pytest.fixture
def context(
    engine: Engine, options: Callable[[str], dict[str, Any]]
) -> Iterator[Callable[..., CacheContext]]:
    """``context(name=None, **options)``: a ``CacheContext`` on the engine, closed afterwards."""
    made: list[CacheContext] = []

    def build(name: str | None = None, **extra: Any) -> CacheContext:
        given = {**options(name or "twat_cache.context"), **extra}
        if name is not None:
            given["name"] = name
        c = CacheContext(engine_name=engine.name, **given)
        assert c.engine.name == engine.name
        made.append(c)
        return c

    yield build
    for c in made:
        c.close()


def key(store: Store, raw: Any) -> Hashable:
    """A key as the call path makes it: a plain tuple in process, else a 32-hex digest."""
    if store.in_process:
        return ("arg", raw)
    return hashlib.blake2b(repr(raw).encode(), digest_size=16).hexdigest()


def size(engine: Engine, store: Store) -> int:
    """``len(store)``; engines that cannot count skip the test."""
    if not engine.counts:
        pytest.skip(f"{engine.name} ({store!r}) cannot count its entries")
    return len(store)


def test_every_registered_engine_is_in_the_suite() -> None:
    """ENGINES lists every engine twat-cache registers, so none escapes the contract
    (engines other tests register for themselves are not twat-cache's)."""
    from twat_cache.engines import _BUILTIN

    listed = {param.values[0].name for param in ENGINES}
    assert set(_BUILTIN) <= listed


# -- the store -----------------------------------------------------------------------------


def test_get_set_delete_clear(engine: Engine, make: Callable[..., Store]) -> None:
    """A miss is MISSING; set then get round-trips; delete says whether the entry was there;
    clear drops every entry."""
    store = make()
    a, b = key(store, "a"), key(store, "b")
    assert store.get(a) is MISSING
    store.set(a, {"v": 1}, None)
    store.set(b, [1, 2], None)
    assert store.get(a) == {"v": 1}
    assert store.get(b) == [1, 2]
    store.set(a, "replaced", None)
    assert store.get(a) == "replaced"
    if engine.deletes:
        assert store.delete(a) is True
        assert store.delete(a) is False
        assert store.get(a) is MISSING
        store.clear()
        assert store.get(b) is MISSING
    else:
        with pytest.raises(CacheOperationError, match="delete"):
            store.delete(a)
        with pytest.raises(CacheOperationError, match="clear"):
            store.clear()


_OPS = st.lists(
    st.tuples(st.sampled_from(["set", "delete", "get"]), st.integers(0, 4), st.integers()),
    max_size=25,
)
_fresh = itertools.count()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
def test_agrees_with_a_dict(
    engine: Engine, make: Callable[..., Store], ops: list[tuple[str, int, int]]
) -> None:
    """Any sequence of set/delete/get leaves the store holding what a dict would hold."""
    store = make(f"model-{next(_fresh)}")
    model: dict[int, int] = {}
    for op, k, value in ops:
        if op == "set":
            store.set(key(store, k), value, None)
            model[k] = value
        elif op == "delete" and engine.deletes:
            assert store.delete(key(store, k)) is (k in model)
            model.pop(k, None)
        else:
            assert store.get(key(store, k)) == model.get(k, MISSING)
    assert {k: store.get(key(store, k)) for k in range(5)} == {
        k: model.get(k, MISSING) for k in range(5)
    }
    if engine.counts:
        assert len(store) == len(model)


@pytest.mark.parametrize("value", VALUES, ids=["None", "bytes", "nested", "unicode"])
def test_values_round_trip(make: Callable[..., Store], value: Any) -> None:
    """None (told apart from a miss), bytes, nested containers and unicode text come back equal."""
    store = make()
    store.set(key(store, "v"), value, None)
    assert store.get(key(store, "v")) == value
    assert store.get(key(store, "other")) is MISSING


def test_unicode_keys(make: Callable[..., Store]) -> None:
    """Unicode in keys: each key (tuple in process, digest otherwise) keeps its own value."""
    store = make()
    for i, text in enumerate(UNICODE_KEYS):
        store.set(key(store, text), i, None)
    assert [store.get(key(store, text)) for text in UNICODE_KEYS] == list(range(len(UNICODE_KEYS)))


def test_ttl_expires_and_none_never_expires(
    make: Callable[..., Store], context: Callable[..., CacheContext]
) -> None:
    """An entry set with ttl=0.3 is a miss once its deadline is past (measured, not
    guessed: the sleep ends 0.2 s after the last set's deadline); one set with
    ttl=None is still there.

    Store and context share the one sleep, so the suite sleeps once per engine.
    """
    store = make()
    c = context()
    store.set(key(store, "short"), "gone", 0.3)
    store.set(key(store, "forever"), "kept", None)
    c.set("short", "gone", ttl=0.3)
    last_set = time.monotonic()
    c.set("forever", "kept", ttl=None)
    assert store.get(key(store, "short")) == "gone"  # not expired yet: a 0.3 s window is ample
    time.sleep(max(0.0, last_set + 0.5 - time.monotonic()))
    assert store.get(key(store, "short")) is MISSING
    assert store.get(key(store, "forever")) == "kept"
    assert c.get("short", default="miss") == "miss"
    assert "short" not in c
    assert c.get("forever") == "kept"


def test_ttl_zero_keeps_nothing(make: Callable[..., Store], request: pytest.FixtureRequest) -> None:
    """ttl=0 expires at once: nothing is kept, and an older value under the key is not served."""
    store = make()
    store.set(key(store, "new"), "x", 0)
    assert store.get(key(store, "new")) is MISSING
    store.set(key(store, "old"), "stale", None)
    store.set(key(store, "old"), "fresh", 0)
    assert store.get(key(store, "old")) is MISSING
    store.set(key(store, "old"), "stale", None)
    asyncio.run(store.aset(key(store, "old"), "fresh", 0))
    assert store.get(key(store, "old")) is MISSING


def test_size_counts_only_this_cache(engine: Engine, make: Callable[..., Store]) -> None:
    """``users`` and ``users:v2`` on one root or server: each counts its own entries, and
    clearing one leaves the other's entries in place."""
    users, v2 = make(USERS), make(USERS_V2)
    assert size(engine, users) == 0
    for i in range(3):
        users.set(key(users, i), i, None)
    for i in range(2):
        v2.set(key(v2, i), -i, None)
    assert len(users) == 3
    assert len(v2) == 2
    users.clear()
    assert len(users) == 0
    assert len(v2) == 2
    assert v2.get(key(v2, 1)) == -1
    assert users.get(key(users, 1)) is MISSING


def test_close_and_reopen(make: Callable[..., Store]) -> None:
    """Persistent and shared stores keep entries across a new store object; memory starts empty."""
    first = make()
    first.set(key(first, "k"), "kept", None)
    first.close()
    second = make()
    expected = MISSING if second.in_process else "kept"
    assert second.get(key(second, "k")) == expected
    assert first.persistent or first.shared or first.in_process  # every store says which it is


def test_large_value(make: Callable[..., Store]) -> None:
    """A 10 MB bytes value round-trips unchanged."""
    store = make()
    blob = os.urandom(TEN_MB)
    store.set(key(store, "big"), blob, None)
    assert store.get(key(store, "big")) == blob


def _two_writers(write: Callable[[str, int], None], count: int) -> None:
    """Two threads, started together, each writing ``count`` keys of its own."""
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def run(prefix: str) -> None:
        barrier.wait()
        try:
            for i in range(count):
                write(f"{prefix}{i}", i)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures


def test_two_threads_write(engine: Engine, make: Callable[..., Store]) -> None:
    """Two threads writing different keys at once: every entry is there afterwards."""
    store = make()
    _two_writers(lambda k, v: store.set(key(store, k), v, None), 60)
    got = {p + str(i): store.get(key(store, p + str(i))) for p in "ab" for i in range(60)}
    assert got == {p + str(i): i for p in "ab" for i in range(60)}
    if engine.counts:
        assert len(store) == 120


def test_async_twins_agree(engine: Engine, make: Callable[..., Store]) -> None:
    """aget/aset/adelete/aclear see and change the same entries as get/set/delete/clear."""
    store = make()
    a, b = key(store, "a"), key(store, "b")

    async def scenario() -> None:
        assert await store.aget(a) is MISSING
        await store.aset(a, "from async", None)
        assert store.get(a) == "from async"
        store.set(b, "from sync", None)
        assert await store.aget(b) == "from sync"
        if engine.deletes:
            assert await store.adelete(b) is True
            assert await store.adelete(b) is False
            assert store.get(b) is MISSING
            store.set(b, 1, None)
            await store.aclear()
            assert store.get(b) is MISSING

    asyncio.run(scenario())


def test_key_lock_is_exclusive_across_threads(
    make: Callable[..., Store], request: pytest.FixtureRequest
) -> None:
    """While one thread holds ``key_lock(k)``, another thread waits; it gets the lock on release."""
    store = make()
    k = str(key(store, "locked")) if not store.in_process else "locked"
    if store.key_lock(k) is None:
        pytest.skip(f"{store!r} declares no per-key lock")
    held, got = threading.Event(), threading.Event()

    def second() -> None:
        held.wait(10)
        with store.key_lock(k) as acquired:  # type: ignore[union-attr]
            assert acquired
            got.set()

    thread = threading.Thread(target=second)
    thread.start()
    try:
        with store.key_lock(k) as acquired:  # type: ignore[union-attr]
            assert acquired
            held.set()
            assert not got.wait(0.5), "a second thread took a lock that was held"
        assert got.wait(20), "the second thread never got the released lock"
    finally:
        held.set()
        thread.join(30)


_LOCK_CHILD = """
import sys, threading
from twat_cache import CacheConfig, get_engine_manager
config = CacheConfig(**{options!r})
store = get_engine_manager().select([{engine!r}], config).engine
got = threading.Event()

def take():
    with store.key_lock({key!r}) as acquired:
        if acquired:
            got.set()

threading.Thread(target=take, daemon=True).start()
print("got" if got.wait(0.5) else "blocked", flush=True)
sys.stdin.readline()
print("got" if got.wait(20) else "blocked", flush=True)
store.close()
"""


def test_key_lock_is_exclusive_across_processes(
    engine: Engine, make: Callable[..., Store], options: Callable[[str], dict[str, Any]]
) -> None:
    """While this process holds ``key_lock(k)``, another process using the same cache waits;
    it gets the lock once this one releases it (the lock's declared purpose)."""
    store = make()
    k = str(key(store, "locked"))
    if store.key_lock(k) is None:
        pytest.skip(f"{store!r} declares no per-key lock")
    given = {n: str(v) for n, v in options(USERS).items() if n in ("cache_dir", "redis_url")}
    code = _LOCK_CHILD.format(options={"name": USERS, **given}, engine=engine.name, key=k)
    lock = store.key_lock(k)
    assert lock is not None
    with lock as acquired:
        assert acquired
        child = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdin is not None
            while_held = child.stdout.readline().strip()
        except BaseException:
            child.kill()
            raise
    try:
        child.stdin.write("released\n")
        child.stdin.flush()
        after_release = child.stdout.readline().strip()
        _, errors = child.communicate(timeout=60)
    finally:
        child.kill()
    assert (while_held, after_release) == ("blocked", "got"), errors


def test_fault_raises_from_the_store(
    engine: Engine, make: Callable[..., Store], tmp_path: Path
) -> None:
    """A real fault (a folder that is a file, a closed port, a backend that is down) raises
    from the store: stores never swallow errors (the call path counts and logs them)."""
    if engine.fault is None:
        store = make()
        if not store.in_process:
            pytest.skip(f"{engine.name}: no real fault to make")
        with pytest.raises(TypeError):  # an unhashable key: the call path falls back to a digest
            store.set(["unhashable"], 1, None)
        with pytest.raises(TypeError):
            store.get(["unhashable"])
        return
    fault = engine.fault(tmp_path)
    store = make("broken", **fault.options)
    k = key(store, "k")
    with pytest.raises(fault.errors):
        store.set(k, "v", None)
    if fault.reads_fail:
        with pytest.raises(fault.errors):
            store.get(k)
    else:  # reading a cache that cannot exist may be a plain miss, or raise: never a value
        try:
            assert store.get(k) is MISSING
        except fault.errors:
            pass


def test_unserializable_value_raises(make: Callable[..., Store]) -> None:
    """A value the serializer refuses raises from a shared store and stores nothing;
    in-process stores keep live objects, so the same value is simply stored."""
    store = make()
    value = threading.Lock()
    if store.in_process:
        store.set(key(store, "lock"), value, None)
        assert store.get(key(store, "lock")) is value
        return
    with pytest.raises((SerializationError, TypeError)):
        store.set(key(store, "lock"), value, None)
    assert store.get(key(store, "lock")) is MISSING


# -- CacheContext on each engine ------------------------------------------------------------


def test_context_get_set_delete_clear(engine: Engine, context: Callable[..., CacheContext]) -> None:
    """A miss gives the default; set, ``in``, delete and clear behave as on a mapping."""
    c = context()
    assert c.get("k") is None
    assert c.get("k", default="dflt") == "dflt"
    assert "k" not in c
    c.set("k", {"v": 1})
    c.set(("t", 1), [1, 2])
    assert c.get("k") == {"v": 1}
    assert c.get(("t", 1)) == [1, 2]
    assert "k" in c
    if engine.deletes:
        assert c.delete("k") is True
        assert c.delete("k") is False
        assert "k" not in c
        c.clear()
        assert c.get(("t", 1), default="gone") == "gone"
    else:
        with pytest.raises(CacheOperationError, match="delete"):
            c.delete("k")


@pytest.mark.parametrize("value", VALUES, ids=["None", "bytes", "nested", "unicode"])
def test_context_values_and_unicode_keys(context: Callable[..., CacheContext], value: Any) -> None:
    """None (told apart from the default), bytes, nested and unicode values under unicode keys."""
    c = context()
    for text in UNICODE_KEYS:
        c.set(text, (text, value))
    for text in UNICODE_KEYS:
        assert c.get(text, default=MISSING) == (text, value)
    c.set("none", value)
    assert c.get("none", default=MISSING) == value


def test_context_ttl_zero_keeps_nothing(
    context: Callable[..., CacheContext], request: pytest.FixtureRequest
) -> None:
    """``set(k, v, ttl=0)`` keeps nothing, whatever was stored under ``k`` before."""
    c = context()
    c.set("new", 1, ttl=0)
    assert "new" not in c
    c.set("old", "stale")
    c.set("old", "fresh", ttl=0)
    assert c.get("old", default="miss") == "miss"


def test_context_size_counts_only_this_cache(
    engine: Engine, context: Callable[..., CacheContext]
) -> None:
    """Contexts named ``users`` and ``users:v2`` on one root or server count and clear their own."""
    users, v2 = context(USERS), context(USERS_V2)
    assert size(engine, users.engine) == 0
    for i in range(3):
        users.set(i, i)
    for i in range(2):
        v2.set(i, -i)
    assert len(users.engine) == 3
    assert len(v2.engine) == 2
    users.clear()
    assert len(users.engine) == 0
    assert len(v2.engine) == 2
    assert v2.get(1) == -1


def test_context_close_and_reopen(context: Callable[..., CacheContext]) -> None:
    """A new context keeps a persistent or shared store's entries; unnamed memory starts empty."""
    first = context()
    first.set("k", "kept")
    first.close()
    second = context()
    expected = "miss" if second.engine.in_process else "kept"
    assert second.get("k", default="miss") == expected


def test_context_large_value(context: Callable[..., CacheContext]) -> None:
    """A 10 MB bytes value round-trips through the context."""
    c = context()
    blob = os.urandom(TEN_MB)
    c.set("big", blob)
    assert c.get("big") == blob


def test_context_two_threads_write(context: Callable[..., CacheContext]) -> None:
    """Two threads setting different keys through one context: all present afterwards."""
    c = context()
    _two_writers(c.set, 60)
    assert {p + str(i): c.get(p + str(i)) for p in "ab" for i in range(60)} == {
        p + str(i): i for p in "ab" for i in range(60)
    }


def test_context_async_twins_agree(engine: Engine, context: Callable[..., CacheContext]) -> None:
    """The context's coroutine methods see and change what its plain methods do."""
    c = context()

    async def scenario() -> None:
        assert await c.aget("a", default="miss") == "miss"
        await c.aset("a", "from async")
        assert c.get("a") == "from async"
        c.set("b", "from sync")
        assert await c.aget("b") == "from sync"
        assert await c.acontains("b")
        if engine.deletes:
            assert await c.adelete("b") is True
            assert "b" not in c
            await c.aclear()
            assert "a" not in c
        await c.aclose()

    asyncio.run(scenario())


def test_context_fault_raises(
    engine: Engine, context: Callable[..., CacheContext], tmp_path: Path
) -> None:
    """A context on a broken store raises the store's error (a context is the store by hand)."""
    if engine.fault is None:
        pytest.skip(f"{engine.name}: no real fault to make (the context keys lists by content)")
    fault = engine.fault(tmp_path)
    c = context("broken", **fault.options)
    with pytest.raises(fault.errors):
        c.set("k", "v")
