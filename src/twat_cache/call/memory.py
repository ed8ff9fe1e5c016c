"""The generated wrappers: a function with the decorated function's own parameters.

Why generated code: Python's argument binding (in C) then merges positional
and keyword spellings and fills defaults, and the raw key is a tuple of
local variables. For an in-process store a hit is one tuple, one subscript,
one counter and (with ``ttl``) one clock read, all in one frame: no
``*args``/``**kwargs`` packing, no ``inspect``, no branch on the engine.
Everything else (a miss, an unhashable argument, a policy block, an
expired entry) goes to the call path's slow function, outside any ``except``
block so that the user's exceptions carry no cache-internal context.
"""

from __future__ import annotations

import functools
import keyword
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from twat_cache import policy
from twat_cache.call.store import CallPath, Ticket
from twat_cache.keys import call_spelling, callable_name, callable_parts, copy_defaults

__all__ = ["memory_wrapper", "store_wrapper"]

#: One body of the wrapper: build the key, the hit path, then begin, call, done.
_BODY = """\
    {async_}def {name}({sig}):
        nonlocal _tc_hits
        _tc_k = {key_line}
{hit_path}
        _tc_t = {await_}_tc_begin(_tc_k{plain_arg})
        if type(_tc_t) is not _tc_T:
            return _tc_t
        try:
            _tc_v = {await_}_tc_func({call})
        except BaseException as _tc_e:
            {await_}_tc_t.{failed}(_tc_e)
            raise
        return {await_}_tc_t.{done}(_tc_v)
"""

#: The factory: for memory stores a second body is compiled first and kept as
#: ``_tc_converting``; it is swapped in (``__code__``, same closure) once a call needed
#: its key converted (a list, a dict, a user object), so that such hits are found in
#: the mapping instead of raising or missing there each time.
#: The hit counter is a float: ``+= 1.0`` takes a float from CPython's free list, where
#: ``+= 1`` allocates an int past 256 (exact up to 2**53 hits).
_WRAPPER = """
def _tc_factory(_tc_map, _tc_begin, _tc_func, _tc_T, _tc_plain):
    _tc_hits = 0.0
{converting}{body}    def _tc_count():
        return int(_tc_hits)
    def _tc_reset():
        nonlocal _tc_hits
        _tc_hits = 0.0
    return {name}, _tc_count, _tc_reset, {converting_code}
"""

#: A hit is counted before the lookup and uncounted after a miss: the hit then returns
#: straight from the ``try`` (no second local, no ``else`` jump).
_PLAIN_HIT_PATH = """\
        _tc_hits += 1.0
        try:
            return _tc_map[_tc_k]
        except Exception:
            pass
        _tc_hits -= 1.0
"""

_STAMPED_HIT_PATH = """\
        try:
            _tc_v, _tc_d = _tc_map[_tc_k]
        except Exception:
            pass
        else:
            if _tc_d > _tc_now():
                _tc_hits += 1.0
                return _tc_v
"""

#: What the hit path reads while a policy block is open anywhere: every call misses it
#: and goes to the slow path, which applies the policy of its own thread or task.
_NOTHING: dict[Any, Any] = {}
#: The mapping cell of each live memory wrapper, by its call path.
_cells: weakref.WeakKeyDictionary[CallPath, Any] = weakref.WeakKeyDictionary()
_cells_lock = threading.Lock()


def _policy_changed(active: bool) -> None:
    with _cells_lock:
        for path, cell in list(_cells.items()):
            cell.cell_contents = _NOTHING if active else path.store.mapping


policy.WATCHERS.append(_policy_changed)


def _fills(path: CallPath) -> dict[str, str]:
    plan = path.plan
    fname = callable_name(path.func).rpartition(".")[2]
    name = fname if fname.isidentifier() and not keyword.iskeyword(fname) else "_tc_wrapper"
    return {
        "name": name,
        "sig": plan.sig,
        "key": plan.key,
        "args": plan.args,
        "kwargs": plan.kwargs,
        "call": call_spelling(plan.params),
        "async_": "async " if path.is_async else "",
        "await_": "await " if path.is_async else "",
        "done": "adone" if path.is_async else "done",
        "failed": "afailed" if path.is_async else "failed",
        "hit_path": "",
        "converting": "",
        "converting_code": "None",
        "plain_arg": "",
    }


def _namespace(path: CallPath) -> dict[str, Any]:
    namespace = path.plan.namespace_for_template()
    namespace.update(_tc_now=time.monotonic)
    return namespace


def _finish(wrapper: Callable[..., Any], func: Callable[..., Any]) -> Callable[..., Any]:
    copy_defaults(func, wrapper)
    functools.update_wrapper(wrapper, func)
    if not isinstance(getattr(func, "__qualname__", None), str):  # a partial, an object
        wrapper.__module__, wrapper.__qualname__ = callable_parts(func)
    return wrapper


def _build(path: CallPath, fills: dict[str, str], begin: Callable[..., Any]) -> Callable[..., Any]:
    namespace = _namespace(path)
    body = _BODY.format(**fills, key_line=fills["key"])
    exec(_WRAPPER.format(**fills, body=body), namespace)
    mapping = path.store.mapping if path.store.in_process else None
    made = namespace["_tc_factory"](mapping, begin, path.func, Ticket, path.plan.plain)
    wrapper, count, reset, converting = made
    if fills["hit_path"]:
        path.fast_hits, path.reset_fast = count, reset
        path.converting = functools.partial(setattr, wrapper, "__code__", converting)
        cell = wrapper.__closure__[wrapper.__code__.co_freevars.index("_tc_map")]
        with _cells_lock:
            _cells[path] = cell
            if policy.ACTIVE:
                cell.cell_contents = _NOTHING
    return _finish(wrapper, path.func)


def memory_wrapper(path: CallPath) -> Callable[..., Any]:
    """The one-frame hit path over an in-process store's mapping."""
    fills = _fills(path)
    fills["hit_path"] = _STAMPED_HIT_PATH if path.store.stamped else _PLAIN_HIT_PATH
    converting = {**fills, "key_line": f"_tc_plain({fills['key']})", "plain_arg": ", None"}
    fills.update(converting_code="_tc_converting", plain_arg=", _tc_plain")
    fills["converting"] = _BODY.format(**converting) + "    _tc_converting = {}.__code__\n".format(
        fills["name"]
    )
    return _build(path, fills, path.abegin_memory if path.is_async else path.begin_memory)


def store_wrapper(path: CallPath) -> Callable[..., Any]:
    """The wrapper of a store keyed by stable digests: straight into the call path."""
    return _build(path, _fills(path), path.abegin_store if path.is_async else path.begin_store)
