"""The code version of a persistent cache: what a function and its own helpers compute.

Why: an entry written by yesterday's code must not be served after today's
edit. The version covers the function's normalized source and, transitively,
the functions, classes and module-level constants it uses from the user's own
code, so editing a helper in another module starts a fresh cache too. Code
from installed packages and the standard library is left out: upgrading NumPy
is not a change of the user's function, and hashing it would be slow.
Formatting, comments and docstrings never change a version.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import importlib.util
import inspect
import os
import sys
import textwrap
import types
import weakref
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

from twat_cache.encoding import encode
from twat_cache.exceptions import CacheKeyError
from twat_cache.keys import runs

__all__ = ["code_version", "source_digest"]


class _StripDocstrings(ast.NodeTransformer):
    """Drop docstrings and decorators: neither changes what a function computes."""

    def _strip(self, node: Any) -> Any:
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        if hasattr(node, "decorator_list"):
            node.decorator_list = []
        self.generic_visit(node)
        return node

    visit_Module = _strip  # noqa: N815 - ast.NodeTransformer's naming
    visit_FunctionDef = _strip  # noqa: N815
    visit_AsyncFunctionDef = _strip  # noqa: N815
    visit_ClassDef = _strip  # noqa: N815


def _code_fingerprint(code: Any, out: list[bytes]) -> None:
    out.append(code.co_code)
    out.append(repr(code.co_names).encode())
    for const in code.co_consts:
        if inspect.iscode(const):
            _code_fingerprint(const, out)
        else:
            out.append(repr(const).encode())


def _normalized(obj: Any, anonymous: bool) -> bytes:
    """The AST dump of ``obj``'s source, without docstrings, decorators or layout."""
    tree = _StripDocstrings().visit(ast.parse(textwrap.dedent(inspect.getsource(obj))))
    if anonymous:  # the name is the cache's name already, not its code
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                node.name = "_"
                break
    return ast.dump(tree, include_attributes=False).encode()


def source_digest(func: Callable[..., Any]) -> str:
    """A digest of what ``func`` computes: its normalized source code.

    Comments, docstrings, blank lines, formatting and decorators are ignored
    (the source is parsed and dumped with ``ast``), so reformatting keeps a
    persistent cache while editing the body starts a fresh one. Without
    source (a REPL, ``exec``), the bytecode is used instead, which is stable
    for one Python version.

    >>> def f(x):
    ...     return x + 1  # a comment
    >>> def g(x):
    ...     "Docs."
    ...     return (x +
    ...             1)
    >>> source_digest(f) == source_digest(g)
    True
    """
    target = inspect.unwrap(func)
    try:
        text = _normalized(target, anonymous=True)
    except (OSError, TypeError, SyntaxError, IndentationError):
        parts: list[bytes] = []
        code = getattr(target, "__code__", None)
        if code is None:
            return ""
        _code_fingerprint(code, parts)
        text = b"\0".join(parts)
    return hashlib.blake2b(text, digest_size=8).hexdigest()


@lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    """Folders of the standard library and installed packages (never the user's code)."""
    import sysconfig  # only needed once a version is computed, not at import

    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.add(os.path.dirname(os.path.abspath(__file__)))  # twat_cache itself
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots)


def _is_user_file(filename: str | None) -> bool:
    if not filename:
        return False
    if filename.startswith("<"):  # exec'd, REPL or notebook code: the user's own
        return True
    real = os.path.realpath(filename)
    parts = real.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not real.startswith(_installed_roots())


def _module_file(obj: Any) -> str | None:
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    return getattr(module, "__file__", None)


#: Values whose content is their meaning: a module-level constant counts by value.
_CONSTANTS = (int, float, complex, str, bytes, bool, type(None), Decimal, Fraction, range)


def _is_constant(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (tuple, frozenset)):
            stack.extend(item)
        elif not isinstance(item, _CONSTANTS):
            return False
    return True


