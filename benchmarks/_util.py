"""Shared timing helpers: medians of repeated runs, printed as markdown ratios."""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable


def per_call_ns(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    """Median nanoseconds per call over ``repeat`` runs of ``number`` calls."""
    timer = timeit.Timer(fn)
    runs = timer.repeat(repeat=repeat, number=number)
    return statistics.median(runs) / number * 1e9


def table(title: str, rows: list[tuple[str, float]], baseline: str) -> str:
    """A markdown table of ns per call and the ratio to ``baseline``."""
    base = dict(rows)[baseline]
    lines = [f"### {title}", "", "| case | ns/call | ratio |", "|---|---:|---:|"]
    lines += [f"| {name} | {ns:,.0f} | {ns / base:.2f}x |" for name, ns in rows]
    return "\n".join(lines)
