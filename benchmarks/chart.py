"""Draw the README's chart: the cost of one cache hit, twat-cache against its peers.

Run: ``python benchmarks/chart.py`` runs ``bench_memory.py``, ``bench_async.py``
and ``bench_disk.py`` (about a minute in all), keeps their markdown output in
``benchmarks/results/`` and draws ``docs/img/hit-costs.png``. Given files
(``python benchmarks/chart.py memory.md async.md disk.md``), it draws from
those instead and runs nothing. Needs matplotlib (the ``bench`` extra).

Each panel comes from one benchmark run, so bars within a panel are comparable
(same process, same moment); panels measure different things and are not.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "docs" / "img" / "hit-costs.png"
RESULTS = HERE / "results"

#: panel title, benchmark, table title prefix, then (label in the table, label on the chart).
PANELS = [
    (
        "memory hit, f(1, 'a')",
        "memory",
        "Memory hit, positional",
        [
            ("functools.lru_cache", "functools.lru_cache"),
            ("cachetools.cached", "cachetools.cached"),
            ("cachebox.cached", "cachebox.cached"),
            ("mcache [cachebox]", "twat-cache @mcache"),
        ],
    ),
    (
        "async hit, await f(1, 'a')",
        "async",
        "Async hit",
        [
            ("async def dict lookup", "async def dict lookup"),
            ("acache [aiocache]", "twat-cache @acache"),
            ("aiocache.cached", "aiocache.cached"),
            ("cashews @cache", "cashews @cache"),
        ],
    ),
    (
        "disk hit, a dict of 10 items",
        "disk",
        "hit",
        [
            ("raw diskcache.Cache.get", "raw diskcache get"),
            ("twat_cache.bcache", "twat-cache @bcache"),
            ("diskcache.memoize", "diskcache.memoize"),
            ("joblib.Memory", "joblib.Memory"),
        ],
    ),
]

_UNITS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}


def _ns(cell: str) -> float | None:
    """A per-call cost cell ("1,414" in an ns/call column, "12.5 us") in nanoseconds."""
    match = re.fullmatch(r"([\d,]+(?:\.\d+)?)\s*(ns|us|µs|ms|s)?", cell.strip())
    if match is None:
        return None
    return float(match.group(1).replace(",", "")) * _UNITS[match.group(2) or "ns"]


def parse(text: str) -> dict[str, dict[str, float]]:
    """Every markdown table of a benchmark's output: {table title: {case: ns per call}}.

    A table's title is the nearest ``###`` heading above it; tables with a
    ``scenario`` column (bench_disk) are keyed by that scenario instead, and
    their case is the ``implementation`` column.
    """
    tables: dict[str, dict[str, float]] = {}
    title = ""
    header: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            title, header = line.lstrip("# ").strip(), []
            continue
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = [c.lower() for c in cells]
            continue
        if set(cells[0]) <= set("-: "):
            continue
        cost = next((i for i, h in enumerate(header) if h in ("ns/call", "per call", "hit")), None)
        if cost is None or cost >= len(cells):
            continue
        value = _ns(cells[cost])
        if value is None:
            continue
        if header[0] == "scenario":
            tables.setdefault(cells[0], {})[cells[1].strip("*` ")] = value
        else:
            tables.setdefault(title, {})[cells[0].strip("*` ")] = value
    return tables


def _find(tables: dict[str, dict[str, float]], prefix: str, case: str) -> float:
    for title, rows in tables.items():
        if prefix.lower() in title.lower():
            if case in rows:
                return rows[case]
            for name, value in rows.items():
                if name.startswith(case):  # "raw diskcache.Cache.get (str key)"
                    return value
    msg = f"no {case!r} in a table titled like {prefix!r} (tables: {sorted(tables)})"
    raise SystemExit(msg)


def run_benchmarks() -> dict[str, str]:
    """Run the three benchmarks in this interpreter; their output, also kept in results/."""
    RESULTS.mkdir(exist_ok=True)
    outputs = {}
    for name in ("memory", "async", "disk"):
        print(f"running bench_{name}.py ...", file=sys.stderr)
        done = subprocess.run(
            [sys.executable, str(HERE / f"bench_{name}.py")],
            capture_output=True,
            text=True,
            check=True,
            cwd=HERE,
        )
        (RESULTS / f"{name}.md").write_text(done.stdout, encoding="utf-8")
        outputs[name] = done.stdout
    return outputs


def draw(outputs: dict[str, str], out: Path = OUT) -> None:
    """Three panels of horizontal bars (log scale), twat-cache's bars highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PANELS), 1, figsize=(8, 6.6))
    for ax, (panel, bench, prefix, cases) in zip(axes, PANELS, strict=True):
        tables = parse(outputs[bench])
        labels = [label for _, label in cases]
        values = [_find(tables, prefix, case) for case, _ in cases]
        colors = ["#d95f02" if label.startswith("twat-cache") else "#7f8c9a" for label in labels]
        bars = ax.barh(labels, values, color=colors)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlim(min(values) / 2, max(values) * 8)
        ax.set_title(panel, loc="left", fontsize=10, fontweight="bold")
        for bar, value in zip(bars, values, strict=True):
            text = f"{value:,.0f} ns" if value < 1e4 else f"{value / 1e3:,.1f} us"
            ax.text(value * 1.1, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=9)
        ax.tick_params(axis="y", labelsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    axes[-1].set_xlabel("nanoseconds per cache hit, log scale (lower is better)")
    fig.suptitle("Cost of a cache hit: twat-cache and its peers (lower is better)", fontsize=12)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}", file=sys.stderr)


def main() -> None:
    if len(sys.argv) > 1:
        outputs = {
            name: Path(path).read_text(encoding="utf-8")
            for name, path in zip(("memory", "async", "disk"), sys.argv[1:4], strict=True)
        }
    else:
        outputs = run_benchmarks()
    draw(outputs)


if __name__ == "__main__":
    main()
