"""The command line: ``main(argv)`` called in process, output captured.

Housekeeping commands run on a real cache root, filled beforehand by real
decorated functions (``TWAT_CACHE_DIR`` points at it), in this process with
the registry emptied after, or in another process where that is the point.
Subprocesses remain only where they are the point: the installed script, and
answering the confirmation at a real pseudo-terminal.
"""

from __future__ import annotations

import io
import json
import os
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import run_python
from twat_cache.__main__ import _fmt, _times, main
from twat_cache.registry import registry

#: Wide enough that rich never wraps a table cell in these tests.
_WIDE = {"COLUMNS": "200"}


class Done:
    """What one in-process run of the command line returned and printed."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """``twat-cache ARGS`` in process: no terminal on stdin, 200 columns unless told."""

    def run(*args: str, env: dict[str, str] | None = None) -> Done:
        with monkeypatch.context() as patch:
            for name, value in {**_WIDE, **(env or {})}.items():
                patch.setenv(name, value)
            patch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: nothing to ask at
            capsys.readouterr()
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse: --help, and its own errors
                code = exc.code if isinstance(exc.code, int) else 1
            out, err = capsys.readouterr()
        return Done(code, out, err)

    return run


@pytest.fixture
def cli_json(run_cli):
    """The parsed stdout of a --json command that must succeed."""

    def run(*args: str) -> Any:
        done = run_cli(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return run


def test_demo_prints_a_table_for_each_decorator(run_cli):
    """demo exits 0 and shows, per decorator, its engine, what it computes, miss, hit,
    speed-up (three significant digits at most) and the entries the cache holds."""
    done = run_cli("demo", "--limit", "200000")
    assert done.returncode == 0, done.stderr
    for word in ("what it computes", "miss", "hit", "speed-up", "entries", "lower is better"):
        assert word in done.stdout
    lines = done.stdout.splitlines()
    for decorator, engine, workload in [
        ("mcache", "cachebox", "count primes below"),
        ("mcache", "cachetools", "count primes below"),
        ("mcache", "functools", "count primes below"),
        ("bcache", "diskcache", "50,000-row JSON report"),
        ("fcache", "joblib", "1500x1500 matrix"),
        ("acache", "aiocache", "50 ms async web"),
        ("ucache", "cachebox", "50,000-row JSON report"),
    ]:
        at = [i for i, line in enumerate(lines) if line.split()[:1] == [decorator]]
        assert any(workload in lines[i] and lines[i + 1].split()[:1] == [engine] for i in at), (
            decorator,
            engine,
        )
    for line in lines:
        cells = line.split()
        if cells[:1] in (["mcache"], ["bcache"], ["fcache"], ["acache"], ["ucache"]):
            assert cells[-1] == "3"  # entries: each workload caches three results
            speedup = cells[-2]
            assert speedup.endswith("x")
            assert len(speedup.rstrip("x").replace(",", "").replace(".", "").strip("0")) <= 3


def test_demo_json_reports_real_speedups(run_cli):
    """demo --json gives numbers: every hit is faster than its miss, three entries each."""
    done = run_cli("demo", "--limit", "1000", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {r["decorator"] for r in rows} >= {"mcache", "bcache", "fcache", "acache", "ucache"}
    for row in rows:
        assert row["hit"] < row["miss"]
        assert row["entries"] == 3
        assert row["workload"]
    assert os.environ["TWAT_CACHE_DIR"].endswith("twat-cache")  # the demo's temp root is undone


def test_demo_with_redis(run_cli, redis_url):
    """demo --redis-url adds a row for the redis engine."""
    done = run_cli("demo", "--limit", "1000", "--json", "--redis-url", redis_url)
    assert done.returncode == 0, done.stderr
    assert "redis" in {r["engine"] for r in json.loads(done.stdout)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--limit", "-5"), "--limit: must be a whole number from 1,000 to 100,000,000, got '-5'"),
        (("--limit", "abc"), "got 'abc'"),
        (("--limit", "10**12"), "got '10**12'"),
        (("--redis-url", "http://example.org"), "redis_url"),
    ],
)
def test_demo_rejects_bad_arguments_in_one_line(run_cli, args, message):
    """demo with a bad --limit or --redis-url: one line on stderr, exit 2, no output, no work."""
    done = run_cli("demo", *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr


@given(st.floats(min_value=1.0, max_value=1e9, allow_nan=False))
def test_speedups_show_three_significant_digits_at_most(value):
    """A speed-up reads like "12,000x" or "3.1x": at most three significant digits, within
    half a percent of the measured ratio."""
    shown = _times(value)
    assert shown.endswith("x")
    number = shown[:-1].replace(",", "")
    assert abs(float(number) - value) <= 0.005 * value + 0.005
    assert len(number.replace(".", "").lstrip("0").rstrip("0")) <= 3


def test_durations_and_speedups_read_well():
    """Known values: the demo's columns as a reader sees them."""
    assert [_times(v) for v in (914_072.4, 12_000.0, 57.26, 3.1, 1.0)] == [
        "914,000x",
        "12,000x",
        "57.3x",
        "3.1x",
        "1x",
    ]
    assert [_fmt(v) for v in (360.14e-3, 30.26e-6, 655e-9, 2.5, 1234.0)] == [
        "360 ms",
        "30.3 us",
        "655 ns",
        "2.5 s",
        "1,230 s",
    ]


