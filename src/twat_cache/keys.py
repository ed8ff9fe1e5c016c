"""The key plan: everything that turns a call into a key, worked out once per function.

Why one place: a decorator, ``cache_delete``, ``cache_refresh``, ``CacheContext``
and the per-call options must all find the same entry for the same call, so
they all ask this plan. At decoration it reads the signature and emits the
source of the key expression that ``call/memory.py`` compiles into the
wrapper, so Python's own argument binding (in C) merges positional and
keyword spellings and fills defaults. Each call then turns the raw key (a
tuple of the bound argument values) into the key a store sees:

- in-process stores get a *plain* key: built only of values whose equality
  and hash are the interpreter's own (ints, strings, tuples of them, our own
  tokens), so no user ``__eq__``/``__hash__`` ever runs inside a store's lock
  (cachebox deadlocks when one re-enters the cache). Unhashable values are
  frozen, values with ``__cache_key__``/``__persistent_hash__`` are keyed by
  it with their class, and other objects get an interned token;
- shared stores (disk, Redis, custom backends) get a stable ``str`` digest of
  the values under the cache's namespace (name, version, code version).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import inspect
import itertools
import math
import os
import stat
import sys
import threading
import types
import weakref
from collections.abc import Callable, Hashable, Iterable
from decimal import Decimal
from typing import Any

from twat_cache.config import CacheConfig
from twat_cache.encoding import (
    DigestKey,
    describe_unkeyable,
    namespaced_digest,
    stable_digest,
)
from twat_cache.exceptions import CacheKeyError, ConfigurationError

__all__ = [
    "RESERVED_PREFIX",
    "KeyPlan",
    "Token",
    "all_safe",
    "callable_name",
    "callable_parts",
    "default_name",
    "function_identity",
    "key_parameters",
    "runs",
]

#: Names of generated locals; a function's own parameters may not use it.
RESERVED_PREFIX = "_tc_"
#: Types whose equality and hash are the interpreter's own.
_PLAIN = frozenset({int, str, bytes, float, bool, type(None), type, complex})
#: Plain scalars whose digest is remembered (short strings only: no large argument is kept).
_MEMO_TYPES = frozenset({int, bool, type(None)})
_MEMO_SIZE = 4096
_MEMO_STR = 64
_tokens = itertools.count(1)


class Token:
    """An opaque key part equal only to itself: an instance of a method, or an interned object.

    Compared by identity (the interpreter's own ``==`` and ``hash``), never
    equal to any user value, and never reused: a new object can never find
    entries keyed by an old token.
    """

    __slots__ = ("number",)

    def __init__(self) -> None:
        self.number = next(_tokens)

    def __repr__(self) -> str:
        return f"Token({self.number})"


class _Tag:
    """Marks a converted value inside a plain key; equal only to itself, so unforgeable."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_LIST, _DICT, _SET, _FROZENSET = _Tag("list"), _Tag("dict"), _Tag("set"), _Tag("frozenset")
#: Marks a value keyed by its content (``__cache_key__``, or not hashable) in a plain key.
_KEYED = _Tag("keyed")
#: Stands for ``-0.0`` in a converted key: ``-0.0 == 0.0``, but they are different arguments.
_NEG_ZERO = _Tag("-0.0")
_SAFE = _PLAIN | {Token, DigestKey, _Tag}
_SAFE_ITEMS = _SAFE - {float, complex}


def _has_own_key(cls: type) -> bool:
    return (
        getattr(cls, "__cache_key__", None) is not None
        or getattr(cls, "__persistent_hash__", None) is not None
    )


class KeyPlan:
    """How one decorated function's calls become keys (built once, at decoration).

    Attributes used by the generated wrapper: ``sig`` (the wrapper's parameter
    list), ``key`` (the raw key expression), ``args``/``kwargs`` (the call of
    the original function), ``names`` (the parameters in the key, in order).
    """

    def __init__(
        self,
        func: Callable[..., Any],
        config: CacheConfig,
        *,
        in_process: bool,
        namespace: tuple[str, ...],
    ) -> None:
        self.func = func
        self.config = config
        self.in_process = in_process
        self.typed = config.typed
        self.params = _parameters(func)
        names = [p.name for p in self.params]
        for name in names:
            if name.startswith(RESERVED_PREFIX):
                msg = f"parameter {name!r}: names starting with {RESERVED_PREFIX!r} are reserved"
                raise ConfigurationError(msg)
        unknown = [name for name in config.ignore if name not in names]
        if unknown:
            msg = (
                f"CacheConfig.ignore: invalid value {config.ignore!r}: {', '.join(unknown)} "
                f"is not a parameter of {callable_name(func)}{_signature_text(func)}"
            )
            raise ConfigurationError(msg)
        self._check_files(func, config, names)
        first = self.params[0] if self.params else None
        self.method = (  # a Python function's ``self`` (a builtin's is an ordinary argument)
            isinstance(func, types.FunctionType)
            and first is not None
            and first.name == "self"
            and first.kind in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD)
            and "self" not in config.ignore
        )
        #: Position in the raw key -> parameter name, for each ``files=`` argument.
        self.file_parts: dict[int, str] = {}
        #: The last file state keyed per path in this process (``cache_explain``).
        self.file_states: dict[str, tuple[Any, ...]] = {}
        self.sig = signature_source(self.params)
        self.args, self.kwargs = call_source(self.params)
        self.names: list[str] = []
        parts: list[str] = []
        for p in self.params:
            if p.name in config.ignore:
                continue
            if p.kind is p.VAR_KEYWORD:
                expr = f"_tc_kw({p.name})"
            elif p is first and self.method and in_process:
                expr = f"_tc_inst({p.name})"
            elif p.name in config.files:
                expr = f"_tc_file({p.name})"
                self.file_parts[len(parts)] = p.name
            else:
                expr = p.name
            parts.append(expr)
            self.names.append(p.name)
            if self.typed and in_process:
                if p.kind is p.VAR_POSITIONAL:
                    parts.append(f"tuple(map(type, {p.name}))")
                elif p.kind is not p.VAR_KEYWORD:
                    parts.append(f"type({p.name})")
        if config.key is not None:
            self.key = f"_tc_userkey({call_spelling(self.params)})"
            self.names = []
        else:
            self.key = "(" + "".join(part + ", " for part in parts) + ")"
        self.namespace = namespace
        self._digest = namespaced_digest(namespace, typed=self.typed)
        self._memo: dict[tuple[Any, ...], str] = {}
        self._deferred: CacheKeyError | None = None
        self._interned: dict[Any, Token] = {}
        self._intern_limit = max(1024, 2 * (config.maxsize or 0))
        self._instances: dict[int, tuple[weakref.ref[Any], Token]] = {}
        self._ilock = threading.Lock()
        #: Called with an instance's token when the instance dies (drops its entries).
        self.on_instance_death: Callable[[Token], None] | None = None
        self.keyof = self._compile_keyof()

    # -- the generated key function --------------------------------------------------

    def namespace_for_template(self) -> dict[str, Any]:
        """What the generated code refers to by name."""
        return {
            "_tc_inst": self.instance,
            "_tc_kw": _typed_items if self.typed else _sorted_items,
            "_tc_userkey": self.config.key,
            "_tc_nokw": _NO_KWARGS,
            "_tc_file": self.file_state,
        }

    def _check_files(self, func: Callable[..., Any], config: CacheConfig, names: list[str]) -> None:
        """``files=`` names plain parameters of ``func`` that take part in the key.

        Raises:
            ConfigurationError: a name is not such a parameter (the message names it).
        """
        kinds = {p.name: p.kind for p in self.params}
        for name in config.files:
            if name not in kinds:
                why = f"is not a parameter of {callable_name(func)}{_signature_text(func)}"
            elif kinds[name] in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                why = "is a *args/**kwargs parameter; name a parameter holding one path"
            elif name in config.ignore:
                why = "is also in ignore=, so it would not be part of the key"
            elif config.key is not None:
                why = "cannot join the key: key= replaces the key"
            else:
                continue
            msg = f"CacheConfig.files: invalid value {config.files!r}: {name!r} {why}"
            raise ConfigurationError(msg)

    def file_state(self, path: Any) -> Any:
        """A ``files=`` argument's key part: the path with its size and modification time
        (``file_key="mtime"``) or a digest of its bytes (``"content"``); ``"missing"``
        for a file that is not there. A directory is keyed by every file under it the
        same way; a ``bytes`` path as a path too (apart from the same ``str`` path: the
        function may answer in bytes). A list, tuple or set of paths is keyed by each of its
        paths so (a set in sorted order). A value that is not a path is keyed as it is."""
        if not isinstance(path, (str, bytes, os.PathLike)):
            if type(path) in (list, tuple) and all(map(_is_path, path)):
                return (type(path).__name__, *map(self.file_state, path))
            if type(path) in (set, frozenset) and all(map(_is_path, path)):
                return (type(path).__name__, *sorted(map(self.file_state, path), key=repr))
            return path
        name = os.path.abspath(os.fsdecode(path))
        state = (name, *_file_part(name, self.config.file_key == "content"))
        if isinstance(path, bytes):
            state += ("bytes",)
        self.file_states[name] = state
        return state

    def _compile_keyof(self) -> Callable[..., Any]:
        """``keyof(*args, **kwargs)``: the raw key of a call, bound like the function."""
        source = f"def _tc_keyof({self.sig}):\n    return {self.key}\n"
        namespace = self.namespace_for_template()
        exec(source, namespace)
        keyof: Callable[..., Any] = namespace["_tc_keyof"]
        copy_defaults(self.func, keyof)
        return keyof

    # -- raw key -> store key ---------------------------------------------------------

    def store_key(self, raw: Any) -> Hashable:
        """The key a store of this plan's kind sees for the raw key ``raw``."""
        return self.plain(raw) if self.in_process else self.digest(raw)

    def key_of_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
        """The store key of the call ``f(*args, **kwargs)`` (for the ``cache_*`` controls)."""
        return self.store_key(self.keyof(*args, **kwargs))

    def plain(self, raw: Any) -> Hashable:
        """An in-process key made only of interpreter-compared parts (see the module doc).

        Raises:
            CacheKeyError: an argument cannot be keyed; the message names it.
        """
        if type(raw) is not tuple:
            return self._plain_or_raise(raw)
        parts: list[Any] = []
        converted = False
        for value in raw:  # flat: the common argument kinds without a frame per argument
            cls = type(value)
            if cls in _SAFE_ITEMS:
                parts.append(value)
            elif cls is list and all_safe(value):
                parts.append((_LIST, tuple(value)))
                converted = True
            elif cls is dict and all_safe(value) and all_safe(value.values()):
                parts.append((_DICT, frozenset(value.items())))
                converted = True
            elif cls is float or cls is complex:  # a zero (part) may be -0.0
                part = value if value and cls is float else self._plain(value, 0)
                parts.append(part)
                converted = converted or part is not value
            else:
                return self._plain_or_raise(raw)
        return tuple(parts) if converted else raw

    def _plain_or_raise(self, raw: Any) -> Hashable:
        try:
            key: Hashable = self._plain(raw, 0)
        except CacheKeyError:
            raise self._unkeyable(raw) from None
        return key

    def _plain(self, value: Any, depth: int) -> Any:
        cls = type(value)
        if cls in _SAFE:
            if cls is float and not value and math.copysign(1.0, value) < 0:
                return _NEG_ZERO
            if cls is complex and not (value.real and value.imag):  # a part may be -0.0
                return self._by_content(value)
            return value
        if depth > 64:  # deeper: the iterative encoder (it names a value that holds itself)
            return self._by_content(value)
        if cls is tuple:
            if all_safe(value):
                return value
            return tuple([self._plain(item, depth + 1) for item in value])
        if cls is list:
            if all_safe(value):  # the common case, without a frame per item
                return (_LIST, tuple(value))
            return (_LIST, tuple([self._plain(item, depth + 1) for item in value]))
        if cls is dict:
            if all_safe(value) and all_safe(value.values()):
                return (_DICT, frozenset(value.items()))
            items = [
                (self._plain(k, depth + 1), self._plain(v, depth + 1)) for k, v in value.items()
            ]
            return (_DICT, frozenset(items))
        if cls is set or cls is frozenset:
            tag = _SET if cls is set else _FROZENSET
            return (tag, frozenset([self._plain(item, depth + 1) for item in value]))
        if not _has_own_key(cls) and not _eq_blind(value):
            try:
                return self._intern(value)
            except Exception:  # noqa: S110  # unhashable, or its __hash__/__eq__ raised
                pass  # keyed by content below
        # By content, with the class: never by identity, never by a user __eq__.
        return self._by_content(value)

    def _by_content(self, value: Any) -> tuple[_Tag, DigestKey]:
        """``value`` keyed by its content, with its class: never by identity or ``__eq__``."""
        return (_KEYED, DigestKey(stable_digest(value, typed=self.typed)))

    def _intern(self, value: Any) -> Token:
        """A token standing for ``value`` (compared by its own ``__eq__`` outside any lock).

        The table is bounded: when full it starts afresh with new tokens, so
        old entries are never hit again (a miss, never a wrong value).

        Raises:
            TypeError: ``value`` is not hashable.
        """
        table = self._interned
        token = table.get(value)
        if token is None:
            if len(table) >= self._intern_limit:
                table.clear()
            token = table.setdefault(value, Token())
        return token

    def instance(self, obj: Any) -> Hashable:
        """The key part for ``self`` in an in-process cache; never a strong reference.

        ``__cache_key__``/``__persistent_hash__`` key by value (with the class).
        Any other instance gets a token that is never reused, held through a
        weak reference, so a new object at a dead one's address can never find
        the dead one's entries.
        """
        if _has_own_key(type(obj)):
            return self._by_content(obj)
        slot = self._instances.get(id(obj))
        if slot is not None and slot[0]() is obj:
            return slot[1]
        token = Token()
        oid = id(obj)

        def died(_ref: weakref.ref[Any]) -> None:
            self._died(oid, token)

        try:
            ref = weakref.ref(obj, died)
        except TypeError:
            msg = (
                f"cannot cache {callable_name(self.func)} per instance: "
                f"{type(obj).__qualname__} objects do not support weak references; give the "
                "class a __cache_key__() method or pass ignore=('self',)"
            )
            raise CacheKeyError(msg) from None
        with self._ilock:
            self._instances[id(obj)] = (ref, token)
        return token

    def _died(self, oid: int, token: Token) -> None:
        with self._ilock:
            slot = self._instances.get(oid)
            if slot is not None and slot[1] is token:
                del self._instances[oid]
        if self.on_instance_death is not None:
            self.on_instance_death(token)

    def digest(self, raw: Any) -> str:
        """The stable digest a shared store keeps this call under.

        Digests of short tuples of small scalars are remembered (hashing them
        again costs a tenth of a Redis round trip); nothing large is kept
        alive by the memo, and ``typed=True`` is never remembered.

        Raises:
            CacheKeyError: an argument cannot be keyed; the message names it.
        """
        memo = self._memo
        if not self.typed and type(raw) is tuple and _memoable(raw):
            digest = memo.get(raw)
            if digest is None:
                digest = self._checked_digest(raw)
                if len(memo) >= _MEMO_SIZE:
                    memo.clear()
                memo[raw] = digest
            return digest
        return self._checked_digest(raw)

    def _checked_digest(self, raw: Any) -> str:
        try:
            return self._digest(raw)
        except CacheKeyError as exc:
            if exc is self._deferred:
                raise
            raise self._unkeyable(raw) from None

    def _unkeyable(self, raw: Any) -> CacheKeyError:
        values = raw if isinstance(raw, tuple) else (raw,)
        return describe_unkeyable(self.names, values, self.typed)

    def fail_with(self, error: CacheKeyError) -> None:
        """Make every digest raise ``error`` (a function that can never be keyed safely):
        the error reaches the first call, naming what is wrong."""

        def refuse(raw: Any) -> str:
            raise error

        self._deferred = error
        self._digest = refuse
        self._memo.clear()

    def forget(self) -> None:
        """Drop remembered digests and interned values (after ``cache_clear``)."""
        self._memo.clear()
        self._interned.clear()

    def after_fork(self) -> None:
        """A forked child gets a fresh lock (the parent's may have been held)."""
        self._ilock = threading.Lock()


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, bytes, os.PathLike))


