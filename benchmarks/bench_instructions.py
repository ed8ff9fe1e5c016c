"""Instructions per call under valgrind's callgrind: the same count on a busy machine.

Run: ``python benchmarks/bench_instructions.py`` (needs ``valgrind``; takes a few
minutes). Each case runs twice in a fresh interpreter, with ``n`` calls and with
none; ``(instructions(n) - instructions(0)) / n`` is the cost of one call, start-up
and set-up cancelled out. ``PYTHONHASHSEED=0`` keeps dict and set layouts the
same from run to run. Wall-clock ratios (``bench_core.py``) move by 10% between
runs on a shared 2-core machine; these do not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

SETUP = """
import functools, os, sys, tempfile
root = tempfile.mkdtemp()
os.environ["TWAT_CACHE_DIR"] = root
n = int(sys.argv[1])
def f(a, b, c=1.0):
    return {i: a for i in range(10)}
"""

#: name -> (code run n times after SETUP, n, the baseline it is divided by)
CASES: dict[str, tuple[str, int, str | None]] = {
    "lru_cache hit": (
        "g = functools.lru_cache(maxsize=128)(f); g(-1, 'a')\nfor _ in range(n): g(-1, 'a')",
        200_000,
        None,
    ),
    "mcache hit": (
        "from twat_cache import mcache\ng = mcache(f); g(-1, 'a')\nfor _ in range(n): g(-1, 'a')",
        200_000,
        "lru_cache hit",
    ),
    "mcache(ttl=600) hit": (
        "from twat_cache import mcache\ng = mcache(ttl=600)(f); g(-1, 'a')\n"
        "for _ in range(n): g(-1, 'a')",
        200_000,
        "lru_cache hit",
    ),
    "mcache hit, f([1, 2, 3], {'k': 1})": (
        "from twat_cache import mcache\ng = mcache(lambda a, b: 1); L, D = [1, 2, 3], {'k': 1}\n"
        "g(L, D); g(L, D)\nfor _ in range(n): g(L, D)",
        100_000,
        "lru_cache hit",
    ),
    "lru_cache miss (maxsize 128)": (
        "g = functools.lru_cache(maxsize=128)(f)\nfor k in range(n): g(k, 'a')",
        20_000,
        None,
    ),
    "mcache miss + store": (
        "from twat_cache import mcache\ng = mcache(f); g(-1, 'a')\nfor k in range(n): g(k, 'a')",
        20_000,
        "lru_cache miss (maxsize 128)",
    ),
    "diskcache get": (
        "import diskcache\nraw = diskcache.Cache(os.path.join(root, 'raw'))\n"
        "raw.set('k' * 32, f(1, 'a'))\nfor _ in range(n): raw.get('k' * 32)",
        3_000,
        None,
    ),
    "bcache hit": (
        "from twat_cache import bcache\ng = bcache(cache_dir=root, folder_name='b')(f)\n"
        "g(1, 'a')\nfor _ in range(n): g(1, 'a')",
        3_000,
        "diskcache get",
    ),
    "diskcache set": (
        "import diskcache\nraw = diskcache.Cache(os.path.join(root, 'raw'))\n"
        "raw.set('x' * 32, 1)\nfor i in range(n): raw.set(f'{i:032d}', f(i, 'a'))",
        2_000,
        None,
    ),
    "bcache miss + store": (
        "from twat_cache import bcache\ng = bcache(cache_dir=root, folder_name='b')(f)\n"
        "g(-1, 'a')\nfor i in range(n): g(i, 'a')",
        2_000,
        "diskcache set",
    ),
}


def instructions(code: str, n: int) -> int:
    """Instructions callgrind counted for one interpreter running ``code`` with ``n``."""
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "case.py")
        with open(script, "w") as f:
            f.write(SETUP + code + "\n")
        out = os.path.join(tmp, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        done = subprocess.run(
            [*command, sys.executable, script, str(n)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
            check=True,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(found.group(1))


def main() -> None:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    per_call: dict[str, int] = {}
    print("| case | instructions per call | ratio |")
    print("|---|---:|---:|")
    for name, (code, n, base) in CASES.items():
        per_call[name] = (instructions(code, n) - instructions(code, 0)) // n
        ratio = f"{per_call[name] / per_call[base]:.2f}x vs {base}" if base else "1.00x"
        print(f"| {name} | {per_call[name]:,} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