def test_bad_command_exits_2(run_cli):
    """An unknown command prints an error and exits 2."""
    done = run_cli("nonsense")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


# -- caches on disk ---------------------------------------------------------------------

#: Three persistent caches, one per disk engine. In each, a function with ttl= writes two
#: entries and a function without ttl one more: both share the cache through name=.
POPULATE = """
import numpy as np
from twat_cache import bcache, fcache

@bcache(folder_name="proj/runs", name="runs", ttl=TTL)
def runs_short(x): return {"run": x}
@bcache(folder_name="proj/runs", name="runs", version="k")
def runs_kept(x): return {"kept": x}

@fcache(folder_name="arrays", name="arrays", ttl=TTL)
def arrays_short(n): return np.arange(n, dtype=np.float64)
@fcache(folder_name="arrays", name="arrays", version="k")
def arrays_kept(n): return np.ones(n)

@bcache(engine="klepto", name="kl", ttl=TTL)
def kl_short(x): return str(x) * 100
@bcache(engine="klepto", name="kl", version="k")
def kl_kept(x): return [x]

for i in range(2):
    runs_short(i); arrays_short(1000 + i); kl_short(i)
runs_kept(10); arrays_kept(2000); kl_kept(10)  # other arguments, hence other keys
for f in (runs_short, arrays_short, kl_short):
    assert f.cache_parameters()["fallback"] is None, f.cache_parameters()
"""

#: The kept entries are hits in a new process: the functions would fail if called
#: (``version=`` says they are the same functions, whatever their code).
STILL_CACHED = """
from twat_cache import bcache, fcache

@bcache(folder_name="proj/runs", name="runs", version="k")
def runs_kept(x): raise AssertionError("recomputed")
@fcache(folder_name="arrays", name="arrays", version="k")
def arrays_kept(n): raise AssertionError("recomputed")
@bcache(engine="klepto", name="kl", version="k")
def kl_kept(x): raise AssertionError("recomputed")

print(runs_kept(10), int(arrays_kept(2000).sum()), kl_kept(10))
"""

ENGINES = {"runs": "diskcache", "arrays": "joblib", "kl": "klepto"}
FOLDERS = {"runs": "proj/runs/runs", "arrays": "arrays/arrays", "kl": "kl"}


def populate(ttl: float = 3600.0, elsewhere: bool = False) -> None:
    """Fill the test's cache root (TWAT_CACHE_DIR) with the three caches of POPULATE.

    In this process by default, its stores closed and the registry emptied after, so
    the command line finds only what is on disk (as a fresh process would); with
    ``elsewhere=True`` another interpreter writes them."""
    code = POPULATE.replace("TTL", repr(ttl))
    if elsewhere:
        run_python(code)
        return
    module = Path(os.environ["TWAT_CACHE_DIR"]).parent / "populate_caches.py"
    module.write_text(code, encoding="utf-8")  # a real file: code versions read the source
    runpy.run_path(str(module), run_name="populate_caches")
    registry.reset()