def _file_part(name: str, content: bool) -> tuple[Any, ...]:
    """What keys the path ``name``: its size and modification time, or a digest of its
    bytes (``content``); a folder the same for every file under it; ``"missing"``;
    ``"unreadable: ..."`` (never matching a readable state).

    Raises:
        CacheKeyError: ``content``, and ``name`` is a FIFO, a device or a socket.
    """
    try:
        st = os.stat(name)
        if stat.S_ISDIR(st.st_mode):
            return ("directory", _tree_digest(name, content))
        if content:
            return (_content_digest(name),)
        return (st.st_size, st.st_mtime_ns)
    except FileNotFoundError:
        return ("missing",)
    except OSError as exc:
        return (f"unreadable: {type(exc).__name__}",)


def _tree_digest(folder: str, content: bool) -> str:
    """A digest of the files under ``folder``: each one's relative path with its
    :func:`_file_part` (a FIFO or a device by its kind, never read)."""
    h = hashlib.blake2b(digest_size=16)
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for file in sorted(files):
            path = os.path.join(top, file)
            try:
                part = _file_part(path, content)
            except CacheKeyError:
                part = (stat.S_IFMT(os.stat(path).st_mode),)
            h.update(repr((os.path.relpath(path, folder), *part)).encode())
    return h.hexdigest()


