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

import pytest

from tests.conftest import run_python
from twat_cache.codeversion import code_version, source_digest

_SCRIPT = """
import sys
sys.path[:0] = {paths!r}
import main
from twat_cache.codeversion import code_version
print(code_version(main.{func}))
"""


def version(tmp_path: Path, files: dict[str, str], func: str = "f", hash_seed: int = 0) -> str:
    """Write ``files`` (name -> source) under tmp_path, import main, return code_version."""
    paths = []
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    paths = [str(tmp_path), str(tmp_path / "site-packages")]
    script = _SCRIPT.format(paths=paths, func=func)
    env = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": str(hash_seed)}
    return run_python(script, env=env).strip()


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


_INDIRECT = {  # main.py, helpers.py, (old, new) in helpers.py: the edit must change the version
    "dict_imported_from_another_module": (
        "from helpers import CFG\n\ndef f(x):\n    return x * CFG['k']\n",
        "CFG = {'k': 2}\n",
        ("2", "3"),
    ),
    "array_imported_by_star": (
        "from helpers import *\n\ndef f(x):\n    return x * W.sum()\n",
        "import numpy as np\nW = np.array([1, 2])\n",
        ("2]", "3]"),
    ),
    "dict_filled_by_a_later_statement": (
        "from helpers import CFG\n\ndef f(x):\n    return x * CFG['k']\n",
        "CFG = {}\nCFG['k'] = 2\n",
        ("= 2", "= 3"),
    ),
    "list_filled_by_append": (
        "import helpers\n\ndef f(x):\n    return x * sum(helpers.L)\n",
        "L = []\nL.append(2)\n",
        ("(2)", "(3)"),
    ),
    "value_built_by_a_helper": (
        "from helpers import CFG\n\ndef f(x):\n    return x * CFG['k']\n",
        "def _make():\n    return {'k': 2}\n\nCFG = _make()\n",
        ("2}", "3}"),
    ),
    "tuple_unpacking": (
        "from helpers import A\n\ndef f(x):\n    return x * A[0]\n",
        "A, B = [2], 3\n",
        ("[2]", "[5]"),
    ),
    "assigned_in_a_block": (
        "from helpers import CFG\n\ndef f(x):\n    return x * CFG['k']\n",
        "import sys\nif sys:\n    CFG = {'k': 2}\n",
        ("2}", "3}"),
    ),
    "functools_partial": (
        "import functools\nfrom helpers import clean\nadd = functools.partial(clean, k=1)\n\n"
        "def f(x):\n    return add(x)\n",
        "def clean(x, k):\n    return x + k\n",
        ("x + k", "x + 10 * k"),
    ),
    "dispatch_dict_of_functions": (
        "from helpers import clean\nOPS = {'clean': clean}\n\n"
        "def f(x):\n    return OPS['clean'](x)\n",
        "def clean(x):\n    return x + 1\n",
        ("+ 1", "+ 2"),
    ),
    "instance_of_a_user_class": (
        "from helpers import Model\nMODEL = Model()\n\ndef f(x):\n    return MODEL.predict(x)\n",
        "class Model:\n    def predict(self, x):\n        return x + 1\n",
        ("+ 1", "+ 2"),
    ),
    "callable_instance": (
        "from helpers import Norm\nnorm = Norm()\n\ndef f(x):\n    return norm(x)\n",
        "class Norm:\n    def __call__(self, x):\n        return x + 1\n",
        ("+ 1", "+ 2"),
    ),
    "method_calls_a_sibling_method": (
        "from helpers import weight\n\nclass A:\n    SCALE = 1\n\n    def factor(self):\n"
        "        return weight() * self.SCALE\n\n"
        "    def f(self, x):\n        return x * self.factor()\n",
        "def weight():\n    return 2\n",
        ("return 2", "return 5"),
    ),
}


@pytest.mark.parametrize("case", list(_INDIRECT))
def test_values_and_methods_reached_indirectly_count(tmp_path: Path, case: str) -> None:
    """What the function computes through an imported or mutated module value, a partial,
    a dispatch dict, an instance's class or a sibling method changes the version."""
    main, helpers, (old, new) = _INDIRECT[case]
    func = "A.f" if "class A" in main else "f"
    base = version(tmp_path, {"main.py": main, "helpers.py": helpers}, func)
    assert old in helpers
    assert version(tmp_path, {"helpers.py": helpers.replace(old, new)}, func) != base
    # the same edit in a comment changes nothing
    assert version(tmp_path, {"helpers.py": helpers + f"# {new}\n"}, func) == base


def test_editing_a_sibling_method_changes_a_cached_methods_version(tmp_path: Path) -> None:
    """In the class body itself: the method a cached method calls through ``self``."""
    main = """
        class A:
            def factor(self):
                return 2

            def f(self, x):
                return x * self.factor()

            def unrelated(self):
                return 0
    """
    base = version(tmp_path, {"main.py": main}, "A.f")
    assert version(tmp_path, {"main.py": main.replace("return 2", "return 5")}, "A.f") != base
    assert version(tmp_path, {"main.py": main.replace("return 0", "return 1")}, "A.f") == base


def test_fcache_recomputes_when_an_imported_dict_is_edited(tmp_path: Path) -> None:
    """End to end, in fresh processes: the edited constant's value is returned, not the old."""
    (tmp_path / "helpers.py").write_text("RATES = {'eur': 2}\n")
    (tmp_path / "main.py").write_text(
        "from twat_cache import fcache\nfrom helpers import RATES\ncalls = []\n\n"
        "@fcache(cache_dir=" + repr(str(tmp_path / "cache")) + ")\n"
        "def price(x):\n    calls.append(x)\n    return x * RATES['eur']\n"
    )
    script = f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport main\n"
    script += "print(main.price(10), main.calls)"
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    assert run_python(script, env=env).split() == ["20", "[10]"]
    assert run_python(script, env=env).split() == ["20", "[]"]
    (tmp_path / "helpers.py").write_text("RATES = {'eur': 3}\n")
    assert run_python(script, env=env).split() == ["30", "[10]"]


def test_a_set_of_functions_and_classes_gives_one_version_in_every_process(tmp_path: Path) -> None:
    """A set's order changes from process to process (functions hash by address, strings
    by the hash seed): the version must not."""
    defs = "".join(f"def h{i}(x):\n    return x + {i}\n\n" for i in range(20))
    defs += "".join(f"class K{i}:\n    N = {i}\n\n" for i in range(10))
    names = [repr(f"s{i}") for i in range(40)] + [f"h{i}" for i in range(20)]  # str: hash seed
    names += [f"K{i}" for i in range(10)]  # classes live outside Python's small-object arenas
    main = defs + "HANDLERS = {" + ", ".join(names) + "}\n\n"
    main += "def f(x):\n    return sorted(h(x) for h in HANDLERS if type(h) is type(f))\n"
    versions = {version(tmp_path, {"main.py": main}, hash_seed=seed) for seed in range(4)}
    assert len(versions) == 1
    assert version(tmp_path, {"main.py": main.replace("x + 7", "x + 70")}) not in versions
