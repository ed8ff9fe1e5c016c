"""Decoration: key plan + store -> the one wrapper for this case, with its controls.

Everything is decided here, once: the store (first usable of the chain, kept
in the registry under the cache's name), the key plan, and which wrapper
serves the calls — the generated memory hit path, the digest-keyed store
path, or the per-call-options path — each sync or async to match the
function. The wrapper gets the ``lru_cache``-style controls of API.md 2.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Hashable
from typing import Any, cast

from twat_cache._explain import (
    CacheExplanation,
    refine,
    version_parts,
    version_tag,
)
from twat_cache._metrics import recorder_for
from twat_cache._types import CacheInfo
from twat_cache.call.memory import memory_wrapper, store_wrapper
from twat_cache.call.options import options_wrapper, store_at
from twat_cache.call.shipping import Adoption, Shipment, reduce_controls, ship
from twat_cache.call.store import CallPath
from twat_cache.codeversion import code_version
from twat_cache.config import CacheConfig
from twat_cache.engines import CacheEngineManager, get_engine_manager
from twat_cache.engines.base import Store
from twat_cache.exceptions import CacheKeyError
from twat_cache.keys import (
    KeyPlan,
    callable_name,
    default_name,
    function_identity,
    key_parameters,
    runs,
)
from twat_cache.registry import CacheEntry, registry
from twat_cache.serializers import resolve_serializer

__all__ = ["make_cached", "make_passthrough"]


def namespace_of(
    func: Callable[..., Any], config: CacheConfig, name: str, store: Store
) -> tuple[str, ...]:
    """What, beside the arguments, a stable digest covers.

    Stored results outlive the process: unless ``version=`` says otherwise, a
    persistent cache's entries belong to one version of the function's code and
    of the helpers and constants it uses from the user's own modules (with
    ``name=`` too, so a re-run notebook cell with an edited body starts afresh).
    """
    identity = () if config.name is not None else (function_identity(func, strict=True),)
    if config.version is not None:
        return (name, config.version, *identity)
    if store.persistent:
        return (name, "", code_version(func), *identity)
    return (name, "", *identity)


def open_entry(
    func: Callable[..., Any],
    config: CacheConfig,
    chain: tuple[str, ...],
    manager: CacheEngineManager | None = None,
) -> CacheEntry:
    """The registry entry (store included) a function with ``config`` uses."""
    manager = manager or get_engine_manager()
    manager.check(config)
    name = config.name or default_name(func)
    if config.backend is not None:
        chain = ("backend",)
    # Stores see the cache's name (their folder, their key prefix) and a serializer
    # object: "typed" needs the function's return annotation, and a missing one fails here.
    store_config = config.model_copy(
        update={"name": name, "serializer": resolve_serializer(config.serializer, func)}
    )

    def make() -> tuple[Store, str | None]:
        selection = manager.select(chain, store_config)
        return selection.engine, selection.fallback

    shared = config.name is not None
    identity = (default_name(func), code_version(func)) if shared else None
    shape = (callable_name(func), key_parameters(func, config)) if shared else None
    return registry.attach(
        name, shared=shared, make=make, config=config, identity=identity, shape=shape
    )


def make_path(func: Callable[..., Any], config: CacheConfig, entry: CacheEntry) -> CallPath:
    """The call path of ``func`` over ``entry``'s store."""
    store = entry.store
    error: CacheKeyError | None = None
    namespace: tuple[str, ...] = (entry.name,)
    if not store.in_process:  # in-process keys need no namespace: the store is this function's
        try:
            namespace = namespace_of(func, config, entry.name, store)
        except CacheKeyError as exc:  # said at the first call, which cannot be cached safely
            error = exc
    if store.persistent and error is None:
        store.adopt_version(version_tag(config, namespace), lambda: version_parts(func))
    plan = KeyPlan(func, config, in_process=store.in_process, namespace=namespace)
    if error is not None:
        plan.fail_with(error)
    if plan.file_parts:
        store.track_files(plan.file_states)
    path = CallPath(func, config, entry.name, store, plan)
    path.metrics = recorder_for(path)
    entry.members.add(path)
    return path


def make_cached(
    func: Callable[..., Any],
    config: CacheConfig,
    chain: tuple[str, ...],
    manager: CacheEngineManager | None = None,
    why: str | None = None,
    token: str | None = None,
) -> Any:
    """Wrap ``func`` with a cache from the first usable engine of ``chain``.

    ``why`` explains the chain (``ucache`` passes its reasons). ``token`` names
    the cache across processes when it is rebuilt on a worker (``shipping.py``).
    """
    given_why = why
    entry = open_entry(func, config, chain, manager)
    if config.backend is not None:
        why = "backend= was given: that object stores the entries"
    elif why is None:
        why = f"the decorator's chain {' > '.join(chain)}"
    path = make_path(func, config, entry)
    whereof: Callable[..., Any] | None = None
    if config.call_options or config.location_arg is not None:
        wrapper, whereof = options_wrapper(path)
    elif path.store.in_process:
        wrapper = memory_wrapper(path)
    else:
        wrapper = store_wrapper(path)
    controls = Controls(path, entry, why, whereof)
    controls.attach(wrapper)
    if manager is None:  # a custom manager's engines cannot be found again on a worker
        controls.shipment = ship(controls, func, config, chain, given_why, token)
        cast(Any, wrapper)._twat_adoption = Adoption(controls.shipment, wrapper)
    if path.plan.method:
        return CachedMethod(wrapper)
    return wrapper