def _content_digest(name: str) -> str:
    """A digest of the bytes of the file ``name``, read in 1 MiB blocks.

    Only a regular file has content that can be keyed: reading a FIFO or a
    pipe (``<(cmd)``) would block, or consume what the function is about to
    read, and a device may never end. The open never blocks (``O_NONBLOCK``).

    Raises:
        CacheKeyError: ``name`` is a FIFO, a device, a socket or a folder.
    """
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")
            msg = (
                f"the files= argument {name!r} is {kind}: its content cannot be read for "
                "the key without blocking or consuming it; pass a regular file, or "
                "file_key='mtime'"
            )
            raise CacheKeyError(msg)
        f = open(fd, "rb")  # noqa: SIM115  # closed by the with block below
    except BaseException:
        os.close(fd)
        raise
    h = hashlib.blake2b(digest_size=16)
    with f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


_FILE_KINDS = {
    stat.S_IFIFO: "a FIFO (a pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def _code_bytes(code: types.CodeType, out: list[bytes]) -> None:
    """What a code object computes: its bytecode, names and constants, nested code too."""
    out.append(code.co_code)
    out.append(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_bytes(const, out)
        else:
            out.append(repr(const).encode())


_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None))


def _captured(value: Any, strict: bool) -> bytes:
    """A captured value's part of a function's identity (functions and classes by name).

    ``strict`` (the key namespace of a shared store) takes every value by content;
    otherwise (the cache's name) only immutable scalars count by value, anything
    else by its type, so the name stays put while a captured object changes.
    """
    if isinstance(value, (types.FunctionType, types.MethodType, type)):
        target = inspect.unwrap(value) if callable(value) else value
        return f"{target.__module__}.{target.__qualname__}".encode()
    if isinstance(value, types.ModuleType):
        return value.__name__.encode()
    if strict or isinstance(value, _IMMUTABLE):
        return stable_digest(value, typed=True).encode()
    return type(value).__qualname__.encode()


