"""Per-call control: ``call_options=True`` keywords and ``location_arg=`` folders.

With ``call_options=True`` the wrapper takes ``again=``, ``cache_results=``
and ``cache_path=`` as extra keywords that never reach the function; with
``location_arg="datapath"`` each call is stored under
``<datapath>/.twat_cache``. Both choose, per call, which store holds the
entry and whether to read and write it; the call path does the rest.
"""

from __future__ import annotations

import functools
import inspect
import keyword
import os
from collections.abc import Callable
from typing import Any

from twat_cache import policy
from twat_cache.call.store import BOTH, POLICY, CallPath
from twat_cache.engines.base import Store
from twat_cache.exceptions import ConfigurationError
from twat_cache.keys import callable_name, copy_defaults, signature_source

__all__ = ["CALL_OPTIONS", "options_wrapper"]

#: The per-call keywords of ``call_options=True`` and their defaults.
CALL_OPTIONS: dict[str, Any] = {"again": False, "cache_results": True, "cache_path": None}

_TEMPLATE = """
def _tc_factory(_tc_call, _tc_loc):
    {async_}def {name}({options_sig}):
        return {await_}_tc_call({key}, {args}, {kwargs}, {again}, {cache_results}, {where})
    def _tc_whereof({sig}):
        return {where_plain}
    return {name}, _tc_whereof
"""


def location(value: Any) -> str | None:
    """The folder ``location_arg=`` stores a call under: ``<value>/.twat_cache``.

    A value that is not a path (``None``, a number, ...) stores under the
    cache's own folder.
    """
    if isinstance(value, (str, os.PathLike)) and os.fspath(value):
        return os.path.join(os.fspath(value), ".twat_cache")
    return None


def store_at(path: CallPath, where: Any) -> Store:
    """The store holding entries under the root ``where`` (the cache's own when ``None``)."""
    at = getattr(path.store, "at", None)
    if where is None or at is None:
        return path.store
    store: Store = at(where)
    return store


def _check(func: Callable[..., Any], path: CallPath, params: list[inspect.Parameter]) -> None:
    config = path.config
    names = {p.name: p for p in params}
    loc = config.location_arg
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    if loc is not None and (loc not in names or names[loc].kind in variadic):
        msg = (
            f"CacheConfig.location_arg: invalid value {loc!r}: not a named parameter of "
            f"{callable_name(func)}{inspect.signature(func)}"
        )
        raise ConfigurationError(msg)
    taken = [name for name in CALL_OPTIONS if name in names] if config.call_options else []
    if taken:
        msg = (
            f"CacheConfig.call_options: invalid value True: {callable_name(func)} has "
            f"parameters named {', '.join(taken)}, which call_options would take over"
        )
        raise ConfigurationError(msg)


def options_wrapper(path: CallPath) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The wrapper taking per-call options, and ``whereof(*args, **kwargs)`` for controls."""
    plan, config, func = path.plan, path.config, path.func
    params = plan.params
    _check(func, path, params)
    extra = (
        [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
            for name, default in CALL_OPTIONS.items()
        ]
        if config.call_options
        else []
    )
    tail = [p for p in params if p.kind is p.VAR_KEYWORD]
    head = [p for p in params if p.kind is not p.VAR_KEYWORD]
    loc = config.location_arg
    where_plain = f"_tc_loc({loc})" if loc is not None else "None"
    if config.call_options:
        again, cache_results = "again", "cache_results"
        where = (
            f"(cache_path if cache_path is not None else {where_plain})"
            if loc is not None
            else "cache_path"
        )
    else:
        again, cache_results, where = "False", "True", where_plain
    fname = callable_name(func).rpartition(".")[2]
    source = _TEMPLATE.format(
        name=fname if fname.isidentifier() and not keyword.iskeyword(fname) else "_tc_wrapper",
        options_sig=signature_source(head + extra + tail),
        sig=plan.sig,
        key=plan.key,
        args=plan.args,
        kwargs=plan.kwargs,
        again=again,
        cache_results=cache_results,
        where=where,
        where_plain=where_plain,
        async_="async " if path.is_async else "",
        await_="await " if path.is_async else "",
    )
    namespace = plan.namespace_for_template()
    exec(source, namespace)
    wrapper, whereof = namespace["_tc_factory"](functools.partial(_call_with, path), location)
    copy_defaults(func, wrapper, whereof)
    if config.call_options:
        wrapper.__kwdefaults__ = {**(wrapper.__kwdefaults__ or {}), **CALL_OPTIONS}
    functools.update_wrapper(wrapper, func)
    return wrapper, whereof


def _plan_call(
    path: CallPath, raw: Any, again: bool, cache_results: bool, where: Any
) -> tuple[Store | None, Any, bool, bool]:
    """Which store, which key, and whether to read and write, for one call."""
    read, write = not again, bool(cache_results)
    if policy.ACTIVE:
        pread, pwrite = POLICY.get(policy.current() or "", BOTH)
        read, write = read and pread, write and pwrite
    key = path.plan.store_key(raw)
    try:
        store = store_at(path, where)
    except Exception as exc:  # a folder that cannot be opened: run the call uncached
        path.fault("open", exc)
        return None, key, read, write
    return store, key, read, write


def _call_with(
    path: CallPath,
    raw: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    again: bool,
    cache_results: bool,
    where: Any,
) -> Any:
    """One call with its options; for an ``async def`` function, the coroutine to await."""
    store, key, read, write = _plan_call(path, raw, again, cache_results, where)
    if store is None or not (read or write):
        path.misses += 1
        return path.func(*args, **kwargs)
    run = path.arun if path.is_async else path.run
    return run(store, key, args, kwargs, (read, write))
