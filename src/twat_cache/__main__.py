"""twat-cache's command line: demo, engines, and housekeeping of the caches on disk.

Every command takes --help; list, stats, clear, prune and engines take --json
(machine-readable output only). Every error prints one line and exits 2. clear
deletes nothing without --yes or a confirmation at a terminal; prune drops
expired entries at once, and asks the same way before evicting live entries
beyond a cache's size_limit.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from twat_cache._manage import FoundCache

__all__ = ["main"]

_EXIT_USAGE = 2


class _UsageError(Exception):
    """A bad argument: one line on stderr, exit 2."""


#: What a command runs: the parsed arguments in, the exit status out.
_Command = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(_EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


#: The demo's --limit bounds: below, the sieve is too quick to time; above, too slow and big.
_LIMIT_RANGE = (1_000, 100_000_000)


def _rich() -> Any:
    """The rich console, or a one-line error: the command line needs the [cli] extra."""
    try:
        import rich.console
    except ImportError:
        msg = "the command line needs rich: pip install 'twat-cache[cli]'"
        raise _UsageError(msg) from None
    return rich.console.Console()


def _sig3(value: float) -> str:
    """``value`` to three significant digits at most, with thousands separators."""
    if value >= 100:
        step = 10 ** (len(str(int(value))) - 3)
        return f"{round(value / step) * step:,.0f}"
    return f"{value:.3g}"


def _fmt(seconds: float) -> str:
    """A duration to three significant digits: ``360 ms``, ``30.3 us``, ``655 ns``."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{_sig3(seconds / scale)} {unit}"
    return f"{_sig3(seconds * 1e9)} ns"


def _times(speedup: float) -> str:
    """A speed-up to three significant digits at most: ``12,000x``, ``57.3x``, ``3.1x``."""
    if speedup == float("inf"):
        return "inf"
    return f"{_sig3(speedup)}x"