def callable_name(func: Callable[..., Any]) -> str:
    """``module.qualname`` of any callable: a function or builtin, a method descriptor
    (``str.upper``), a ``functools.partial`` (its function's), an object with
    ``__call__`` (its class's)."""
    return "{}.{}".format(*callable_parts(func))


def callable_parts(func: Callable[..., Any]) -> tuple[str, str]:
    while isinstance(func, functools.partial):
        func = func.func
    qualname = getattr(func, "__qualname__", None)
    if isinstance(qualname, str):
        owner = getattr(func, "__objclass__", None)
        module = getattr(func, "__module__", None) or getattr(owner, "__module__", "builtins")
        return str(module), qualname
    cls = type(func)
    return cls.__module__, cls.__qualname__


def _unbound(func: Callable[..., Any]) -> tuple[Any, list[tuple[str, Any]]]:
    """The function a callable runs, and the values it carries besides its code: a
    partial's arguments, a callable object itself."""
    carried: list[tuple[str, Any]] = []
    while isinstance(func, functools.partial):
        carried += [(f"partial argument {i}", value) for i, value in enumerate(func.args)]
        carried += [(f"partial keyword {k!r}", v) for k, v in sorted(func.keywords.items())]
        func = func.func
    if not isinstance(getattr(func, "__qualname__", None), str):  # an object with __call__
        carried.append(("the callable object", func))
        return type(func).__call__, carried
    bound = getattr(func, "__self__", None)  # a bound method (a builtin's is its module)
    if bound is not None and not isinstance(bound, types.ModuleType):
        carried.append(("the object its method is bound to", bound))
        func = getattr(func, "__func__", func)
    return func, carried