def entry_files(root: Path) -> dict[str, int]:
    """How many entries each cache of POPULATE holds, counted from the files on disk."""
    return {
        "arrays": len(list((root / FOLDERS["arrays"]).glob("*.tc"))),
        "kl": len(list((root / FOLDERS["kl"]).glob("K_*"))),
    }


def test_list_shows_every_cache_on_disk(run_cli, cli_json, cache_root):
    """list finds caches written by another process: engine, entries, bytes, last write."""
    populate(elsewhere=True)
    report = cli_json("list")
    assert report["root"] == str(cache_root)
    caches = {c["name"]: c for c in report["caches"]}
    assert set(caches) == {"runs", "arrays", "kl"}
    for name, cache in caches.items():
        assert cache["engine"] == ENGINES[name]
        assert cache["folder"] == str(cache_root / FOLDERS[name])
        assert cache["entries"] == 3
        assert cache["bytes"] > 0
        assert cache["last_write"] is not None
        assert cache["error"] is None
    assert caches["arrays"]["bytes"] > 3 * 1000 * 8  # three arrays of 1000 float64
    assert caches["runs"]["folder_name"] == "proj/runs"
    assert caches["runs"]["ttl"] == 3600.0

    done = run_cli("list")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "proj/runs/runs" in line]
    assert len(rows) == 1
    assert "runs" in rows[0]
    assert "diskcache" in rows[0]


def test_list_with_cache_dir_and_empty_roots(run_cli, cache_root, tmp_path):
    """--cache-dir overrides TWAT_CACHE_DIR; a root without caches lists none."""
    populate()
    elsewhere = tmp_path / "empty-root"
    elsewhere.mkdir()
    env = {"TWAT_CACHE_DIR": str(elsewhere)}
    done = run_cli("list", "--json", "--cache-dir", str(cache_root), env=env)
    assert done.returncode == 0, done.stderr
    assert {c["name"] for c in json.loads(done.stdout)["caches"]} == {"runs", "arrays", "kl"}
    done = run_cli("list", "--json", env=env)
    assert json.loads(done.stdout) == {"root": str(elsewhere), "caches": []}
    done = run_cli("list", env=env)
    assert done.returncode == 0
    assert f"no caches under {elsewhere}" in done.stdout


def test_stats_name_reports_one_cache(run_cli, cli_json, cache_root):
    """stats NAME --json gives that cache's entries, bytes, options and expired entries."""
    populate()
    stats = cli_json("stats", "arrays")
    assert stats["name"] == "arrays"
    assert stats["engine"] == "joblib"
    assert stats["entries"] == 3
    assert stats["expired"] == 0
    assert stats["bytes"] > 3 * 8000
    assert stats["ttl"] == 3600.0
    assert stats["size_limit"] is None
    every = cli_json("stats")
    assert sorted(c["name"] for c in every["caches"]) == ["arrays", "kl", "runs"]

    done = run_cli("stats", "kl")
    assert done.returncode == 0, done.stderr
    assert "klepto" in done.stdout
    assert "expired" in done.stdout


def test_unknown_and_ambiguous_names_exit_2(run_cli, cli_json, cache_root):
    """An unknown name lists the known ones; a name in two folders needs the folder; exit 2."""
    populate()
    run_python(
        "from twat_cache import bcache\n"
        "@bcache(folder_name='other', name='runs')\n"
        "def f(x): return x\n"
        "f(1)\n"
    )
    done = run_cli("stats", "nope")
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no cache named 'nope'" in done.stderr
    assert "known caches: arrays, kl, runs" in done.stderr

    done = run_cli("clear", "runs", "--yes")
    assert done.returncode == 2
    assert "ambiguous" in done.stderr
    assert "proj/runs/runs" in done.stderr
    assert "other/runs" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert cli_json("stats", "proj/runs/runs")["entries"] == 3  # nothing was cleared

    assert cli_json("stats", "other/runs")["entries"] == 1


