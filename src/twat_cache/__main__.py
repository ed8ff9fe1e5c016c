"""twat-cache's command line: demo, engines, and housekeeping of the caches on disk.

Every command takes --help; list, stats, clear, prune and engines take --json
(machine-readable output only). Bad arguments print one line and exit 2, and
clear and prune delete nothing without --yes or a confirmation at a terminal.
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


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(_EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _rich() -> Any:
    """The rich console, or a one-line error: the command line needs the [cli] extra."""
    try:
        import rich.console
    except ImportError:
        print("twat-cache: the command line needs rich: pip install 'twat-cache[cli]'")
        raise SystemExit(1) from None
    return rich.console.Console()


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:,.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.1f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:,.1f} us"
    return f"{seconds * 1e9:,.0f} ns"


def _demo(args: argparse.Namespace) -> int:
    from loguru import logger
    from rich.progress import Progress
    from rich.table import Table

    from twat_cache import clear_cache
    from twat_cache._demo import scenarios

    console = _rich()
    logger.disable("twat_cache")
    redis_url = args.redis_url or os.environ.get("TWAT_CACHE_REDIS_URL")
    results = []
    with tempfile.TemporaryDirectory(prefix="twat-cache-demo-") as root:
        os.environ["TWAT_CACHE_DIR"] = root  # persistent engines write here, then it is removed
        todo = scenarios(args.limit, redis_url)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("caching", total=len(todo))
            for scenario in todo:
                progress.update(task, description=scenario.title)
                results.append(scenario.run())
                progress.advance(task)
        clear_cache()
    if args.json:
        rows = [{**vars(r), "speedup": r.speedup} for r in results]
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="twat-cache demo: first call (miss) vs. cached call (hit)")
    for column in ("decorator", "engine", "miss", "hit", "speed-up", "entries"):
        table.add_column(column, justify="left" if column in ("decorator", "engine") else "right")
    for r in results:
        table.add_row(
            r.decorator, r.engine, _fmt(r.miss), _fmt(r.hit), f"{r.speedup:,.0f}x", str(r.entries)
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
    from twat_cache.engines.base import AsyncCacheEngine
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
        is_async = issubclass(cls, AsyncCacheEngine)
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
    for column in ("name", "engine", "entries", "on disk", "last write", "folder"):
        table.add_column(column, justify="right" if column in ("entries", "on disk") else "left")
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


def _confirm(args: argparse.Namespace, question: str) -> bool:
    """--yes, or a "y" typed at a terminal; without a terminal, refuse (exit 2)."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        msg = "refusing to delete without --yes (stdin is not a terminal to confirm at)"
        raise _UsageError(msg)
    sys.stderr.write(f"{question} [y/N] ")  # stderr: stdout stays clean for --json
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _delete(
    args: argparse.Namespace,
    verb: str,
    question: Callable[[list[FoundCache]], str],
    action: Callable[[FoundCache], dict[str, Any]],
) -> int:
    """clear and prune: pick the caches, confirm, act on each, report."""
    root, caches = _targets(args)
    if not caches:
        if args.json:
            _print_json({"root": str(root), "caches": []})
        else:
            print(f"no caches under {root}")
        return 0
    if not _confirm(args, question(caches)):
        print(f"twat-cache {verb}: nothing deleted", file=sys.stderr)
        return 1
    results = []
    failed = False
    for cache in caches:
        try:
            results.append(action(cache))
        except Exception as exc:  # report each cache, carry on with the others
            failed = True
            error = f"{type(exc).__name__}: {exc}"
            results.append({"name": cache.name, "folder": str(cache.folder), "error": error})
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
    from twat_cache import _manage

    if args.redis_url:
        return _redis_clear(args)

    def question(caches: list[FoundCache]) -> str:
        if len(caches) == 1:
            return f"Delete every entry of {caches[0].name!r} ({caches[0].folder})?"
        return f"Delete every entry of {len(caches)} caches under {caches[0].root}?"

    return _delete(args, "clear", question, _manage.clear)


def _prune(args: argparse.Namespace) -> int:
    from twat_cache import _manage

    def question(caches: list[FoundCache]) -> str:
        which = repr(caches[0].name) if len(caches) == 1 else f"{len(caches)} caches"
        return f"Delete expired entries and entries beyond size_limit of {which}?"

    return _delete(args, "prune", question, _manage.prune)


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
    demo.add_argument("--limit", type=int, default=2_000_000, help="primes below this number")
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
    name_help = "a cache's name (as `list` shows it), or its folder relative to the root"
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
    stats = commands.add_parser(
        "stats",
        parents=[common, on_redis],
        help="details of one cache, or of every cache",
        description="Details of one cache (or of every cache): entries, expired entries, "
        "bytes, ttl, size_limit, created, last write.",
    )
    stats.add_argument("name", nargs="?", metavar="NAME", help=name_help)
    stats.set_defaults(run=_stats)
    clear = commands.add_parser(
        "clear",
        parents=[common, confirm, on_redis],
        help="delete every entry of one cache, or of every cache",
        description="Delete every entry of the cache NAME, or of every cache under the root. "
        "Asks first, unless --yes; without a terminal to ask at, refuses.",
    )
    clear.add_argument("name", nargs="?", metavar="NAME", help=name_help)
    clear.set_defaults(run=_clear)
    prune = commands.add_parser(
        "prune",
        parents=[common, confirm],
        help="delete expired entries and enforce size limits",
        description="Delete expired entries, then the oldest entries beyond each cache's "
        "size_limit, of the cache NAME or of every cache. Asks first, unless --yes.",
    )
    prune.add_argument("name", nargs="?", metavar="NAME", help=name_help)
    prune.set_defaults(run=_prune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m twat_cache`` and the ``twat-cache`` script."""
    from loguru import logger

    from twat_cache._manage import CacheLookupError
    from twat_cache.exceptions import ConfigurationError

    args = _parser().parse_args(argv)
    if args.command != "demo":
        logger.disable("twat_cache")  # reopened caches report through the exit code instead
    try:
        result: int = args.run(args)
    except (_UsageError, CacheLookupError, ConfigurationError) as exc:
        print(f"twat-cache {args.command}: error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    return result


if __name__ == "__main__":
    sys.exit(main())