def _names(code: types.CodeType) -> set[str]:
    """Every global and attribute name ``code`` and its nested code objects use."""
    names: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return names


class _Walk:
    """One traversal of a function's dependencies (cycle-safe, iterative)."""

    def __init__(self) -> None:
        self.parts: dict[str, str] = {}
        self.seen: set[int] = set()
        self.modules: set[tuple[int, frozenset[str]]] = set()
        self.todo: list[tuple[str, Any]] = []
        self.trees: dict[str, ast.Module | None] = {}
        self.assigned: set[tuple[str, str]] = set()

    def run(self, root: Any) -> str:
        self.todo.append(("", root))
        while self.todo:
            label, obj = self.todo.pop()
            if id(obj) in self.seen:
                continue
            self.seen.add(id(obj))
            if isinstance(obj, types.FunctionType):
                self._function(label, obj)
            elif isinstance(obj, type):
                self._class(label, obj)
            else:
                self.parts[label] = source_digest(obj)
        h = hashlib.blake2b(digest_size=8)
        for label in sorted(self.parts):
            h.update(encode((label, self.parts[label])))
        return h.hexdigest()

    def _function(self, label: str, func: types.FunctionType) -> None:
        self.parts[label] = _source_of(func)
        names = _names(func.__code__)
        namespace = func.__globals__
        module = namespace.get("__name__", "")
        for name in sorted(names & namespace.keys()):
            self._use(f"{module}.{name}", namespace[name], names, namespace)
        cells = func.__closure__ or ()
        for var, cell in zip(func.__code__.co_freevars, cells, strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell: the variable is not bound yet
                continue
            self._use(f"{label}<closure>.{var}", value, names, None)
        defaults = [*(func.__defaults__ or ()), *(func.__kwdefaults__ or {}).values()]
        for i, value in enumerate(defaults):
            if callable(value):
                self._use(f"{label}<default>.{i}", value, names, None)
        self._siblings(label, func, names)

    def _siblings(self, label: str, func: types.FunctionType, names: set[str]) -> None:
        """A method's source neighbours: the methods and class attributes of its class it
        names (``self.factor()``), transitively, and the user's code those use.

        Read from the class's source, not the class: a decorated method is versioned
        while its class body still runs, when the class does not exist yet (or an
        older one, from a re-run notebook cell, has its name).
        """
        path = func.__qualname__.split(".")
        if len(path) < 2 or "<locals>" in path:
            return
        node: Any = self._tree(func.__code__.co_filename)
        for part in path[:-1]:
            body = node.body if node is not None else []
            node = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == part), None)
        if node is None:
            return
        members: dict[str, list[ast.stmt]] = {}
        for stmt in node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                members.setdefault(stmt.name, []).append(stmt)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    for leaf in ast.walk(target):
                        if isinstance(leaf, ast.Name):
                            members.setdefault(leaf.id, []).append(stmt)
        where = f"{label}<class {'.'.join(path[:-1])}>"
        namespace = func.__globals__
        module = namespace.get("__name__", "")
        todo = sorted(names & members.keys() - {path[-1]})
        done: set[str] = set()
        while todo:
            name = todo.pop()
            if name in done:
                continue
            done.add(name)
            dumps = []
            used: set[str] = set()
            for stmt in members[name]:
                stripped = _StripDocstrings().visit(copy.deepcopy(stmt))
                dumps.append(ast.dump(stripped, include_attributes=False))
                used |= {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
                used |= {n.attr for n in ast.walk(stmt) if isinstance(n, ast.Attribute)}
            self.parts[f"{where}.{name}"] = hashlib.blake2b("\0".join(dumps).encode()).hexdigest()
            todo.extend(sorted(used & members.keys() - done - {path[-1]}))
            for other in sorted(used & namespace.keys()):
                self._use(f"{module}.{other}", namespace[other], used, namespace)

    def _class(self, label: str, cls: type) -> None:
        try:
            text = _normalized(cls, anonymous=False)
        except (OSError, TypeError, SyntaxError, IndentationError):
            text = _qualname_bytes(cls)
        self.parts[label] = hashlib.blake2b(text, digest_size=8).hexdigest()
        for base in cls.__bases__:
            self._use(f"{label}<base>.{base.__qualname__}", base, set(), None)
        for name, member in sorted(vars(cls).items()):
            for func in _functions_of(member):
                self._use(f"{label}.{name}", func, set(), None)

    def _use(
        self, label: str, value: Any, names: set[str], namespace: dict[str, Any] | None
    ) -> None:
        """Queue or record one thing a function refers to, if it is the user's own."""
        value = _unwrapped(value)
        if isinstance(value, types.FunctionType):
            if _is_user_file(value.__code__.co_filename):
                self.todo.append((label, value))
        elif isinstance(value, type):
            if _is_user_file(_module_file(value)):
                self.todo.append((label, value))
        elif isinstance(value, types.ModuleType):
            self._module(value, names)
        elif _is_constant(value):
            try:
                self.parts[label] = hashlib.blake2b(encode(value, typed=True)).hexdigest()
            except CacheKeyError:  # a constant too odd to encode: its source stands in
                self._assignment(label, namespace)
        else:
            self._assignment(label, namespace)
            self._contents(label, value)

    def _contents(self, label: str, value: Any) -> None:
        """The user's functions and classes a value holds: a ``functools.partial``'s
        function, a dispatch dict's functions, an instance's class (its methods run)."""
        stack = [value]
        budget = _CONTENTS_BUDGET
        while stack and budget:
            item = stack.pop()
            budget -= 1
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, (list, tuple, set, frozenset)):
                stack.extend(item)
            elif isinstance(item, functools.partial):
                stack.extend([item.func, *item.args, *item.keywords.values()])
            elif isinstance(item, types.MethodType):
                stack.extend([item.__func__, item.__self__])
            elif isinstance(item, (types.FunctionType, type)):
                self._use(f"{label}<holds>.{_where(item)}", item, set(), None)
            elif not isinstance(item, (*_CONSTANTS, types.ModuleType)):
                cls = type(item)
                if _is_user_file(_module_file(cls)):
                    self._use(f"{label}<holds>.{_where(cls)}", cls, set(), None)

    def _module(self, module: types.ModuleType, names: set[str]) -> None:
        """``helpers.clean``: the attributes of a user module the code names."""
        visit = (id(module), frozenset(names))
        if visit in self.modules or not _is_user_file(getattr(module, "__file__", None)):
            return
        self.modules.add(visit)  # cycle-safe: pkg.sub.pkg ends here
        attrs = vars(module)
        for name in sorted(names & attrs.keys()):
            self._use(f"{module.__name__}.{name}", attrs[name], names, attrs)

    def _assignment(self, label: str, namespace: dict[str, Any] | None) -> None:
        """A mutable module-level value counts by the source that assigns it.

        Its value may change while the program runs (a registry, a memo
        dict); the source only changes when the user edits it. That source is
        every module-level statement naming it (``CFG = {}``, ``CFG["k"] = 2``,
        ``A, B = ...``, an ``if`` block), the user's functions those statements
        call, and, for a value imported by ``from module import``, the same in the
        module it comes from.
        """
        if namespace is not None:
            self._statements(label, label.rpartition(".")[2], namespace)

    def _statements(self, label: str, name: str, namespace: dict[str, Any]) -> None:
        filename = namespace.get("__file__")
        if not filename or not _is_user_file(filename) or (filename, name) in self.assigned:
            return
        self.assigned.add((filename, name))  # cycle-safe: A = {}; B = {"a": A}; A["b"] = B
        tree = self._tree(filename)
        if tree is None:
            return
        found: list[str] = []
        used: set[str] = set()
        sources: list[tuple[ast.ImportFrom, str]] = []
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import)):
                continue
            if isinstance(node, ast.ImportFrom):
                sources.extend(
                    (node, alias.name)
                    for alias in node.names
                    if alias.name == "*" or (alias.asname or alias.name) == name
                )
                continue
            ids = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            if name in ids:
                found.append(ast.dump(node, include_attributes=False))
                used |= ids
                used |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        if found:
            self.parts[label] = hashlib.blake2b("\0".join(found).encode()).hexdigest()
            module = namespace.get("__name__", "")
            for other in sorted((used - {name}) & namespace.keys()):
                self._use(f"{module}.{other}", namespace[other], used, namespace)
        for node, original in sources:
            source = _imported_module(node, namespace)
            target = name if original == "*" else original
            if source is not None and target in vars(source):
                self._statements(f"{label}<from {source.__name__}>", target, vars(source))

    def _tree(self, filename: str) -> ast.Module | None:
        tree = self.trees.get(filename, ...)
        if tree is ...:
            try:
                with open(filename, encoding="utf-8") as fh:
                    tree = ast.parse(fh.read())
            except (OSError, SyntaxError, ValueError):
                tree = None
            self.trees[filename] = tree
        return tree