def test_clear_refuses_without_yes_off_a_terminal(run_cli, cli_json, cache_root):
    """clear without --yes and with no terminal: one line, exit 2, nothing deleted."""
    populate()
    before = sorted(p.relative_to(cache_root) for p in cache_root.rglob("*"))
    for args in (("clear",), ("clear", "arrays"), ("clear", "kl", "--json")):
        done = run_cli(*args)
        assert done.returncode == 2, args
        assert done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1
        assert "--yes" in done.stderr
    assert sorted(p.relative_to(cache_root) for p in cache_root.rglob("*")) == before
    assert entry_files(cache_root) == {"arrays": 3, "kl": 3}
    assert {c["name"]: c["entries"] for c in cli_json("list")["caches"]} == {
        "arrays": 3,
        "kl": 3,
        "runs": 3,
    }


def test_clear_name_removes_that_cache_only(cli_json, cache_root):
    """clear NAME --yes deletes that cache's entry files; the other caches keep theirs."""
    populate()
    report = cli_json("clear", "arrays", "--yes")
    assert [(c["name"], c["removed"], c["entries"]) for c in report["caches"]] == [("arrays", 3, 0)]
    assert entry_files(cache_root) == {"arrays": 0, "kl": 3}
    entries = {c["name"]: c["entries"] for c in cli_json("list")["caches"]}
    assert entries == {"arrays": 0, "kl": 3, "runs": 3}


def test_clear_all_with_yes(run_cli, cli_json, cache_root):
    """clear --yes without NAME empties every cache under the root."""
    populate()
    done = run_cli("clear", "--yes")
    assert done.returncode == 0, done.stderr
    assert "removed 3 entries" in done.stdout
    assert entry_files(cache_root) == {"arrays": 0, "kl": 0}
    assert all(c["entries"] == 0 for c in cli_json("list")["caches"])


def test_reports_delete_nothing_even_when_damaged(cli_json, cache_root):
    """list and stats report a damaged database and keep it; clear --yes starts it afresh."""
    populate()
    db = cache_root / FOLDERS["runs"] / "cache.db"
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    db.write_bytes(b"garbage " * 512)
    caches = {c["name"]: c for c in cli_json("list")["caches"]}
    assert caches["runs"]["entries"] is None
    assert "DatabaseError" in caches["runs"]["error"]
    assert caches["arrays"]["entries"] == 3  # one damaged cache hides no other
    assert cli_json("stats", "runs")["error"] is not None
    assert db.read_bytes() == b"garbage " * 512

    report = cli_json("clear", "runs", "--yes")
    assert report["caches"][0]["entries"] == 0
    assert "error" not in report["caches"][0]
    assert cli_json("stats", "runs")["error"] is None


def run_at_terminal(args: tuple[str, ...], answer: bytes) -> subprocess.CompletedProcess[str]:
    """Run the CLI with a pseudo-terminal on stdin and type ``answer`` at it."""
    pty = pytest.importorskip("pty", reason="pseudo-terminals are POSIX only")
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "twat_cache", *args],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **_WIDE},
        )
        os.close(follower)
        follower = -1
        os.write(leader, answer)
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_clear_asks_at_a_terminal(cache_root):
    """At a terminal clear asks first: "n" deletes nothing (exit 1), "y" deletes."""
    populate()
    done = run_at_terminal(("clear", "kl"), b"n\n")
    assert done.returncode == 1
    assert "Delete every entry of 'kl'" in done.stderr
    assert "nothing deleted" in done.stderr
    assert entry_files(cache_root)["kl"] == 3

    done = run_at_terminal(("clear", "kl"), b"y\n")
    assert done.returncode == 0, done.stderr
    assert "kl: removed 3 entries" in done.stdout
    assert entry_files(cache_root)["kl"] == 0


