"""The call path: signature-preserving wrappers, compute-once locks and fault isolation.

Why generated code: the wrapper is compiled once per decorated function with
the function's own parameter list, so Python's argument binding (in C)
merges positional and keyword spellings and fills defaults, and the key is a
tuple of local variables. A memory hit is then one tuple, one subscript and
one counter: no ``*args``/``**kwargs`` packing, no ``inspect``, no branches.

Only this module catches engine exceptions: a fault is counted, logged once
per cause, and the user's function runs instead. Exceptions raised by the
user's function pass through unchanged and are never stored.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import keyword
import os
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from twat_cache._log import warn_once
from twat_cache._types import MISSING, CacheInfo
from twat_cache.config import CacheConfig
from twat_cache.engines import CacheEngineManager, get_engine_manager
from twat_cache.engines.adapters import ThreadedEngine
from twat_cache.engines.base import AnyEngine, AsyncCacheEngine, CacheEngine, MemoryEngine
from twat_cache.engines.persistent import PersistentEngine
from twat_cache.exceptions import CacheKeyError, ConfigurationError, SerializationError
from twat_cache.keys import (
    describe_unkeyable,
    memory_key,
    namespaced_digest,
    source_digest,
)
from twat_cache.registry import CacheEntry, registry
from twat_cache.serializers import resolve_serializer

__all__ = ["CacheCore", "make_cached", "make_passthrough"]

_NO_KWARGS: dict[str, Any] = {}
#: Types whose equal values always have equal stable encodings (``typed=False``).
_PLAIN_SCALARS = frozenset({int, str, bytes, float, bool, type(None)})
_DIGEST_MEMO = 4096
_PREFIX = "_tc_"

_MEMORY_TEMPLATE = """
def _tc_factory(_tc_map, _tc_miss, _tc_fault, _tc_inst, _tc_kw, _tc_userkey, _tc_nokw):
    _tc_hits = 0
    {async_}def {name}({sig}):
        nonlocal _tc_hits
        _tc_k = {key}
        try:
            _tc_v = _tc_map[_tc_k]
        except KeyError:
            return {await_}_tc_miss(_tc_k, {args}, {kwargs})
        except Exception as _tc_e:
            return {await_}_tc_fault(_tc_e, _tc_k, {args}, {kwargs})
        _tc_hits += 1
        return _tc_v
    def _tc_keyof({sig}):
        return {key}
    def _tc_count():
        return _tc_hits
    def _tc_reset():
        nonlocal _tc_hits
        _tc_hits = 0
    return {name}, _tc_keyof, _tc_count, _tc_reset
"""

_GENERIC_TEMPLATE = """
def _tc_factory(_tc_call, _tc_inst, _tc_kw, _tc_userkey, _tc_nokw):
    {async_}def {name}({sig}):
        return {await_}_tc_call({key}, {args}, {kwargs})
    def _tc_keyof({sig}):
        return {key}
    return {name}, _tc_keyof, None, None
"""


#: ``call_options=True`` and/or ``location_arg=``: the call's own keywords pick the
#: folder and whether to read or store; they never reach the function.
_OPTIONS_TEMPLATE = """
def _tc_factory(_tc_call, _tc_inst, _tc_kw, _tc_userkey, _tc_nokw, _tc_loc):
    {async_}def {name}({options_sig}):
        return {await_}_tc_call({key}, {args}, {kwargs}, {again}, {cache_results}, {where})
    def _tc_keyof({sig}):
        return {key}
    def _tc_whereof({sig}):
        return {where_plain}
    return {name}, _tc_keyof, _tc_whereof