def runs(func: Callable[..., Any]) -> Any:
    """The function a callable runs: a partial's, a bound method's, an object's
    ``__call__``; what to ask whether it is a coroutine or a generator function."""
    return _unbound(func)[0]


def _captures(func: Callable[..., Any]) -> list[tuple[str, Any]]:
    """``(name, value)`` of each variable a function's closure has bound."""
    code = getattr(func, "__code__", None)
    if not isinstance(code, types.CodeType):
        return []
    bound = []
    for var, cell in zip(code.co_freevars, getattr(func, "__closure__", None) or (), strict=False):
        try:
            bound.append((var, cell.cell_contents))
        except ValueError:  # an empty cell: a function referring to itself, not bound yet
            continue
    return bound


def function_identity(func: Callable[..., Any], *, strict: bool) -> str:
    """A digest of what tells ``func`` apart from other functions of the same name.

    Two closures of one factory differ by the values they captured, two lambdas
    on one line by their code, two scripts run as ``__main__`` by their file, two
    partials of one function by their arguments.

    Raises:
        CacheKeyError: (``strict``) a captured value cannot be keyed; the message
            names it.
    """
    module, label = callable_parts(func)
    parts: list[bytes] = [f"{module}.{label}".encode()]
    func, carried = _unbound(func)
    code = getattr(func, "__code__", None)
    if isinstance(code, types.CodeType):
        if func.__module__ == "__main__":
            parts.append(os.path.abspath(code.co_filename).encode())
        if func.__name__ == "<lambda>":
            _code_bytes(code, parts)
    things = [(var, f"the value it captures as {var!r}", v) for var, v in _captures(func)]
    things += [(what, what, value) for what, value in carried]
    for tag, what, value in things:
        try:
            parts.append(tag.encode() + b"=" + _captured(value, strict))
        except CacheKeyError as exc:
            msg = (
                f"cannot tell {label} apart from other functions of its name: {what} "
                f"cannot be keyed ({exc}); give it name= (and version=) to share one cache "
                "on purpose, or give that value's class a __cache_key__() method"
            )
            raise CacheKeyError(msg) from None
    return hashlib.blake2b(b"\0".join(parts), digest_size=8).hexdigest()