def test_prune_drops_expired_entries_without_yes(run_cli, cli_json, cache_root):
    """prune (no --yes, no terminal) removes each cache's expired entries, and only those:
    the live ones are still hits in a new process."""
    populate(ttl=0.5)
    time.sleep(0.6)
    before = {c["name"]: c for c in cli_json("stats")["caches"]}
    assert {n: (c["entries"], c["expired"]) for n, c in before.items()} == {
        "arrays": (3, 2),
        "kl": (3, 2),
        "runs": (3, 2),
    }
    report = cli_json("prune")
    assert {c["name"]: (c["removed"], c["entries"]) for c in report["caches"]} == {
        "arrays": (2, 1),
        "kl": (2, 1),
        "runs": (2, 1),
    }
    assert entry_files(cache_root) == {"arrays": 1, "kl": 1}
    after = {c["name"]: c for c in cli_json("stats")["caches"]}
    assert {n: (c["entries"], c["expired"]) for n, c in after.items()} == {
        "arrays": (1, 0),
        "kl": (1, 0),
        "runs": (1, 0),
    }
    assert run_python(STILL_CACHED).split() == ["{'kept':", "10}", "2000", "[10]"]
    done = run_cli("prune", "kl")
    assert done.returncode == 0, done.stderr
    assert "kl: removed 0 entries (1 left" in done.stdout  # nothing left to prune


SIZED_WRITER = """
import numpy as np
from twat_cache import fcache
@fcache(name="sized"LIMIT)
def f(n): return np.full(1000, float(n))
for n in RANGE: f(n)
"""


def fill_over_size_limit(cache_root: Path) -> Path:
    """A cache with size_limit=20,000 holding six ~8 KB entries (the last five were written
    by a process without the limit); returns its folder."""
    run_python(SIZED_WRITER.replace("LIMIT", ", size_limit=20_000").replace("RANGE", "range(1)"))
    run_python(SIZED_WRITER.replace("LIMIT", "").replace("RANGE", "range(1, 6)"))
    folder = cache_root / "sized"
    assert len(list(folder.glob("*.tc"))) == 6
    return folder


def test_prune_enforces_the_size_limit_with_yes(cli_json, cache_root):
    """prune --yes brings a cache over its size_limit under it, evicting live entries."""
    folder = fill_over_size_limit(cache_root)
    stats = cli_json("stats", "sized")
    assert stats["size_limit"] == 20_000
    assert stats["bytes"] > 6 * 8000

    report = cli_json("prune", "sized", "--yes")
    assert report["caches"][0]["removed"] == 4  # ~8 KB each: two fit in 20 KB
    left = list(folder.glob("*.tc"))
    assert len(left) == 2
    assert sum(p.stat().st_size for p in left) <= 20_000


def test_prune_keeps_live_entries_without_yes(run_cli, cache_root):
    """prune without --yes and no terminal evicts no live entry beyond size_limit: it says
    so in one line on stderr and exits 0."""
    folder = fill_over_size_limit(cache_root)
    done = run_cli("prune", "sized")
    assert done.returncode == 0, done.stderr
    assert "sized: removed 0 entries (6 left" in done.stdout
    assert done.stderr.strip().splitlines() == [
        "twat-cache prune: kept live entries beyond the size_limit of 'sized'"
        " (add --yes to evict them)"
    ]
    assert len(list(folder.glob("*.tc"))) == 6