"""

#: The per-call keywords of ``call_options=True`` and their defaults.
CALL_OPTIONS: dict[str, Any] = {"again": False, "cache_results": True, "cache_path": None}


def _location(value: Any) -> str | None:
    """The folder ``location_arg=`` stores a call under: ``<value>/.twat_cache``."""
    return None if value is None else os.path.join(os.fspath(value), ".twat_cache")


def _sorted_items(kwargs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """``**kwargs`` as a hashable, order-insensitive tuple."""
    return tuple(sorted(kwargs.items()))


def _typed_items(kwargs: dict[str, Any]) -> tuple[tuple[str, Any, type], ...]:
    return tuple(sorted((k, v, type(v)) for k, v in kwargs.items()))


class _Plan:
    """What code generation needs from the signature, worked out once."""

    def __init__(self, func: Callable[..., Any], config: CacheConfig, in_memory: bool) -> None:
        try:
            params = list(inspect.signature(func, follow_wrapped=False).parameters.values())
        except (TypeError, ValueError):  # builtins without a signature
            params = [
                inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
                inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
            ]
        names = [p.name for p in params]
        for name in names:
            if name.startswith(_PREFIX):
                msg = f"parameter {name!r}: names starting with {_PREFIX!r} are reserved"
                raise ConfigurationError(msg)
        unknown = [name for name in config.ignore if name not in names]
        if unknown:
            msg = (
                f"CacheConfig.ignore: invalid value {config.ignore!r}: {', '.join(unknown)} "
                f"is not a parameter of {func.__qualname__}{inspect.signature(func)}"
                if names
                else f"CacheConfig.ignore: {func.__qualname__} has no parameters"
            )
            raise ConfigurationError(msg)
        self.method = bool(params) and params[0].name == "self" and "self" not in config.ignore
        self.sig = self._signature_source(params)
        self.args, self.kwargs = self._call_source(params)
        key_parts: list[str] = []
        self.key_names: list[str] = []
        typed_types = in_memory and config.typed
        for i, p in enumerate(params):
            if p.name in config.ignore:
                continue
            if p.kind is p.VAR_KEYWORD:
                expr = f"_tc_kw({p.name})"
            elif i == 0 and self.method and in_memory:
                expr = f"_tc_inst({p.name})"
            else:
                expr = p.name
            key_parts.append(expr)
            self.key_names.append(p.name)
            if typed_types and p.kind is p.VAR_POSITIONAL:
                key_parts.append(f"tuple(map(type, {p.name}))")
            elif typed_types and p.kind is not p.VAR_KEYWORD:
                key_parts.append(f"type({p.name})")
        if config.key is not None:
            self.key = f"_tc_userkey({self._call_spelling(params)})"
            self.key_names = []
        else:
            self.key = "(" + "".join(part + ", " for part in key_parts) + ")"
        if in_memory and self.key == self.args and not self.method:
            self.args = "_tc_k"  # the key is the argument tuple: reuse it on a miss
        self.options = config.call_options or config.location_arg is not None
        if self.options:
            self._plan_options(func, config, params)

    def _plan_options(
        self, func: Callable[..., Any], config: CacheConfig, params: list[inspect.Parameter]
    ) -> None:
        """The wrapper's extra keywords (``call_options``) and where each call is stored."""
        names = {p.name: p for p in params}
        self.args = self._call_source(params)[0]  # the options template has no _tc_k
        loc = config.location_arg
        variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        if loc is not None and (loc not in names or names[loc].kind in variadic):
            msg = (
                f"CacheConfig.location_arg: invalid value {loc!r}: not a named parameter of "
                f"{func.__qualname__}{inspect.signature(func)}"
            )
            raise ConfigurationError(msg)
        extra: list[inspect.Parameter] = []
        if config.call_options:
            taken = [name for name in CALL_OPTIONS if name in names]
            if taken:
                msg = (
                    f"CacheConfig.call_options: invalid value True: {func.__qualname__} has "
                    f"parameters named {', '.join(taken)}, which call_options would take over"
                )
                raise ConfigurationError(msg)
            extra = [
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
                for name, default in CALL_OPTIONS.items()
            ]
        tail = [p for p in params if p.kind is p.VAR_KEYWORD]
        head = [p for p in params if p.kind is not p.VAR_KEYWORD]
        self.options_sig = self._signature_source(head + extra + tail)
        where_plain = f"_tc_loc({loc})" if loc is not None else "None"
        self.where_plain = where_plain
        if config.call_options:
            self.again, self.cache_results = "again", "cache_results"
            self.where = (
                f"(cache_path if cache_path is not None else {where_plain})"
                if loc is not None
                else "cache_path"
            )
        else:
            self.again, self.cache_results, self.where = "False", "True", where_plain

    @staticmethod
    def _signature_source(params: list[inspect.Parameter]) -> str:
        parts: list[str] = []
        star_done = False
        for i, p in enumerate(params):
            if p.kind is p.KEYWORD_ONLY and not star_done:
                parts.append("*")
                star_done = True
            if p.kind is p.VAR_POSITIONAL:
                parts.append("*" + p.name)
                star_done = True
            elif p.kind is p.VAR_KEYWORD:
                parts.append("**" + p.name)
            else:
                parts.append(p.name + ("=None" if p.default is not p.empty else ""))
            nxt = params[i + 1] if i + 1 < len(params) else None
            if p.kind is p.POSITIONAL_ONLY and (nxt is None or nxt.kind is not p.POSITIONAL_ONLY):
                parts.append("/")
        return ", ".join(parts)

    @staticmethod
    def _call_source(params: list[inspect.Parameter]) -> tuple[str, str]:
        positional = [
            ("*" + p.name) if p.kind is p.VAR_POSITIONAL else p.name
            for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
        keywords = [
            ("**" + p.name) if p.kind is p.VAR_KEYWORD else f"{p.name!r}: {p.name}"
            for p in params
            if p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD)
        ]
        args = "(" + "".join(part + ", " for part in positional) + ")"
        kwargs = ("{" + ", ".join(keywords) + "}") if keywords else "_tc_nokw"
        return args, kwargs

    @staticmethod
    def _call_spelling(params: list[inspect.Parameter]) -> str:
        parts = []
        for p in params:
            if p.kind is p.VAR_POSITIONAL:
                parts.append("*" + p.name)
            elif p.kind is p.VAR_KEYWORD:
                parts.append("**" + p.name)
            elif p.kind is p.KEYWORD_ONLY:
                parts.append(f"{p.name}={p.name}")
            else:
                parts.append(p.name)
        return ", ".join(parts)


