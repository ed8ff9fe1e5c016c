"""A persistent cache's code version follows the user's own code, transitively.

Each version is computed in a fresh interpreter that imports modules written
into ``tmp_path``: editing a helper (in the same module or another one, used by
name, as ``helpers.clean``, inside a lambda, or through a class) changes the
version; reformatting, comments and docstrings do not; installed packages are
never followed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.conftest import run_python
from twat_cache.codeversion import code_version, source_digest

_SCRIPT = """
import sys
sys.path[:0] = {paths!r}
import main
from twat_cache.codeversion import code_version
print(code_version(main.{func}))
"""


def version(tmp_path: Path, files: dict[str, str], func: str = "f") -> str:
    """Write ``files`` (name -> source) under tmp_path, import main, return code_version."""
    paths = []
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    paths = [str(tmp_path), str(tmp_path / "site-packages")]
    script = _SCRIPT.format(paths=paths, func=func)
    return run_python(script, env={"PYTHONDONTWRITEBYTECODE": "1"}).strip()


MAIN = """
    import helpers
    from helpers import clean

    FACTOR = 3
    TABLE = {"a": 1}

    def f(x):
        return clean(x) * FACTOR + helpers.scale(x) + TABLE["a"]
"""
HELPERS = """
    def clean(x):
        return inner(x) + 1

    def inner(x):
        return x

    def scale(x):
        return x * 2
"""


def test_editing_a_helper_changes_the_version(tmp_path):
    """A helper imported by name, one used as module.attr, and a helper's helper count."""
    base = version(tmp_path, {"main.py": MAIN, "helpers.py": HELPERS})
    edited_clean = version(tmp_path, {"helpers.py": HELPERS.replace("+ 1", "+ 2")})
    edited_scale = version(tmp_path, {"helpers.py": HELPERS.replace("x * 2", "x * 3")})
    edited_inner = version(tmp_path, {"helpers.py": HELPERS.replace("return x\n", "return -x\n")})
    assert len({base, edited_clean, edited_scale, edited_inner}) == 4


def test_reformatting_comments_and_docstrings_keep_the_version(tmp_path):
    """Layout, comments and docstrings, in the function and its helpers, change nothing."""
    base = version(tmp_path, {"main.py": MAIN, "helpers.py": HELPERS})
    reformatted = """
        def clean(  x ):
            '''Clean x.'''
            # a comment
            return (inner(x)
                    + 1)


        def inner(x):
            return x  # identity

        def scale(x): return x*2
    """
    main = MAIN.replace("FACTOR = 3", "FACTOR = (3)  # the factor")
    assert version(tmp_path, {"main.py": main, "helpers.py": reformatted}) == base


def test_module_constants_count_by_value(tmp_path):
    """Changing a module-level constant or a module-level dict's source changes the version."""
    base = version(tmp_path, {"main.py": MAIN, "helpers.py": HELPERS})
    assert version(tmp_path, {"main.py": MAIN.replace("FACTOR = 3", "FACTOR = 4")}) != base
    assert version(tmp_path, {"main.py": MAIN.replace('"a": 1', '"a": 2')}) != base


def test_runtime_mutation_of_a_module_dict_keeps_the_version(tmp_path):
    """A dict the program fills while it runs counts by its source, not its contents."""
    main = """
        SEEN = {}

        def f(x):
            SEEN[x] = True
            return x
    """
    base = version(tmp_path, {"main.py": main})
    filled = version(tmp_path, {"main.py": textwrap.dedent(main) + "\nf(1)\nf(2)\n"})
    assert filled == base


def test_helpers_used_in_nested_code_and_classes_count(tmp_path):
    """Helpers called in a lambda, a comprehension or a method of a user class count."""
    main = """
        from helpers import Model, clean

        def f(xs):
            key = lambda x: clean(x)
            return [Model().predict(key(x)) for x in xs]
    """
    helpers = """
        def clean(x):
            return x + 1

        def weight():
            return 2

        class Model:
            def predict(self, x):
                return x * weight()
    """
    base = version(tmp_path, {"main.py": main, "helpers.py": helpers})
    assert version(tmp_path, {"helpers.py": helpers.replace("x + 1", "x + 5")}) != base
    assert version(tmp_path, {"helpers.py": helpers.replace("return 2", "return 7")}) != base
    assert version(tmp_path, {"helpers.py": helpers.replace("x * weight()", "weight()")}) != base


def test_installed_packages_are_not_followed(tmp_path):
    """Code under a site-packages folder is not the user's: editing it keeps the version."""
    main = """
        import extpkg

        def f(x):
            return extpkg.tool(x)
    """
    ext = "def tool(x):\n    return x\n"
    base = version(tmp_path, {"main.py": main, "site-packages/extpkg.py": ext})
    assert version(tmp_path, {"site-packages/extpkg.py": ext.replace("x\n", "-x\n")}) == base


def test_mutually_recursive_functions_are_versioned(tmp_path):
    """Cycles between user functions and modules end: each edit still shows."""
    main = """
        import main

        def f(n):
            return g(n - 1) if n else 0

        def g(n):
            return main.f(n) + 1
    """
    base = version(tmp_path, {"main.py": main})
    assert version(tmp_path, {"main.py": main.replace("+ 1", "+ 2")}) != base


def test_decorated_helpers_are_unwrapped(tmp_path):
    """A helper behind functools.wraps is versioned by its own source."""
    main = """
        import functools

        def deco(fn):
            @functools.wraps(fn)
            def wrapper(*a):
                return fn(*a)
            return wrapper

        @deco
        def helper(x):
            return x + 1

        def f(x):
            return helper(x)
    """
    base = version(tmp_path, {"main.py": main})
    assert version(tmp_path, {"main.py": main.replace("x + 1", "x + 9")}) != base


def test_code_version_is_memoized_and_source_digest_unchanged():
    """The same function object gets the same version; source_digest ignores formatting."""

    def f(x):
        return x + 1

    def g(x):
        "Docs."
        return (x +
                1)  # fmt: skip

    assert code_version(f) == code_version(f)
    assert source_digest(f) == source_digest(g)
    assert len(source_digest(f)) == 16
