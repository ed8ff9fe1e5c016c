"""Command line: ``python -m twat_cache demo`` and ``python -m twat_cache engines``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


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


def _engines(args: argparse.Namespace) -> int:
    from twat_cache import CacheConfig, get_engine_manager
    from twat_cache.engines import CHAINS

    manager = get_engine_manager()
    print("engine       installed")
    for name in manager.names():
        cls = manager.engine_class(name)
        installed = "yes" if cls.is_available() else f"no (pip install {cls.requires})"
        print(f"{name:12s} {installed}")
    print()
    config = CacheConfig()
    for decorator, chain in CHAINS.items():
        usable = [n for n in chain if manager.engine_class(n).is_available()]
        pick = next(
            (n for n in usable if manager.engine_class(n).unsupported(config) is None), None
        )
        print(f"{decorator}: {' > '.join(chain)}  (picks {pick} now)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m twat_cache`` and the ``twat-cache`` script."""
    parser = argparse.ArgumentParser(prog="twat-cache", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run each decorator on a real workload")
    demo.add_argument("--limit", type=int, default=2_000_000, help="primes below this number")
    demo.add_argument("--redis-url", help="also run on this Redis (default: TWAT_CACHE_REDIS_URL)")
    demo.add_argument("--json", action="store_true", help="print the results as JSON")
    demo.set_defaults(run=_demo)
    engines = commands.add_parser("engines", help="installed engines and fallback chains")
    engines.set_defaults(run=_engines)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