def default_name(func: Callable[..., Any]) -> str:
    """A function's cache name: its module and qualified name, plus a short identity for a
    lambda, a partial, or a closure capturing plain values (``make(1)`` and ``make(2)``),
    so that each is a cache of its own."""
    name = callable_name(func)
    target, carried = _unbound(func)
    values = [value for _, value in carried + _captures(target)]
    plain = any(isinstance(value, _IMMUTABLE[:-1]) for value in values)
    if plain or isinstance(func, functools.partial) or target.__name__ == "<lambda>":
        name += "#" + function_identity(func, strict=False)[:8]
    return name


def _eq_blind(value: Any) -> bool:
    """``==`` ignores what this value carries: equal values, different results.

    An aware datetime equals the same instant in another zone, and a fold
    (the repeated hour when clocks go back) is ignored within one zone, so
    ``01:30 EDT == 01:30 EST``; ``Decimal('1.0') == Decimal('1.00')``; a zero of a
    float or complex type (NumPy's included) equals its negative. Such values are
    keyed by content (zone, fold, exponent, sign included), as stores key them.
    """
    if isinstance(value, (dt.datetime, dt.time)):
        return value.tzinfo is not None or value.fold == 1
    if isinstance(value, Decimal):
        return True
    if isinstance(value, complex):
        return not (value.real and value.imag)
    if isinstance(value, float):
        return not value
    np = sys.modules.get("numpy")  # a NumPy value means NumPy is loaded
    if np is not None and isinstance(value, np.inexact):
        if isinstance(value, np.complexfloating):
            return not (value.real and value.imag)
        return not value
    return False