def _limit(text: str) -> int:
    """--limit: a whole number in _LIMIT_RANGE (argparse turns the error into one line)."""
    low, high = _LIMIT_RANGE
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        msg = f"must be a whole number from {low:,} to {high:,}, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _demo(args: argparse.Namespace) -> int:
    from rich.progress import Progress
    from rich.table import Table

    from twat_cache import clear_cache
    from twat_cache._demo import scenarios
    from twat_cache.config import create_cache_config

    console = _rich()
    redis_url = args.redis_url or os.environ.get("TWAT_CACHE_REDIS_URL")
    if redis_url:
        create_cache_config(redis_url=redis_url)  # a bad URL: one line before any work
    results = []
    previous_root = os.environ.get("TWAT_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="twat-cache-demo-") as root:
        os.environ["TWAT_CACHE_DIR"] = root  # persistent engines write here, then it is removed
        try:
            todo = scenarios(args.limit, redis_url)
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("caching", total=len(todo))
                for scenario in todo:
                    progress.update(task, description=scenario.title)
                    results.append(scenario.run())
                    progress.advance(task)
        finally:
            clear_cache()
            if previous_root is None:
                os.environ.pop("TWAT_CACHE_DIR", None)
            else:
                os.environ["TWAT_CACHE_DIR"] = previous_root
    if args.json:
        rows = [{**vars(r), "speedup": r.speedup} for r in results]
        print(json.dumps(rows, indent=2))
        return 0
    from rich import box

    table = Table(
        title="twat-cache demo: first call (miss) vs. cached call (hit)",
        caption="miss: the first call; hit: the median cached call (lower is better); "
        "speed-up: miss / hit; entries: results held by the cache",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("decorator\nengine", no_wrap=True)
    table.add_column("what it computes", overflow="fold", max_width=26)
    for column in ("miss", "hit", "speed-up", "entries"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in results:
        table.add_row(
            f"{r.decorator}\n{r.engine}",
            r.workload,
            _fmt(r.miss),
            _fmt(r.hit),
            _times(r.speedup),
            f"{r.entries:,}",
            end_section=True,
        )
    console.print(table)
    return 0


def _size(n: int | None) -> str:
    """Bytes for people: ``812 B``, ``64.2 KB``, ``1.3 GB``."""
    if n is None:
        return "?"
    if n < 1024:
        return f"{n:,} B"
    value = n / 1024
    for unit in ("KB", "MB", "GB"):
        if value < 1024:
            return f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TB"


def _when(iso: str | None) -> str:
    """An ISO timestamp (UTC) as local time, for tables."""
    if iso is None:
        return "-"
    from datetime import datetime

    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


# -- engines -------------------------------------------------------------------


def _engine_report() -> dict[str, Any]:
    """Each engine (installed? usable? why not?) and what each decorator's chain picks."""
    from twat_cache.config import create_cache_config
    from twat_cache.engines import CHAINS, get_engine_manager
    from twat_cache.engines.persistent import PersistentEngine

    manager = get_engine_manager()
    config = create_cache_config()  # the TWAT_CACHE_* defaults a decorator would see now
    engines: list[dict[str, Any]] = []
    for name in manager.names():
        cls = manager.engine_class(name)
        installed = cls.is_available()
        reason: str | None = None
        if not installed:
            reason = f"not installed (pip install {cls.requires})"
        elif cls.requires is not None:
            try:
                importlib.import_module(cls.requires)
            except Exception as exc:  # a broken install is reported, not raised
                reason = f"installed but fails to import ({type(exc).__name__}: {exc})"
        if reason is None:
            reason = cls.unsupported(config)
        is_async = False  # every store serves sync and async functions
        engines.append(
            {
                "name": name,
                "persistent": issubclass(cls, PersistentEngine),
                "installed": installed,
                "usable": reason is None,
                "reason": reason,
                "async_only": is_async,
                "requires": cls.requires,
                "chains": [decorator for decorator, chain in CHAINS.items() if name in chain],
            }
        )
    by_name = {engine["name"]: engine for engine in engines}
    chains: dict[str, dict[str, Any]] = {}
    for decorator, chain in CHAINS.items():
        asynchronous = decorator == "acache"
        pick = next(
            (
                n
                for n in chain
                if by_name[n]["usable"] and (asynchronous or not by_name[n]["async_only"])
            ),
            None,
        )
        chains[decorator] = {"chain": list(chain), "picks": pick}
    return {"engines": engines, "chains": chains}


def _engines(args: argparse.Namespace) -> int:
    report = _engine_report()
    if args.json:
        _print_json(report)
        return 0
    from rich.table import Table

    console = _rich()
    table = Table(title="engines")
    for column in ("engine", "installed", "usable", "why not / note", "in chains"):
        table.add_column(column)
    for e in report["engines"]:
        note = e["reason"] or ("async def functions only" if e["async_only"] else "")
        table.add_row(
            e["name"],
            "yes" if e["installed"] else "no",
            "yes" if e["usable"] else "no",
            note,
            ", ".join(e["chains"]) or "-",
        )
    console.print(table)
    chains = Table(title="fallback chains (first usable engine wins)")
    for column in ("decorator", "chain", "picks now"):
        chains.add_column(column)
    for decorator, c in report["chains"].items():
        chains.add_row(decorator, " > ".join(c["chain"]), c["picks"] or "none")
    console.print(chains)
    console.print("ucache picks one of these chains per function, or redis given redis_url.")
    return 0


# -- caches on disk ----------------------------------------------------------------


def _root(args: argparse.Namespace) -> Path:
    from twat_cache.paths import cache_root

    if args.cache_dir is None:
        return cache_root()  # a bad TWAT_CACHE_DIR raises ConfigurationError: exit 2
    path = Path(args.cache_dir).expanduser().absolute()
    if not path.is_dir():
        msg = f"--cache-dir {args.cache_dir!r}: no such folder"
        raise _UsageError(msg)
    return path


def _targets(args: argparse.Namespace) -> tuple[Path, list[FoundCache]]:
    """The root and the caches a command acts on (all of them without NAME)."""
    from twat_cache._manage import find_caches, select

    root = _root(args)
    return root, select(find_caches(root), getattr(args, "name", None))


def _list(args: argparse.Namespace) -> int:
    from twat_cache._manage import describe

    if args.redis_url:
        return _redis_report(args)
    root, caches = _targets(args)
    rows = [describe(cache) for cache in caches]
    if args.json:
        _print_json({"root": str(root), "caches": rows})
        return 0
    console = _rich()
    if not rows:
        console.print(f"no caches under {root}")
        return 0
    from rich.table import Table

    table = Table(title=f"caches under {root}")
    # Names and folders are what stats and clear take: folded over lines when the
    # terminal is narrow, never cut short.
    table.add_column("name", overflow="fold", ratio=3)
    table.add_column("engine", no_wrap=True)
    table.add_column("entries", justify="right", no_wrap=True)
    table.add_column("on disk", justify="right", no_wrap=True)
    table.add_column("last write", overflow="fold", ratio=1)
    table.add_column("folder", overflow="fold", ratio=3)
    for cache, row in zip(caches, rows, strict=True):
        entries = "?" if row["entries"] is None else f"{row['entries']:,}"
        table.add_row(
            row["name"],
            row["engine"],
            entries,
            _size(row["bytes"]),
            _when(row["last_write"]),
            cache.where,
        )
    console.print(table)
    for row in rows:
        if row["error"]:
            console.print(f"{row['name']}: cannot open: {row['error']}", markup=False)
    return 0


def _stats(args: argparse.Namespace) -> int:
    from twat_cache._manage import describe

    if args.redis_url:
        return _redis_report(args)
    root, caches = _targets(args)
    rows = [describe(cache, expired=True) for cache in caches]
    if args.json:
        _print_json(rows[0] if args.name is not None else {"root": str(root), "caches": rows})
        return 0
    console = _rich()
    if not rows:
        console.print(f"no caches under {root}")
        return 0
    from rich.table import Table

    for row in rows:
        table = Table(title=row["name"], show_header=False)
        table.add_column("field")
        table.add_column("value")
        for field, value in row.items():
            if field == "name" or (field == "error" and value is None):
                continue
            if field == "bytes":
                shown = f"{_size(value)} ({value:,} bytes)" if value is not None else "?"
            elif field in ("last_write", "created"):
                shown = _when(value)
            elif field == "ttl":
                shown = "never expires" if value is None else f"{value:g} s"
            elif field == "size_limit":
                shown = "none" if value is None else _size(value)
            else:
                shown = "-" if value is None else str(value)
            table.add_row(field.replace("_", " "), shown)
        console.print(table)
    return 0


def _confirm(args: argparse.Namespace, question: str, *, refuse: bool = True) -> bool:
    """--yes, or a "y" typed at a terminal; without a terminal, refuse (exit 2).

    ``refuse=False``: without a terminal, answer no instead (prune then keeps live entries).
    """
    if args.yes:
        return True
    if not sys.stdin.isatty():
        if not refuse:
            return False
        msg = "refusing to delete without --yes (stdin is not a terminal to confirm at)"
        raise _UsageError(msg)
    sys.stderr.write(f"{question} [y/N] ")  # stderr: stdout stays clean for --json
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _each(
    caches: list[FoundCache], action: Callable[[FoundCache], dict[str, Any]]
) -> tuple[list[dict[str, Any]], bool]:
    """``action`` on every cache, carrying on past failures; the results, and whether any failed."""
    results = []
    failed = False
    for cache in caches:
        try:
            results.append(action(cache))
        except Exception as exc:  # report each cache, carry on with the others
            failed = True
            error = f"{type(exc).__name__}: {exc}"
            results.append({"name": cache.name, "folder": str(cache.folder), "error": error})
    return results, failed


def _nothing_found(args: argparse.Namespace, root: Path) -> int:
    if args.json:
        _print_json({"root": str(root), "caches": []})
    else:
        print(f"no caches under {root}")
    return 0


def _report(
    args: argparse.Namespace, root: Path, results: list[dict[str, Any]], failed: bool
) -> int:
    """What clear and prune removed, per cache; exit 1 if any cache failed."""
    if args.json:
        _print_json({"root": str(root), "caches": results})
    else:
        for r in results:
            if "error" in r:
                print(f"{r['name']}: failed: {r['error']}", file=sys.stderr)
            else:
                removed = "all" if r["removed"] is None else f"{r['removed']:,}"
                print(
                    f"{r['name']}: removed {removed} entries"
                    f" ({r['entries']:,} left, {_size(r['bytes'])} on disk)"
                )
    return 1 if failed else 0


def _clear(args: argparse.Namespace) -> int:
    """Every entry of the caches named (all without NAME), after confirmation."""
    from twat_cache import _manage

    if args.redis_url:
        return _redis_clear(args)
    root, caches = _targets(args)
    if not caches:
        return _nothing_found(args, root)
    if len(caches) == 1:
        question = f"Delete every entry of {caches[0].name!r} ({caches[0].folder})?"
    else:
        question = f"Delete every entry of {len(caches)} caches under {root}?"
    if not _confirm(args, question):
        print("twat-cache clear: nothing deleted", file=sys.stderr)
        return 1
    return _report(args, root, *_each(caches, _manage.clear))


def _prune(args: argparse.Namespace) -> int:
    """Expired entries at once; live entries beyond a size_limit only after confirmation.

    Expired entries are dead weight nobody can read again, so dropping them
    needs no --yes. Evicting down to ``size_limit`` deletes entries that still
    hit, so it is confirmed like ``clear`` (without a terminal and --yes, it is
    skipped with a note, and the expired entries are still gone).
    """
    from twat_cache import _manage

    root, caches = _targets(args)
    if not caches:
        return _nothing_found(args, root)
    results, failed = _each(caches, lambda cache: _manage.prune(cache, size_limit=False))
    over = []
    for cache, result in zip(caches, results, strict=True):
        if "error" not in result and _manage.over_size_limit(cache):
            over.append(cache)
    if over:
        names = ", ".join(repr(cache.name) for cache in over)
        question = f"Evict live entries beyond the size_limit of {names}?"
        if _confirm(args, question, refuse=False):
            evicted, failed_again = _each(over, _manage.prune)
            failed = failed or failed_again
            by_folder = {r["folder"]: r for r in evicted}
            for result in results:
                extra = by_folder.get(result["folder"])
                if extra is None:
                    continue
                if "error" not in extra:
                    extra["removed"] += result["removed"]  # expired, then evicted
                result.clear()
                result.update(extra)
        else:
            print(
                f"twat-cache prune: kept live entries beyond the size_limit of {names}"
                " (add --yes to evict them)",
                file=sys.stderr,
            )
    return _report(args, root, results, failed)


# -- caches on Redis (every node of a cluster) ----------------------------------------


def _redis_sizes(args: argparse.Namespace) -> tuple[str, dict[str, int]]:
    """The deployment's label and entries per cache name (only NAME's, when given)."""
    from twat_cache.config import CacheConfig
    from twat_cache.engines.remote import RedisStore

    store = RedisStore(CacheConfig(redis_url=args.redis_url))  # a bad URL: exit 2
    try:
        sizes = store.all_caches()
    finally:
        store.close()
    label = store.server.label
    name = getattr(args, "name", None)
    if name is not None:
        if name not in sizes:
            msg = f"no cache named {name!r} on {label} (twat-cache list --redis-url shows them)"
            raise _UsageError(msg)
        sizes = {name: sizes[name]}
    return label, sizes


def _redis_report(args: argparse.Namespace) -> int:
    """list and stats of the caches on a Redis deployment: name and entries."""
    try:
        label, sizes = _redis_sizes(args)
    except _UsageError:
        raise
    except Exception as exc:  # unreachable server: one line, exit 1
        print(f"twat-cache {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    rows: list[dict[str, Any]] = [
        {"name": name, "engine": "redis", "entries": count} for name, count in sizes.items()
    ]
    if args.json:
        _print_json({"redis_url": label, "caches": rows})
        return 0
    console = _rich()
    if not rows:
        console.print(f"no caches on {label}", markup=False)
        return 0
    from rich.table import Table

    table = Table(title=f"caches on {label}")
    table.add_column("name")
    table.add_column("entries", justify="right")
    for row in rows:
        table.add_row(row["name"], f"{row['entries']:,}")
    console.print(table)
    return 0


def _redis_clear(args: argparse.Namespace) -> int:
    """clear on a Redis deployment: each cache's keys only (SCAN on every primary)."""
    from twat_cache.config import CacheConfig
    from twat_cache.engines.remote import RedisStore

    try:
        label, sizes = _redis_sizes(args)
    except _UsageError:
        raise
    except Exception as exc:
        print(f"twat-cache clear: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if not sizes:
        if args.json:
            _print_json({"redis_url": label, "caches": []})
        else:
            print(f"no caches on {label}")
        return 0
    which = repr(next(iter(sizes))) if len(sizes) == 1 else f"{len(sizes)} caches"
    if not _confirm(args, f"Delete every entry of {which} on {label}?"):
        print("twat-cache clear: nothing deleted", file=sys.stderr)
        return 1
    results: list[dict[str, Any]] = []
    for name, count in sizes.items():
        store = RedisStore(CacheConfig(redis_url=args.redis_url, name=name))
        try:
            store.clear()
            results.append({"name": name, "removed": count, "entries": len(store)})
        except Exception as exc:  # report each cache, carry on with the others
            results.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            store.close()
    if args.json:
        _print_json({"redis_url": label, "caches": results})
    else:
        for r in results:
            if "error" in r:
                print(f"{r['name']}: failed: {r['error']}", file=sys.stderr)
            else:
                print(f"{r['name']}: removed {r['removed']:,} entries ({r['entries']:,} left)")
    return 1 if any("error" in r for r in results) else 0


# -- the parser ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="twat-cache",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="run each decorator on a real workload")
    demo.add_argument(
        "--limit",
        type=_limit,
        default=2_000_000,
        help="the mcache workload counts the primes below this number (default 2,000,000)",
    )
    demo.add_argument("--redis-url", help="also run on this Redis (default: TWAT_CACHE_REDIS_URL)")
    demo.add_argument("--json", action="store_true", help="print the results as JSON")
    demo.set_defaults(run=_demo)

    engines = commands.add_parser(
        "engines", help="every engine: installed, usable and why; each decorator's chain"
    )
    engines.add_argument("--json", action="store_true", help="print JSON only")
    engines.set_defaults(run=_engines)

    common = _Parser(add_help=False)
    common.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the cache root to look under (default: TWAT_CACHE_DIR, else the user cache folder)",
    )
    common.add_argument("--json", action="store_true", help="print JSON only")
    on_redis = _Parser(add_help=False)
    on_redis.add_argument(
        "--redis-url",
        metavar="URL",
        help="the caches on this Redis instead (redis://, redis+cluster://, redis+sentinel://)",
    )
    confirm = _Parser(add_help=False)
    confirm.add_argument(
        "-y", "--yes", action="store_true", help="delete without asking for confirmation"
    )

    listing = commands.add_parser(
        "list",
        parents=[common, on_redis],
        help="the persistent caches under the cache root",
        description="The persistent caches under the cache root: entries, bytes on disk, "
        "engine, last write.",
    )
    listing.set_defaults(run=_list)
    # The commands that act on one cache, NAME, or on every cache without it.
    named: list[tuple[str, list[_Parser], str, str, _Command]] = [
        (
            "stats",
            [common, on_redis],
            "details of one cache, or of every cache",
            "Details of one cache (or of every cache): entries, expired entries, "
            "bytes, ttl, size_limit, created, last write.",
            _stats,
        ),
        (
            "clear",
            [common, confirm, on_redis],
            "delete every entry of one cache, or of every cache",
            "Delete every entry of the cache NAME, or of every cache under the root. "
            "Asks first, unless --yes; without a terminal to ask at, refuses.",
            _clear,
        ),
        (
            "prune",
            [common, confirm],
            "delete expired entries and enforce size limits",
            "Delete the expired entries of the cache NAME, or of every cache, then "
            "the oldest live entries beyond each cache's size_limit. Expired entries go at once; "
            "evicting live entries asks first, unless --yes (without a terminal, it is skipped).",
            _prune,
        ),
    ]
    for name, parents, summary, description, run in named:
        command = commands.add_parser(name, parents=parents, help=summary, description=description)
        command.add_argument(
            "name",
            nargs="?",
            metavar="NAME",
            help="a cache's name (as `list` shows it), or its folder relative to the root",
        )
        command.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m twat_cache`` and the ``twat-cache`` script."""
    from loguru import logger

    from twat_cache.exceptions import TwatCacheError

    args = _parser().parse_args(argv)
    # Reopened caches report through the exit code, and the demo through its table:
    # log lines would only interleave with the output. Enabled again on the way out,
    # as main() also runs inside other programs (and the tests).
    logger.disable("twat_cache")
    try:
        result: int = args.run(args)
    except (_UsageError, TwatCacheError, OSError) as exc:
        print(f"twat-cache {args.command}: error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    except KeyboardInterrupt:
        print(f"twat-cache {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        logger.enable("twat_cache")
    return result


if __name__ == "__main__":
    sys.exit(main())
