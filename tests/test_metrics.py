"""Statistics timings and bytes, and the optional OpenTelemetry metrics (API.md section 8)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import Calls, run_python
from twat_cache import bcache, clear_cache, get_stats, mcache


def test_memory_stats_time_misses_and_estimate_hits(calls: Calls) -> None:
    """A memory cache reports the measured compute time of its misses, a positive
    hit cost far below it, what the hits saved, and no byte count."""

    @mcache(name="timed")
    def slow(x: int) -> int:
        calls(x)
        time.sleep(0.02)
        return x

    for _ in range(4):
        for x in range(3):
            assert slow(x) == x
    stats = get_stats("timed")
    assert calls == [0, 1, 2]
    assert stats["hits"] == 9
    assert stats["misses"] == 3
    assert stats["mean_miss_seconds"] >= 0.02
    assert 0 < stats["mean_hit_seconds"] < stats["mean_miss_seconds"]
    assert stats["saved_seconds"] == pytest.approx(9 * stats["mean_miss_seconds"])
    assert stats["bytes"] is None


def test_no_hits_means_no_hit_cost() -> None:
    """Before any hit, ``mean_hit_seconds`` and ``saved_seconds`` say nothing was measured."""

    @mcache(name="cold")
    def f(x: int) -> int:
        return x

    f(1)
    stats = get_stats("cold")
    assert stats["mean_hit_seconds"] is None
    assert stats["saved_seconds"] == 0.0
    assert stats["mean_miss_seconds"] is not None


def test_disk_stats_time_hits_and_count_bytes(cache_root: Path) -> None:
    """A disk cache times each hit (key digest and read), and ``bytes`` is the size of
    its folder, growing as entries are written; a clear zeroes the counters."""

    @bcache(name="disk_timed", folder_name="metrics")
    def f(x: int) -> str:
        return "v" * 10_000 + str(x)

    f(1)
    small = get_stats("disk_timed")["bytes"]
    for x in range(2, 12):
        f(x)
    f(1)
    stats = get_stats("disk_timed")
    assert stats["hits"] == 1
    assert stats["mean_hit_seconds"] > 0
    assert isinstance(small, int)
    assert stats["bytes"] > small
    clear_cache("disk_timed")
    after = get_stats("disk_timed")
    assert (after["hits"], after["misses"], after["mean_hit_seconds"]) == (0, 0, None)


def test_no_meter_provider_installs_no_hooks() -> None:
    """With opentelemetry importable but no meter provider set, a decorated function's
    call path carries no metrics hooks (its hits do no extra work)."""
    pytest.importorskip("opentelemetry.metrics")

    @mcache
    def f(x: int) -> int:
        return x

    assert f(1) == 1
    assert f._twat_core.path.metrics is None  # type: ignore[attr-defined]


_OTEL = """
import json, time
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

from twat_cache import mcache, bcache, clear_cache

@mcache(name="otel_mem", maxsize=2)
def f(x):
    time.sleep(0.01)
    return x

@bcache(name="otel_disk", folder_name="otel")
def g(x):
    return x

for x in (1, 1, 1, 2, 3, 4):
    f(x)
g(1); g(1)
clear_cache("otel_mem")  # counters are totals: a clear never takes them back
f(9)

out = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        assert sm.scope.name == "twat_cache", sm.scope.name
        for m in sm.metrics:
            for p in m.data.data_points:
                key = m.name + "|" + p.attributes["cache.name"]
                if hasattr(p, "sum"):
                    out[key] = {"count": p.count, "sum": p.sum, "min": p.min, "unit": m.unit}
                else:
                    out[key] = p.value
print(json.dumps(out))
"""


def test_opentelemetry_metrics_with_an_in_memory_reader(cache_root: Path) -> None:
    """With a meter provider set before decoration, the ``twat_cache`` meter reports per
    ``cache.name`` the hits, misses and evictions of a bounded memory cache, a histogram
    of compute seconds, and the disk cache's counts; counters survive a clear."""
    pytest.importorskip("opentelemetry.sdk.metrics")
    data = json.loads(run_python(_OTEL, env={"PYTHONPATH": str(Path("src").resolve())}))
    assert data["twat_cache.hits|otel_mem"] == 2
    assert data["twat_cache.misses|otel_mem"] == 5
    assert data["twat_cache.errors|otel_mem"] == 0
    assert data["twat_cache.evictions|otel_mem"] == 2  # maxsize=2: 3 and 4 each push one out
    duration = data["twat_cache.compute.duration|otel_mem"]
    assert duration["count"] == 5
    assert duration["unit"] == "s"
    assert duration["min"] >= 0.01
    assert data["twat_cache.hits|otel_disk"] == 1
    assert data["twat_cache.misses|otel_disk"] == 1
    assert data["twat_cache.compute.duration|otel_disk"]["count"] == 1


def test_without_opentelemetry_nothing_is_recorded_and_calls_work() -> None:
    """Where opentelemetry cannot be imported, decorated functions work and keep
    their statistics; no hook is installed."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from twat_cache import mcache, get_stats\n"
        "@mcache(name='x')\ndef f(x): return x\n"
        "f(1); f(1)\n"
        "print(get_stats('x')['hits'], f._twat_core.path.metrics)\n"
    )
    assert run_python(code).split() == ["1", "None"]