class _Flight:
    """One computation in progress, which other callers of the same key wait for."""

    __slots__ = ("event", "ok", "owner", "value")

    def __init__(self, owner: int) -> None:
        self.event = threading.Event()
        self.ok = False
        self.owner = owner
        self.value: Any = None


class CacheCore:
    """The state behind one decorated function: engine, counters, locks and controls."""

    def __init__(
        self,
        func: Callable[..., Any],
        config: CacheConfig,
        entry: CacheEntry,
    ) -> None:
        self.func = func
        self.config = config
        self.entry = entry
        self.engine: AnyEngine = entry.engine
        self.name = entry.name
        self.is_async = inspect.iscoroutinefunction(func)
        self.in_memory = self.engine.in_memory
        self.persistent = isinstance(self.engine, PersistentEngine)
        #: How coroutines reach the engine: ``None`` for a memory engine (plain
        #: calls, no I/O), else an async engine, a native twin, or the thread pool.
        self.aengine: AsyncCacheEngine | None = None
        if isinstance(self.engine, AsyncCacheEngine):
            if not self.is_async:
                msg = (
                    f"cache {self.name!r} uses the async-only engine {self.engine.name!r}; "
                    f"{func.__qualname__} is not async: give it another name="
                )
                raise ConfigurationError(msg)
            self.aengine = self.engine
        elif self.is_async and not isinstance(self.engine, MemoryEngine):
            twin = self.engine.async_engine()  # (an empty engine is falsy: test for None)
            self.aengine = twin if twin is not None else ThreadedEngine(self.engine)
        self.why = ""
        self.namespace: tuple[str, ...] = (self.name, config.version or "")
        if not self.in_memory and config.name is None:
            # Stored results outlive the process: a changed body must not find them.
            # A cache shared by an explicit name spans functions, so only version= applies.
            self.namespace += (source_digest(func),)
        self._digest_of = namespaced_digest(self.namespace, typed=config.typed)
        self._whereof: Callable[..., Any] | None = None
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self._fast_hits: Callable[[], int] | None = None
        self._reset_fast: Callable[[], None] | None = None
        self._pending: dict[Hashable, _Flight] = {}
        self._apending: dict[Hashable, asyncio.Future[tuple[bool, Any]]] = {}
        self._plock = threading.Lock()
        self._instances: dict[int, tuple[weakref.ref[Any], set[Hashable]]] = {}
        self._instance_modes: dict[type, int] = {}
        self._digests: dict[tuple[Any, ...], str] | None = None if config.typed else {}
        self._ilock = threading.Lock()
        self.plan = _Plan(func, config, self.in_memory)
        self.wrapper, self.keyof = self._build()

    # -- construction -------------------------------------------------------

    def _build(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        plan = self.plan
        fname = self.func.__name__
        name = fname if fname.isidentifier() and not keyword.iskeyword(fname) else "_tc_wrapper"
        fills = {
            "name": name,
            "sig": plan.sig,
            "key": plan.key,
            "args": plan.args,
            "kwargs": plan.kwargs,
            "async_": "async " if self.is_async else "",
            "await_": "await " if self.is_async else "",
        }
        namespace: dict[str, Any] = {}
        kw = _typed_items if self.config.typed else _sorted_items
        if plan.options:
            fills.update(
                options_sig=plan.options_sig,
                again=plan.again,
                cache_results=plan.cache_results,
                where=plan.where,
                where_plain=plan.where_plain,
            )
            exec(_OPTIONS_TEMPLATE.format(**fills), namespace)
            wrapper, keyof, self._whereof = namespace["_tc_factory"](
                self.acall_with if self.is_async else self.call_with,
                self.instance_token,
                kw,
                self.config.key,
                _NO_KWARGS,
                _location,
            )
            for fn in (wrapper, keyof, self._whereof):
                fn.__defaults__ = getattr(self.func, "__defaults__", None)
                fn.__kwdefaults__ = getattr(self.func, "__kwdefaults__", None)
            if self.config.call_options:
                wrapper.__kwdefaults__ = {**(wrapper.__kwdefaults__ or {}), **CALL_OPTIONS}
            functools.update_wrapper(wrapper, self.func)
            return wrapper, keyof
        if self.in_memory:
            exec(_MEMORY_TEMPLATE.format(**fills), namespace)
            made = namespace["_tc_factory"](
                getattr(self.engine, "mapping"),  # noqa: B009 - in_memory engines have one
                self.amiss if self.is_async else self.miss,
                self.afault if self.is_async else self.fault,
                self.instance_token,
                kw,
                self.config.key,
                _NO_KWARGS,
            )
        else:
            exec(_GENERIC_TEMPLATE.format(**fills), namespace)
            made = namespace["_tc_factory"](
                self.acall if self.is_async else self.call,
                self.instance_token,
                kw,
                self.config.key,
                _NO_KWARGS,
            )
        wrapper, keyof, self._fast_hits, self._reset_fast = made
        for fn in (wrapper, keyof):
            fn.__defaults__ = getattr(self.func, "__defaults__", None)
            fn.__kwdefaults__ = getattr(self.func, "__kwdefaults__", None)
        functools.update_wrapper(wrapper, self.func)
        return wrapper, keyof

    # -- counters -------------------------------------------------------------

    def counts(self) -> tuple[int, int, int]:
        """(hits, misses, errors) of this function."""
        fast = self._fast_hits() if self._fast_hits is not None else 0
        return self.hits + fast, self.misses, self.errors

    def reset(self) -> None:
        """Zero the counters and forget tracked instances (after a clear)."""
        self.hits = self.misses = self.errors = 0
        if self._reset_fast is not None:
            self._reset_fast()
        with self._ilock:
            self._instances.clear()

    def _fault(self, phase: str, exc: BaseException) -> None:
        """Count an engine fault and log it once per cause."""
        self.errors += 1
        warn_once(
            (self.name, phase, type(exc).__name__),
            f"twat_cache: cache {self.name!r} ({self.engine.name}) {phase} failed: "
            f"{type(exc).__name__}: {exc}; the function's own result is used",
        )

    # -- keys -----------------------------------------------------------------

    def instance_token(self, obj: Any) -> Hashable:
        """The key part for ``self`` in a memory cache: never a strong reference.

        ``__cache_key__()`` or ``__persistent_hash__()`` key by value; any
        other instance is keyed by identity, held weakly, and its entries are
        dropped when it is garbage-collected (so its id cannot be reused for
        another object's results).
        """
        cls = type(obj)
        mode = self._instance_modes.get(cls)
        if mode is None:
            mode = (
                1
                if getattr(cls, "__cache_key__", None)
                else 2
                if getattr(cls, "__persistent_hash__", None)
                else 0
            )
            self._instance_modes[cls] = mode
        if mode == 1:
            return ("__cache_key__", obj.__cache_key__())
        if mode == 2:
            return ("__persistent_hash__", obj.__persistent_hash__())
        oid = id(obj)
        if oid not in self._instances:
            try:
                ref = weakref.ref(obj, functools.partial(self._forget_instance, oid))
            except TypeError:
                msg = (
                    f"cannot cache {self.func.__qualname__} per instance: "
                    f"{cls.__qualname__} objects do not support weak references; give the "
                    "class a __cache_key__() method or pass ignore=('self',)"
                )
                raise CacheKeyError(msg) from None
            with self._ilock:
                self._instances.setdefault(oid, (ref, set()))
        return oid

    def _forget_instance(self, oid: int, _ref: object) -> None:
        with self._ilock:
            _, keys = self._instances.pop(oid, (None, set()))
        for key in keys:
            try:
                self.engine.delete(key)
            except Exception as exc:
                self._fault("delete", exc)

    def _track(self, key: Hashable, oid: int | None) -> None:
        """Remember which entries belong to an instance, so they die with it."""
        if oid is None and type(key) is tuple and key and type(key[0]) is int:
            oid = key[0]
        with self._ilock:
            slot = self._instances.get(oid) if oid is not None else None
            if slot is None:
                return
            keys = slot[1]
            keys.add(key)
            limit = self.config.maxsize
            if limit is not None and len(keys) > 2 * limit + 16:
                mapping = getattr(self.engine, "mapping")  # noqa: B009 - memory engines only
                keys.intersection_update([k for k in keys if k in mapping])

    def digest_key(self, key: Any) -> Hashable:
        """A hashable stand-in for a key holding unhashable values (memory engines)."""
        try:
            return memory_key(key, typed=self.config.typed)
        except CacheKeyError:
            values = key if isinstance(key, tuple) else (key,)
            raise describe_unkeyable(self.plan.key_names, values, self.config.typed) from None

    def stable_key(self, values: Any) -> str:
        """The digest a persistent or shared engine stores under.

        Digests of flat tuples of plain scalars are remembered (a few
        thousand at most): hashing them again costs more than a Redis
        round trip's tenth. Only such tuples are, because equal values
        of those types always encode alike unless ``typed=True``, which
        is never remembered; ``Decimal(1) == 1`` and the like never reach it.
        """
        memo = self._digests
        if (
            memo is not None
            and type(values) is tuple
            and all(type(v) in _PLAIN_SCALARS for v in values)
        ):
            digest = memo.get(values)
            if digest is None:
                digest = self._digest(values)
                if len(memo) >= _DIGEST_MEMO:
                    memo.clear()
                memo[values] = digest
            return digest
        return self._digest(values)

    def _digest(self, values: Any) -> str:
        try:
            return self._digest_of(values)
        except CacheKeyError:
            values = values if isinstance(values, tuple) else (values,)
            raise describe_unkeyable(self.plan.key_names, values, self.config.typed) from None

    def key_for(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
        """The key this call is stored under (what the wrapper computes)."""
        key: Hashable = self.keyof(*args, **kwargs)
        if not self.in_memory:
            return self.stable_key(key)
        try:
            hash(key)
        except TypeError:
            return self.digest_key(key)
        return key

    # -- engine access with fault isolation ------------------------------------

    def _sync_engine(self) -> CacheEngine:
        engine = self.engine
        assert isinstance(engine, CacheEngine), "async-only engines serve async functions only"
        return engine

    def lookup(self, key: Hashable, engine: CacheEngine | None = None) -> Any:
        target = self._sync_engine() if engine is None else engine
        try:
            return target.get(key)
        except Exception as exc:
            self._fault("read", exc)
            if isinstance(exc, SerializationError):  # a damaged entry: drop it, then recompute
                try:
                    target.delete(key)
                except Exception as drop:
                    self._fault("delete", drop)
            return MISSING

    def store(
        self, key: Hashable, value: Any, oid: int | None = None, engine: CacheEngine | None = None
    ) -> None:
        try:
            target = self._sync_engine() if engine is None else engine
            if isinstance(target, MemoryEngine):
                target.store(key, value)
            else:
                target.set(key, value, self.config.ttl)
        except Exception as exc:
            self._fault("write", exc)
            return
        if self.plan.method and self.in_memory:
            self._track(key, oid)

    def compute(
        self,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        oid: int | None,
        engine: CacheEngine | None = None,
    ) -> Any:
        """Look again, then compute and store; across processes under the engine's lock."""
        value = self.lookup(key, engine)
        if value is not MISSING:
            return value
        lock = self._cross_process_lock(key, engine)
        if lock is not None:
            try:
                lock.__enter__()
            except Exception as exc:  # no lock (server down, timeout): compute anyway
                self._fault("lock", exc)
                lock = None
        try:
            if lock is not None:
                value = self.lookup(key, engine)  # another process may have stored it meanwhile
                if value is not MISSING:
                    return value
            value = self.func(*args, **kwargs)
            self.store(key, value, oid, engine)
            return value
        finally:
            if lock is not None:
                try:
                    lock.__exit__(None, None, None)
                except Exception as exc:
                    self._fault("unlock", exc)

    def _cross_process_lock(self, key: Hashable, engine: CacheEngine | None) -> Any:
        if not self.config.lock or self.in_memory:
            return None
        try:
            return (self._sync_engine() if engine is None else engine).key_lock(str(key))
        except Exception as exc:
            self._fault("lock", exc)
            return None

    # -- async engine access: never blocks the loop ----------------------------------

    async def alookup(self, key: Hashable) -> Any:
        if self.aengine is None:
            return self.lookup(key)
        try:
            return await self.aengine.get(key)
        except Exception as exc:
            self._fault("read", exc)
            if isinstance(exc, SerializationError):
                try:
                    await self.aengine.delete(key)
                except Exception as drop:
                    self._fault("delete", drop)
            return MISSING

    async def astore(self, key: Hashable, value: Any, oid: int | None = None) -> None:
        if self.aengine is None:
            self.store(key, value, oid)
            return
        try:
            await self.aengine.set(key, value, self.config.ttl)
        except Exception as exc:
            self._fault("write", exc)
            return
        if self.plan.method and self.in_memory:
            self._track(key, oid)

    async def acompute(
        self, key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any], oid: int | None
    ) -> Any:
        """The coroutine form of :meth:`compute`."""
        value = await self.alookup(key)
        if value is not MISSING:
            return value
        lock = None
        if self.config.lock and not self.in_memory and self.aengine is not None:
            try:
                lock = self.aengine.key_lock(str(key))
                if lock is not None:
                    await lock.__aenter__()
            except Exception as exc:
                self._fault("lock", exc)
                lock = None
        try:
            if lock is not None:
                value = await self.alookup(key)
                if value is not MISSING:
                    return value
            value = await self.func(*args, **kwargs)
            await self.astore(key, value, oid)
            return value
        finally:
            if lock is not None:
                try:
                    await lock.__aexit__(None, None, None)
                except Exception as exc:
                    self._fault("unlock", exc)

    # -- sync call path ---------------------------------------------------------

    def miss(
        self,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        oid: int | None = None,
        engine: CacheEngine | None = None,
    ) -> Any:
        """Compute a missing value (once per key when ``lock=True``) and store it."""
        self.misses += 1
        if not self.config.lock:
            value = self.func(*args, **kwargs)
            self.store(key, value, oid, engine)
            return value
        me = threading.get_ident()
        while True:
            with self._plock:
                flight = self._pending.get(key)
                owner = flight is None
                if flight is None:
                    flight = self._pending[key] = _Flight(me)
            if not owner:
                if flight.owner == me:  # re-entrant call of the same key: no self-deadlock
                    return self.func(*args, **kwargs)
                flight.event.wait()
                if flight.ok:
                    return flight.value
                continue  # the computing call raised: one waiter takes over
            try:
                value = self.compute(key, args, kwargs, oid, engine)  # looks again first
                flight.value, flight.ok = value, True
                return value
            finally:
                with self._plock:
                    del self._pending[key]
                flight.event.set()

    def fault(self, exc: Exception, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The memory fast path raised: key by content if unhashable, else bypass the cache."""
        if isinstance(exc, TypeError):
            dkey = self.digest_key(key)
            value = self.lookup(dkey)
            if value is not MISSING:
                self.hits += 1
                return value
            return self.miss(dkey, args, kwargs, self._owner_of(key))
        self._fault("read", exc)
        self.misses += 1
        return self.func(*args, **kwargs)

    def _owner_of(self, key: Any) -> int | None:
        if self.plan.method and type(key) is tuple and key and type(key[0]) is int:
            return int(key[0])
        return None

    def call(self, values: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The whole call for engines keyed by stable digest (persistent, shared, custom)."""
        key = self.stable_key(values)
        value = self.lookup(key)
        if value is not MISSING:
            self.hits += 1
            return value
        return self.miss(key, args, kwargs)

    def _options_key(self, values: Hashable) -> Hashable:
        if not self.in_memory:
            return self.stable_key(values)
        try:
            hash(values)
        except TypeError:
            return self.digest_key(values)
        return values

    def _engine_at(self, where: Any) -> CacheEngine:
        """The engine storing under the per-call root ``where`` (memory engines have one)."""
        if where is None or not isinstance(self.engine, PersistentEngine):
            return self._sync_engine()
        return self.engine.at(where)

    def _options_target(
        self, values: Any, where: Any
    ) -> tuple[Hashable, int | None, CacheEngine | None]:
        """Key, owning instance and engine of a per-call-controlled call (engine None: faulty)."""
        key = self._options_key(values)
        try:
            engine = self._engine_at(where)
        except Exception as exc:
            self._fault("open", exc)
            return key, None, None
        return key, self._owner_of(values), engine

    def call_with(
        self,
        values: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        again: bool,
        cache_results: bool,
        where: Any,
    ) -> Any:
        """A call with per-call control: ``again``, ``cache_results``, another folder."""
        key, oid, engine = self._options_target(values, where)
        if engine is None:
            self.misses += 1
            return self.func(*args, **kwargs)
        if not again:
            value = self.lookup(key, engine)
            if value is not MISSING:
                self.hits += 1
                return value
            if cache_results:
                return self.miss(key, args, kwargs, oid, engine)
        self.misses += 1
        value = self.func(*args, **kwargs)
        if cache_results:
            self.store(key, value, oid, engine)
        return value

    # -- async call path ----------------------------------------------------------

    async def amiss(
        self, key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any], oid: int | None = None
    ) -> Any:
        """Await a missing value once per key and loop; never a task or thread per call."""
        self.misses += 1
        if not self.config.lock:
            value = await self.func(*args, **kwargs)
            await self.astore(key, value, oid)
            return value
        loop = asyncio.get_running_loop()
        while True:
            fut = self._apending.get(key)
            if fut is not None and fut.get_loop() is not loop:
                # another thread's event loop is computing it: never wait across loops
                return await self._acompute(key, args, kwargs, oid)
            if fut is None:
                fut = loop.create_future()
                self._apending[key] = fut
                result: tuple[bool, Any] = (False, None)
                try:
                    # If this task is cancelled, ``result`` stays (False, None):
                    # the waiters wake up and one of them computes instead.
                    value = await self.acompute(key, args, kwargs, oid)
                    result = (True, value)
                    return value
                finally:
                    if self._apending.get(key) is fut:
                        del self._apending[key]
                    if not fut.done():
                        fut.set_result(result)
            ok, value = await asyncio.shield(fut)
            if ok:
                return value

    async def _acompute(
        self, key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any], oid: int | None
    ) -> Any:
        value = await self.func(*args, **kwargs)
        await self.astore(key, value, oid)
        return value

    async def afault(
        self, exc: Exception, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if isinstance(exc, TypeError):
            dkey = self.digest_key(key)
            value = await self.alookup(dkey)
            if value is not MISSING:
                self.hits += 1
                return value
            return await self.amiss(dkey, args, kwargs, self._owner_of(key))
        self._fault("read", exc)
        self.misses += 1
        return await self.func(*args, **kwargs)

    async def acall(self, values: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The whole call of an ``async def`` function on a digest-keyed engine."""
        key = self.stable_key(values)
        value = await self.alookup(key)
        if value is not MISSING:
            self.hits += 1
            return value
        return await self.amiss(key, args, kwargs)

    async def acall_with(
        self,
        values: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        again: bool,
        cache_results: bool,
        where: Any,
    ) -> Any:
        """:meth:`call_with` for ``async def`` functions."""
        key, oid, engine = self._options_target(values, where)
        if engine is None:
            self.misses += 1
            return await self.func(*args, **kwargs)
        if not again:
            value = self.lookup(key, engine)
            if value is not MISSING:
                self.hits += 1
                return value
            if cache_results and engine is self.engine:
                return await self.amiss(key, args, kwargs, oid)
        self.misses += 1
        value = await self.func(*args, **kwargs)
        if cache_results:
            self.store(key, value, oid, engine)
        return value

    # -- controls attached to the wrapper ------------------------------------------

    def cache_info(self) -> CacheInfo:
        hits, misses, _ = self.counts()
        try:
            size = len(self.engine)
        except Exception as exc:
            self._fault("size", exc)
            size = 0
        return CacheInfo(hits, misses, self.config.maxsize, size)

    def cache_clear(self) -> None:
        self.entry.clear()

    def cache_parameters(self) -> dict[str, Any]:
        params = self.config.public_dict()
        params["preferred_engine"] = params.pop("engine")
        params.update(
            name=self.name,
            engine=self.engine.name,
            fallback=self.entry.fallback,
            is_async=self.is_async,
        )
        return params

    def engine_for(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CacheEngine:
        """The engine holding this call's entry (``location_arg=`` picks a folder per call)."""
        if self._whereof is None:
            return self._sync_engine()
        return self._engine_at(self._whereof(*args, **kwargs))

    def cache_delete(self, *args: Any, **kwargs: Any) -> Any:
        """Drop one entry: True if it was there (awaitable for an ``async def`` function)."""
        key = self.key_for(args, kwargs)
        if self.is_async:
            return self._adelete(key)
        try:
            return self.engine_for(args, kwargs).delete(key)
        except Exception as exc:
            self._fault("delete", exc)
            return False

    async def _adelete(self, key: Hashable) -> bool:
        try:
            if self.aengine is None:
                return self._sync_engine().delete(key)
            return await self.aengine.delete(key)
        except Exception as exc:
            self._fault("delete", exc)
            return False

    def cache_refresh(self, *args: Any, **kwargs: Any) -> Any:
        key = self.key_for(args, kwargs)
        if self.is_async:
            return self._arefresh(key, args, kwargs)
        value = self.func(*args, **kwargs)
        oid = self._owner_of(self.keyof(*args, **kwargs))
        self.store(key, value, oid, self.engine_for(args, kwargs))
        return value

    async def _arefresh(self, key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        value = await self.func(*args, **kwargs)
        oid = self._owner_of(self.keyof(*args, **kwargs))
        if self._whereof is not None:
            self.store(key, value, oid, self.engine_for(args, kwargs))
        else:
            await self.astore(key, value, oid)
        return value

    def cache_bypass(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


def _attach(wrapper: Any, core: CacheCore) -> None:
    """Give the wrapper the lru_cache-style controls of API.md section 2."""
    wrapper.cache_info = core.cache_info
    wrapper.cache_clear = core.cache_clear
    wrapper.cache_parameters = core.cache_parameters
    wrapper.cache_delete = core.cache_delete
    wrapper.cache_refresh = core.cache_refresh
    wrapper.cache_bypass = core.cache_bypass
    wrapper.engine = core.engine
    wrapper._twat_core = core  # for the registry, the CLI and white-box tests


def _default_name(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def make_cached(
    func: Callable[..., Any],
    config: CacheConfig,
    chain: tuple[str, ...],
    manager: CacheEngineManager | None = None,
    why: str | None = None,
) -> Any:
    """Wrap ``func`` with a cache from the first usable engine of ``chain``.

    ``why`` explains the chain (``ucache`` passes its reasons); a ``backend=``
    object replaces the chain.
    """
    manager = manager or get_engine_manager()
    manager.check(config)
    name = config.name or _default_name(func)
    if config.backend is not None:
        chain, why = ("backend",), "backend= was given: that object stores the entries"
    elif why is None:
        why = f"the decorator's chain {' > '.join(chain)}"
    asynchronous = inspect.iscoroutinefunction(func)
    # Engines see the cache's name (their folder, their Redis key prefix) and a serializer
    # object: "typed" needs the function's return annotation, and a missing one fails here.
    engine_config = config.model_copy(
        update={"name": name, "serializer": resolve_serializer(config.serializer, func)}
    )

    def make() -> tuple[AnyEngine, str | None]:
        selection = manager.select(chain, engine_config, asynchronous=asynchronous)
        return selection.engine, selection.fallback

    entry = registry.attach(name, shared=config.name is not None, make=make, config=config)
    core = CacheCore(func, config, entry)
    core.why = why
    entry.cores.add(core)
    _attach(core.wrapper, core)
    return core.wrapper


def make_passthrough(func: Callable[..., Any], config: CacheConfig) -> Any:
    """``TWAT_CACHE_DISABLE=1``: call straight through, with the same controls (joblib's
    ``NotMemorizedFunc``)."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await func(*args, **kwargs)

    else:

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

    w: Any = wrapper
    w.cache_info = lambda: CacheInfo(0, 0, config.maxsize, 0)
    w.cache_clear = lambda: None
    w.cache_parameters = lambda: {**config.public_dict(), "engine": "disabled"}
    w.cache_delete = lambda *a, **k: False
    w.cache_refresh = func
    w.cache_bypass = func
    w.engine = None
    return wrapper
