"""Shipping a cached function to worker processes (Dask, joblib/loky, Ray, multiprocessing).

A decorated function importable by name pickles by reference, as any
function does. One defined in ``__main__`` or a notebook cell is copied by
value by cloudpickle: its code, closure cells, globals and ``__dict__``. The
generated wrapper reaches process-local objects there (the call path with its
locks, the store with its connections, the key plan, the in-process mapping),
none of which can or should travel.

So each of those objects pickles as *a part of the cache rebuilt on the
worker*: ``(_part, (handle, role))``, where the handle pickles as the recipe
``(original function, config, chain)`` plus a token minted at decoration.
Unpickling rebuilds the cache once per token and process (a second task
shipping the same function finds it), so the copy cloudpickle makes on the
worker is wired to that worker's cache: the same name, the same keys and,
for a disk or Redis cache, the same shared entries. The reducers are
registered in ``copyreg`` (which both ``pickle`` and cloudpickle consult);
objects that belong to no cached function keep their usual pickling.
"""

from __future__ import annotations

import copyreg
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twat_cache.config import CacheConfig

if TYPE_CHECKING:
    from twat_cache.call.build import Controls

__all__ = ["Shipment", "ship"]

#: The roles a process-local object can play in one cached function.
ROLES = ("controls", "path", "entry", "store", "mapping", "plan")

_owners: weakref.WeakValueDictionary[int, Shipment] = weakref.WeakValueDictionary()
_registered: set[type] = set()
#: Caches rebuilt here from a shipped function: kept for the process's life, as a
#: worker receives the function anew with each task.
_rebuilt: dict[str, Shipment] = {}
#: Caches decorated here, so that unpickling in the process that made them finds them.
_origin: weakref.WeakValueDictionary[str, Shipment] = weakref.WeakValueDictionary()
_lock = threading.Lock()


class Shipment:
    """How to rebuild one cached function elsewhere, and its process-local parts here."""

    __slots__ = ("__weakref__", "chain", "config", "func", "parts", "token", "why")

    def __init__(
        self,
        func: Callable[..., Any],
        config: CacheConfig,
        chain: tuple[str, ...],
        why: str | None,
        token: str,
        parts: dict[str, Any],
    ) -> None:
        self.func = func
        self.config = config
        self.chain = chain
        self.why = why
        self.token = token
        self.parts = parts

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.token, self.func, self.config, self.chain, self.why))


def ship(
    controls: Controls,
    func: Callable[..., Any],
    config: CacheConfig,
    chain: tuple[str, ...],
    why: str | None,
    token: str | None = None,
) -> Shipment:
    """Record how ``controls``' cache is rebuilt in another process; make its parts pickle so."""
    path = controls.path
    parts: dict[str, Any] = {
        "controls": controls,
        "path": path,
        "entry": controls.entry,
        "store": path.store,
        "plan": path.plan,
    }
    if path.store.in_process:
        parts["mapping"] = path.store.mapping
    shipment = Shipment(func, config, chain, why, token or uuid.uuid4().hex, parts)
    with _lock:
        _origin.setdefault(shipment.token, shipment)
        for role, part in parts.items():
            if role == "controls":
                continue  # Controls has its own __reduce__
            _owners[id(part)] = shipment
            kind = type(part)
            if kind.__module__ == "builtins":  # never hook every dict's pickling
                continue
            if kind not in _registered:
                copyreg.pickle(kind, _reduce_part)
                _registered.add(kind)
    return shipment


def _reduce_part(obj: Any) -> Any:
    """``obj`` as a part of its cache rebuilt on unpickling; other objects as usual."""
    shipment = _owners.get(id(obj))
    if shipment is not None:
        for role, part in shipment.parts.items():
            if part is obj:
                return (_part, (shipment, role))
    return obj.__reduce_ex__(4)


def _part(shipment: Shipment, role: str) -> Any:
    return shipment.parts[role]


def _rebuild(
    token: str,
    func: Callable[..., Any],
    config: CacheConfig,
    chain: tuple[str, ...],
    why: str | None,
) -> Shipment:
    """This process's cache for ``token``: built on the first arrival, then reused."""
    with _lock:
        found = _rebuilt.get(token) or _origin.get(token)
    if found is not None:
        return found
    from twat_cache.call.build import make_cached

    wrapper = make_cached(func, config, chain, why=why, token=token)
    core = getattr(wrapper, "_twat_core", None) or wrapper.function._twat_core
    with _lock:
        return _rebuilt.setdefault(token, core.shipment)


def reduce_controls(controls: Controls) -> tuple[Any, ...]:
    """``Controls.__reduce__``: the rebuilt cache's controls."""
    shipment = controls.shipment
    if shipment is None:  # pragma: no cover - every Controls is shipped at decoration
        msg = "this cached function cannot be pickled"
        raise TypeError(msg)
    return (_part, (shipment, "controls"))
