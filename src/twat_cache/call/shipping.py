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

The generated hit path counts hits in a closure cell of the wrapper, and each
copy has its own cell: :class:`Adoption` (in the wrapper's ``__dict__``) makes
the rebuilt cache's hit count include its copies'. The hit path itself is
unchanged.
"""

from __future__ import annotations

import copyreg
import threading
import types
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twat_cache.config import CacheConfig

if TYPE_CHECKING:
    from twat_cache.call.build import Controls

__all__ = ["Adoption", "Shipment", "ship"]


_owners: weakref.WeakValueDictionary[int, Shipment] = weakref.WeakValueDictionary()
_registered: set[type] = set()
#: Caches rebuilt here from a shipped function: kept for the process's life, as a
#: worker receives the function anew with each task.
_rebuilt: dict[str, Shipment] = {}
#: Caches decorated here, so that unpickling in the process that made them finds them.
_origin: weakref.WeakValueDictionary[str, Shipment] = weakref.WeakValueDictionary()
_lock = threading.Lock()


@dataclass(eq=False)
class Shipment:
    """How to rebuild one cached function elsewhere, and its process-local parts here."""

    func: Callable[..., Any]
    config: CacheConfig
    chain: tuple[str, ...]
    why: str | None
    token: str
    parts: dict[str, Any]
    #: Hit counters of the copies unpickled in this process (see :class:`Adoption`).
    copies: CopyHits | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, ((self.token, self.func, self.config, self.chain, self.why),))


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


#: What a worker needs to rebuild a cache: token, function, config, engine chain, why.
Recipe = tuple[str, Callable[..., Any], CacheConfig, tuple[str, ...], "str | None"]


def _rebuild(recipe: Recipe) -> Shipment:
    """This process's cache for ``token``: built on the first arrival, then reused."""
    token, func, config, chain, why = recipe
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
    if shipment is None:  # made with a custom engine manager, which a worker cannot find
        msg = "this cached function cannot be pickled (it uses a custom engine manager)"
        raise TypeError(msg)
    return (_part, (shipment, "controls"))


def _hits_cell(func: Callable[..., Any]) -> types.CellType | None:
    """The generated memory wrapper's own hit counter cell, or ``None`` (other wrappers)."""
    code = getattr(func, "__code__", None)
    closure = getattr(func, "__closure__", None)
    if code is None or closure is None or "_tc_hits" not in code.co_freevars:
        return None
    cell: types.CellType = closure[code.co_freevars.index("_tc_hits")]
    return cell


class Adoption:
    """In a memory wrapper's ``__dict__``: a copy unpickled by value counts its hits
    (kept in its own closure cell by the generated hit path) into the cache it joins."""

    __slots__ = ("shipment", "wrapper")

    def __init__(self, shipment: Shipment, wrapper: Callable[..., Any]) -> None:
        self.shipment = shipment
        self.wrapper = wrapper

    def __reduce__(self) -> tuple[Any, ...]:
        cell = _hits_cell(self.wrapper)
        base = int(cell.cell_contents) if cell is not None else 0
        return (_adopt, (self.shipment, self.wrapper, base))


class CopyHits:
    """The hit count of a cache whose function arrived here more than once (as copies)."""

    def __init__(self, path: Any) -> None:
        self.own_count: Callable[[], int] = path.fast_hits
        self.own_reset: Callable[[], None] = path.reset_fast
        self.live: list[tuple[weakref.ref[Any], types.CellType, list[int]]] = []
        self.folded = 0  # hits of copies that are gone
        self.lock = threading.Lock()
        path.fast_hits, path.reset_fast = self.count, self.reset

    def add(self, copy: Callable[..., Any], cell: types.CellType, base: int) -> None:
        with self.lock:
            self.live.append((weakref.ref(copy), cell, [base]))
        self.count()  # folds the copies that are gone (a worker gets one per task)

    @staticmethod
    def _hits(cell: types.CellType, base: list[int]) -> int:
        try:
            value = int(cell.cell_contents)  # the wrapper counts in a float
        except ValueError:  # not filled in yet (unpickling is under way)
            return 0
        return value - base[0]

    def count(self) -> int:
        with self.lock:
            total = self.own_count() + self.folded
            kept = []
            for ref, cell, base in self.live:
                hits = self._hits(cell, base)
                if ref() is None:
                    self.folded += hits
                    total += hits
                else:
                    total += hits
                    kept.append((ref, cell, base))
            self.live = kept
            return total

    def reset(self) -> None:
        with self.lock:
            self.own_reset()
            self.folded = 0
            for _, cell, base in self.live:
                try:
                    base[0] = int(cell.cell_contents)
                except ValueError:
                    continue


def _adopt(shipment: Shipment, copy: Callable[..., Any], base: int) -> Adoption:
    """Count the hits of ``copy`` (being unpickled) into the cache of ``shipment``."""
    cell = _hits_cell(copy)
    if cell is not None:
        with _lock:
            if shipment.copies is None:
                shipment.copies = CopyHits(shipment.parts["path"])
        shipment.copies.add(copy, cell, base)
    return Adoption(shipment, copy)