#: At most this many items of a module-level container are looked into for functions.
_CONTENTS_BUDGET = 1000


def _where(obj: Any) -> str:
    """``module.qualname``: a label that does not depend on a set's iteration order."""
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"


def _imported_module(node: ast.ImportFrom, namespace: dict[str, Any]) -> types.ModuleType | None:
    """The module ``from ... import`` (``node``) reads from, if it is loaded."""
    try:
        name = importlib.util.resolve_name(
            "." * node.level + (node.module or ""), namespace.get("__package__")
        )
    except (ImportError, ValueError):
        return None
    return sys.modules.get(name)


def _qualname_bytes(cls: type) -> bytes:
    """``module:qualname`` of a class whose source cannot be read."""
    return f"{cls.__module__}:{cls.__qualname__}".encode()


def _unwrapped(value: Any) -> Any:
    """A decorated helper (``functools.wraps``, a twat-cache decorator) is its function."""
    if callable(value) and not isinstance(value, type) and hasattr(value, "__wrapped__"):
        try:
            return inspect.unwrap(value)
        except ValueError:  # a __wrapped__ cycle
            return value
    return value


def _functions_of(member: Any) -> Iterator[Any]:
    if isinstance(member, (staticmethod, classmethod)):
        yield member.__func__
    elif isinstance(member, property):
        yield from (f for f in (member.fget, member.fset, member.fdel) if f is not None)
    elif isinstance(member, types.FunctionType):
        yield member


_SOURCES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _source_of(func: types.FunctionType) -> str:
    """``source_digest``, remembered per function object (helpers are shared)."""
    digest = _SOURCES.get(func)
    if digest is None:
        digest = _SOURCES[func] = source_digest(func)
    return digest


_VERSIONS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def code_version(func: Callable[..., Any]) -> str:
    """A digest of what ``func`` computes, its own helpers included.

    Covers the normalized source of ``func`` (as :func:`source_digest`) and,
    transitively, of the functions and classes it uses from the user's own
    modules (by global name, by closure, as a default, or as an attribute of a
    user module such as ``helpers.clean``), and the values of the module-level
    constants it uses (a mutable module-level value counts by the source that
    assigns it). Code under site-packages, dist-packages and the standard
    library is left out. Remembered per function object.

    >>> def f(x):
    ...     return x + 1
    >>> code_version(f) == code_version(f)
    True
    """
    # A partial, a bound method or an object computes what the function it runs does.
    target = runs(inspect.unwrap(func))
    try:
        return _VERSIONS[target]
    except (KeyError, TypeError):
        pass
    version = _Walk().run(target)
    try:
        _VERSIONS[target] = version
    except TypeError:  # not weakly referenceable: computed each time
        pass
    return version
