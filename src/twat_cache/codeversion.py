"""The code version of a persistent cache: a digest of what the function computes."""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

__all__ = ["source_digest"]


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
        source = textwrap.dedent(inspect.getsource(target))
        tree = _StripDocstrings().visit(ast.parse(source))
        for node in ast.walk(tree):  # the name is the cache's name already, not its code
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                node.name = "_"
                break
        text = ast.dump(tree, include_attributes=False).encode()
    except (OSError, TypeError, SyntaxError, IndentationError):
        parts: list[bytes] = []
        code = getattr(target, "__code__", None)
        if code is None:
            return ""
        _code_fingerprint(code, parts)
        text = b"\0".join(parts)
    return hashlib.blake2b(text, digest_size=8).hexdigest()