class CachedMethod:
    """A cached method: ``A.f`` is the cached function itself, ``a.f`` binds it to ``a``
    with its controls, so ``a.f.cache_delete(x)`` and ``a.f.cache_refresh(x)`` find
    ``a``'s entry (a plain bound method would hand them ``x`` as ``self``)."""

    __slots__ = ("__dict__", "function")

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.__dict__.update(function.__dict__)
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            self.__dict__[attr] = getattr(function, attr, None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self.function
        return BoundCached(self.function, obj)

    def __set_name__(self, owner: type, name: str) -> None:
        self.function.__qualname__ = f"{owner.__qualname__}.{name}"


class BoundCached(functools.partial):  # type: ignore[type-arg]
    """``a.f``: the cached function with ``a`` bound, its controls bound to ``a`` too."""

    __slots__ = ()

    def cache_delete(self, *args: Any, **kwargs: Any) -> Any:
        return cast(Any, self.func).cache_delete(*self.args, *args, **kwargs)

    def cache_refresh(self, *args: Any, **kwargs: Any) -> Any:
        return cast(Any, self.func).cache_refresh(*self.args, *args, **kwargs)

    def cache_bypass(self, *args: Any, **kwargs: Any) -> Any:
        return cast(Any, self.func).cache_bypass(*self.args, *args, **kwargs)

    def cache_explain(self, *args: Any, **kwargs: Any) -> Any:
        return cast(Any, self.func).cache_explain(*self.args, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.func, name)


class Controls:
    """``cache_info``, ``cache_clear``, ``cache_parameters``, ``cache_delete``,
    ``cache_refresh`` and ``cache_bypass`` of one wrapper."""

    def __init__(
        self,
        path: CallPath,
        entry: CacheEntry,
        why: str,
        whereof: Callable[..., Any] | None,
    ) -> None:
        self.path = path
        self.entry = entry
        self.why = why
        self.whereof = whereof
        #: How this cache is rebuilt when the function is pickled by value (``shipping.py``).
        self.shipment: Shipment | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_controls(self)

    def attach(self, wrapper: Any) -> None:
        path = self.path
        wrapper.cache_info = path.cache_info
        wrapper.cache_clear = self.entry.clear
        wrapper.cache_parameters = self.cache_parameters
        wrapper.cache_delete = self.cache_delete
        wrapper.cache_refresh = self.cache_refresh
        wrapper.cache_bypass = self.cache_bypass
        wrapper.cache_explain = self.cache_explain
        wrapper.engine = path.store
        wrapper._twat_core = self  # the registry's view, the CLI and explain_selection

    def cache_parameters(self) -> dict[str, Any]:
        params = self.path.config.public_dict()
        params["preferred_engine"] = params.pop("engine")
        params.update(
            name=self.entry.name,
            engine=self.path.store.name,
            fallback=self.entry.fallback,
            is_async=self.path.is_async,
        )
        return params

    def _target(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Store, Hashable]:
        path = self.path
        key = path.plan.key_of_call(args, kwargs)
        store = (
            path.store if self.whereof is None else store_at(path, self.whereof(*args, **kwargs))
        )
        return store, key

    def cache_delete(self, *args: Any, **kwargs: Any) -> Any:
        """Drop one entry: True if it was there (awaitable for an ``async def`` function)."""
        store, key = self._target(args, kwargs)
        if self.path.is_async:
            return self.path.aforget(store, key)
        return self.path.forget(store, key)

    def cache_refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Recompute, overwrite and return the new value (awaitable for ``async def``)."""
        store, key = self._target(args, kwargs)
        if self.path.is_async:
            return self.path.arun(store, key, args, kwargs, (False, True))
        return self.path.run(store, key, args, kwargs, (False, True))

    def cache_explain(self, *args: Any, **kwargs: Any) -> Any:
        """Whether this call would hit, and if not why (awaitable for ``async def``);
        never calls the function."""
        path = self.path
        store = path.store
        if self.whereof is not None:
            store = store_at(path, self.whereof(*args, **kwargs))
        if path.is_async:
            return self._aexplain(store, args, kwargs)
        return self._refine(store, args, kwargs, path.explain(store, args, kwargs))

    async def _aexplain(self, store: Store, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        answer = await self.path.aexplain(store, args, kwargs)
        if getattr(answer, "reason", None) != "new":
            return answer
        if store.persistent:  # other folders are read from disk: not on the event loop
            return await asyncio.to_thread(self._refine, store, args, kwargs, answer)
        return self._refine(store, args, kwargs, answer)

    def _refine(
        self, store: Store, args: tuple[Any, ...], kwargs: dict[str, Any], answer: Any
    ) -> Any:
        """A ``"new"`` answer checked against the keys written here and other folders."""
        if getattr(answer, "reason", None) != "new":
            return answer
        plan = self.path.plan
        states = dict(plan.file_states)  # asking is not keying: the last keyed state stays
        try:
            key = plan.key_of_call(args, kwargs)
        except Exception:  # keyed once already by explain: an answer stands without this
            return answer
        finally:
            if plan.file_parts:
                plan.file_states.clear()
                plan.file_states.update(states)
        return refine(self.path, store, key, self.path.written, answer)

    def cache_bypass(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function; touch no entry."""
        return self.path.func(*args, **kwargs)


def make_passthrough(func: Callable[..., Any], config: CacheConfig) -> Any:
    """``TWAT_CACHE_DISABLE=1``: call straight through, with the same controls (joblib's
    ``NotMemorizedFunc``)."""
    if inspect.iscoroutinefunction(runs(func)):

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
    off = CacheExplanation(False, "disabled", "TWAT_CACHE_DISABLE is set: caching is off")
    if inspect.iscoroutinefunction(runs(func)):

        async def explain_off(*args: Any, **kwargs: Any) -> CacheExplanation:
            return off

        w.cache_explain = explain_off
    else:
        w.cache_explain = lambda *a, **k: off
    w.engine = None
    return wrapper