def all_safe(values: Iterable[Any]) -> bool:
    """Every item is compared by the interpreter alone (no user ``__eq__``/``__hash__``)."""
    for value in values:  # a loop is twice as fast as all() over a generator
        if type(value) not in _SAFE_ITEMS and (type(value) is not float or not value):
            return False  # (a float is safe unless it is a zero: it may be -0.0)
    return True


def _memoable(raw: tuple[Any, ...]) -> bool:
    """Short tuples of small scalars, none of which equals a value with another digest
    (``0.0 == -0.0`` but their digests differ; NaN is never equal to itself)."""
    for value in raw:
        cls = type(value)
        if cls is str:
            if len(value) > _MEMO_STR:
                return False
        elif cls is float:
            if value == 0.0 or value != value:
                return False
        elif cls not in _MEMO_TYPES:
            return False
    return True


_NO_KWARGS: dict[str, Any] = {}


def _sorted_items(kwargs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """``**kwargs`` as a hashable, order-insensitive tuple."""
    return tuple(sorted(kwargs.items()))


def _typed_items(kwargs: dict[str, Any]) -> tuple[tuple[str, Any, type], ...]:
    return tuple(sorted((k, v, type(v)) for k, v in kwargs.items()))


def key_parameters(func: Callable[..., Any], config: CacheConfig) -> tuple[tuple[str, str], ...]:
    """The parameters a call of ``func`` is keyed by (names and kinds), or ``()`` with a
    ``key=`` function: functions sharing a cache must agree on their kinds (the names are
    for messages)."""
    if config.key is not None:
        return ()
    return tuple((p.name, p.kind.name) for p in _parameters(func) if p.name not in config.ignore)


def _parameters(func: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(func, follow_wrapped=False).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature
        return [
            inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
            inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
        ]


def _signature_text(func: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(func))
    except (TypeError, ValueError):
        return "(...)"


def signature_source(params: list[inspect.Parameter]) -> str:
    """A parameter list accepting what ``params`` accepts (defaults are copied afterwards)."""
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


def call_source(params: list[inspect.Parameter]) -> tuple[str, str]:
    """Source of the positional tuple and keyword dict that call the original function."""
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


def call_spelling(params: list[inspect.Parameter]) -> str:
    """Source of a call passing every parameter on as it was bound."""
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


def copy_defaults(source: Callable[..., Any], *targets: Callable[..., Any]) -> None:
    """Give generated functions the original's defaults (the source says ``=None``).

    A callable that is not a function (a partial, an object) has them in its signature.
    """
    if isinstance(source, types.FunctionType):
        defaults, kwdefaults = source.__defaults__, source.__kwdefaults__
    else:
        params = _parameters(source)
        empty = inspect.Parameter.empty
        named = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        defaults = tuple(p.default for p in params if p.kind in named and p.default is not empty)
        kwdefaults = {
            p.name: p.default
            for p in params
            if p.kind == inspect.Parameter.KEYWORD_ONLY and p.default is not empty
        }
    for target in targets:
        target.__defaults__ = defaults or None
        target.__kwdefaults__ = kwdefaults or None
