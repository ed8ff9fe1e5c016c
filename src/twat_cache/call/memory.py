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
import time
from collections.abc import Callable
from typing import Any

from twat_cache import policy
from twat_cache.call.store import CallPath
from twat_cache.keys import copy_defaults

__all__ = ["memory_wrapper", "store_wrapper"]

_MEMORY = """
def _tc_factory(_tc_map, _tc_slow):
    _tc_hits = 0
    {async_}def {name}({sig}):
        nonlocal _tc_hits
        _tc_k = {key}
        if not _tc_pol.ACTIVE:
            try:
                {target} = _tc_map[_tc_k]
            except Exception:
                pass
            else:
{hit}
        return {await_}_tc_slow(_tc_k, {args}, {kwargs})
    def _tc_count():
        return _tc_hits
    def _tc_reset():
        nonlocal _tc_hits
        _tc_hits = 0
    return {name}, _tc_count, _tc_reset
"""

_PLAIN_HIT = """\
                _tc_hits += 1
                return _tc_v"""

_STAMPED_HIT = """\
                if _tc_d > _tc_now():
                    _tc_hits += 1
                    return _tc_v"""

_STORE = """
def _tc_factory(_tc_call):
    {async_}def {name}({sig}):
        return {await_}_tc_call({key}, {args}, {kwargs})
    return {name}
"""


def _fills(path: CallPath) -> dict[str, str]:
    plan = path.plan
    fname = path.func.__name__
    name = fname if fname.isidentifier() and not keyword.iskeyword(fname) else "_tc_wrapper"
    return {
        "name": name,
        "sig": plan.sig,
        "key": plan.key,
        "args": plan.args,
        "kwargs": plan.kwargs,
        "async_": "async " if path.is_async else "",
        "await_": "await " if path.is_async else "",
    }


def _namespace(path: CallPath) -> dict[str, Any]:
    namespace = path.plan.namespace_for_template()
    namespace.update(_tc_pol=policy, _tc_now=time.monotonic)
    return namespace


def _finish(wrapper: Callable[..., Any], func: Callable[..., Any]) -> Callable[..., Any]:
    copy_defaults(func, wrapper)
    functools.update_wrapper(wrapper, func)
    return wrapper


def memory_wrapper(path: CallPath) -> Callable[..., Any]:
    """The one-frame hit path over an in-process store's mapping."""
    store = path.store
    fills = _fills(path)
    stamped = store.stamped
    fills["target"] = "_tc_v, _tc_d" if stamped else "_tc_v"
    fills["hit"] = _STAMPED_HIT if stamped else _PLAIN_HIT
    namespace = _namespace(path)
    exec(_MEMORY.format(**fills), namespace)
    slow = path.amemory_slow if path.is_async else path.memory_slow
    wrapper, path.fast_hits, path.reset_fast = namespace["_tc_factory"](store.mapping, slow)
    return _finish(wrapper, path.func)


def store_wrapper(path: CallPath) -> Callable[..., Any]:
    """The wrapper of a store keyed by stable digests: straight into the call path."""
    namespace = _namespace(path)
    exec(_STORE.format(**_fills(path)), namespace)
    wrapper = namespace["_tc_factory"](path.acall if path.is_async else path.call)
    return _finish(wrapper, path.func)