def test_list_shows_full_names_at_80_columns(run_cli, cache_root):
    """At 80 columns list folds long names and folders over lines, never cuts them: the
    name stats and clear need is all there, and no line is wider than the terminal."""
    name = "analytics.pipelines.monthly.expensive_calculation_of_totals"
    run_python(
        "from twat_cache import bcache\n"
        f"@bcache(name={name!r}, folder_name='team/projects/reporting')\n"
        "def f(x): return x\n"
        "f(1)\n"
    )
    done = run_cli("list", env={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "…" not in done.stdout
    rows = [line.split("│") for line in lines if line.count("│") == 7]
    names = "".join(cells[1].strip() for cells in rows)
    folders = "".join(cells[6].strip() for cells in rows)
    assert name in names
    assert f"team/projects/reporting/{name}" in folders
    assert run_cli("stats", name, "--json").returncode == 0


def test_clear_name_reaches_a_cache_written_by_another_process(cli_json, cache_root):
    """clear NAME finds a cache another process wrote (through its manifest), whatever
    folder_name put it under, and empties it."""
    run_python(
        "from twat_cache import bcache\n"
        "@bcache(name='tag', folder_name='deep/er')\n"
        "def f(x): return x\n"
        "f(1); f(2)\n"
    )
    report = cli_json("clear", "tag", "--yes")
    assert [(c["name"], c["removed"], c["entries"]) for c in report["caches"]] == [("tag", 2, 0)]
    assert report["caches"][0]["folder"] == str(cache_root / "deep" / "er" / "tag")


# -- engines, help and bad arguments -------------------------------------------------------


def test_engines_json_says_what_is_usable_and_why(run_cli, cli_json, redis_url):
    """engines --json: every engine, installed, usable or why not, each chain's pick."""
    report = cli_json("engines")
    engines = {e["name"]: e for e in report["engines"]}
    assert set(engines) >= {"cachebox", "cachetools", "functools", "aiocache", "redis"}
    assert set(engines) >= {"diskcache", "klepto", "joblib"}
    assert engines["functools"] == {
        "name": "functools",
        "installed": True,
        "usable": True,
        "reason": None,
        "async_only": False,
        "persistent": False,
        "requires": None,
        "chains": ["mcache", "acache", "bcache", "fcache"],
    }
    assert engines["aiocache"]["async_only"] is False  # every store serves sync and async
    assert engines["diskcache"]["persistent"] is True
    assert engines["redis"]["usable"] is False
    assert "redis_url" in engines["redis"]["reason"]
    assert report["chains"]["mcache"] == {
        "chain": ["cachebox", "cachetools", "functools"],
        "picks": "cachebox",
    }
    assert report["chains"]["acache"]["picks"] == "aiocache"
    assert report["chains"]["bcache"]["picks"] == "diskcache"
    assert report["chains"]["fcache"]["picks"] == "joblib"

    done = run_cli("engines", "--json", env={"TWAT_CACHE_REDIS_URL": redis_url})
    redis = next(e for e in json.loads(done.stdout)["engines"] if e["name"] == "redis")
    assert redis["usable"] is True


def test_engines_table(run_cli):
    """engines prints a table of engines and one of chains with the engine picked now."""
    done = run_cli("engines")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("mcache" in line and "cachebox > cachetools > functools" in line for line in lines)
    bcache = next(line for line in lines if "diskcache > klepto" in line)
    assert bcache.split()[-2] == "diskcache"  # the "picks now" column
    redis = next(line for line in lines if line.split()[1:2] == ["redis"])
    assert "no redis_url given" in redis


@pytest.mark.parametrize("command", ["demo", "engines", "list", "stats", "clear", "prune"])
def test_every_command_has_help(run_cli, command):
    """COMMAND --help describes it and exits 0."""
    done = run_cli(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: twat-cache {command}")
    if command != "demo":
        assert "--json" in done.stdout


def test_main_help_lists_every_command(run_cli):
    """--help names every command."""
    done = run_cli("--help")
    assert done.returncode == 0
    for command in ("demo", "engines", "list", "stats", "clear", "prune"):
        assert command in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("list", "--bogus"), "unrecognized arguments: --bogus"),
        (("stats", "a", "b"), "unrecognized arguments: b"),
        (("list", "--cache-dir", "/no/such/folder"), "no such folder"),
        ((), "required: COMMAND"),
    ],
)
def test_bad_arguments_print_one_line_and_exit_2(run_cli, args, message):
    """Bad arguments: exit 2, nothing on stdout, one line on stderr."""
    done = run_cli(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr


def test_bad_cache_root_exits_2(run_cli):
    """A relative TWAT_CACHE_DIR is a one-line error naming the variable, exit 2."""
    done = run_cli("list", env={"TWAT_CACHE_DIR": "relative/root"})
    assert done.returncode == 2
    assert "TWAT_CACHE_DIR" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_console_script_runs_the_same_cli():
    """The installed ``twat-cache`` script answers --help like ``python -m twat_cache``."""
    from pathlib import Path

    script = Path(sys.executable).with_name("twat-cache")
    found = str(script) if script.exists() else shutil.which("twat-cache")
    if found is None:
        pytest.skip("twat-cache is not installed as a script here (pip install -e . installs it)")
    done = subprocess.run(
        [found, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    for command in ("demo", "engines", "list", "stats", "clear", "prune"):
        assert command in done.stdout
    done = subprocess.run(
        [found, "demo", "--limit", "-5"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
