"""Optional OpenTelemetry metrics and the measured cost of in-process hits.

With ``opentelemetry-api`` installed and a meter provider set before a
function is decorated, the meter ``twat_cache`` records, each with the
attribute ``cache.name``:

- ``twat_cache.hits``, ``twat_cache.misses``, ``twat_cache.errors``:
  observable counters read from the call paths' own counters when the
  provider collects, so a hit does no metrics work at all;
- ``twat_cache.evictions``: entries a bounded in-process store pushed out
  to make room, counted when a miss stores its value;
- ``twat_cache.compute.duration``: a histogram of the seconds each miss
  spent computing.

The choice is made at decoration: without opentelemetry, or with its no-op
proxy provider (none set), the call path gets no hooks and nothing is
recorded. A provider set after decoration does not see functions decorated
before it. ``errors`` are cache faults (the ``errors`` of ``get_stats``), not
exceptions of the user's function, which are never cached.
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twat_cache import policy

if TYPE_CHECKING:
    from twat_cache.call.store import CallPath
    from twat_cache.engines.base import Store

__all__ = ["METER_NAME", "Recorder", "fast_hit_seconds", "recorder_for"]

METER_NAME = "twat_cache"
#: The no-op providers: opentelemetry's default before ``set_meter_provider``.
_NO_OP = ("_ProxyMeterProvider", "NoOpMeterProvider")


class Recorder:
    """The slow-path hooks of one call path: compute durations and evictions."""

    __slots__ = ("attributes", "duration", "evictions")

    def __init__(self, instruments: _Instruments, name: str) -> None:
        self.duration = instruments.duration
        self.evictions = instruments.evictions
        self.attributes = {"cache.name": name}

    def computed(self, seconds: float) -> None:
        self.duration.record(seconds, self.attributes)

    def evicted(self, count: int) -> None:
        self.evictions.add(count, self.attributes)


class _Instruments:
    """The instruments of one meter provider and the call paths they observe."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry.metrics import Observation  # optional

        from twat_cache._version import __version__

        self.observation = Observation
        self.paths: weakref.WeakSet[CallPath] = weakref.WeakSet()
        meter = provider.get_meter(METER_NAME, __version__)
        for index, what in enumerate(("hits", "misses", "errors")):
            meter.create_observable_counter(
                f"twat_cache.{what}",
                callbacks=[self._reader(index)],
                unit="{call}",
                description=f"Cache {what} of decorated functions",
            )
        self.evictions = meter.create_counter(
            "twat_cache.evictions",
            unit="{entry}",
            description="Entries a bounded in-process cache dropped to make room",
        )
        self.duration = meter.create_histogram(
            "twat_cache.compute.duration",
            unit="s",
            description="Seconds a cache miss spent computing the value",
        )

    def _reader(self, index: int) -> Any:
        def observe(_options: Any) -> Iterable[Any]:
            sums: dict[str, int] = {}
            for path in list(self.paths):
                sums[path.name] = sums.get(path.name, 0) + path.totals()[index]
            return [self.observation(n, {"cache.name": name}) for name, n in sums.items()]

        return observe


_lock = threading.Lock()
_by_provider: dict[int, tuple[Any, _Instruments]] = {}


def recorder_for(path: CallPath) -> Recorder | None:
    """The hooks for ``path`` when a meter provider is set now, else ``None``."""
    # Setting a provider imports opentelemetry: if nobody did, there is none to ask.
    if "opentelemetry" not in sys.modules:
        return None
    try:
        from opentelemetry import metrics  # optional
    except ImportError:
        return None
    provider = metrics.get_meter_provider()
    if type(provider).__name__ in _NO_OP:
        return None
    with _lock:
        held = _by_provider.get(id(provider))
        if held is None or held[0] is not provider:
            held = (provider, _Instruments(provider))
            _by_provider[id(provider)] = held
        instruments = held[1]
        instruments.paths.add(path)
    return Recorder(instruments, path.name)


def _probe(mapping: Any, key: Any, stamped: bool, rounds: int) -> float:
    pol, now, clock = policy, time.monotonic, time.perf_counter
    begin = clock()
    for _ in range(rounds):  # the generated hit path's work, minus the argument binding
        if not pol.ACTIVE:
            try:
                entry = mapping[key]
            except Exception:  # noqa: S112  # as the hit path: any failure is a miss
                continue
            if stamped:
                _value, deadline = entry
                _alive = deadline > now()
    return (clock() - begin) / rounds


def fast_hit_seconds(store: Store, rounds: int = 200) -> float | None:
    """The cost of one hit of the generated in-process hit path, measured once.

    Those hits are not timed one by one (a clock read would double their
    cost), so this times the same work: the policy test and one lookup of a
    key the store holds (with the expiry test of a ``ttl`` store), in a plain
    dict holding that key so that the store's own order (LRU) is left as it
    was; the best of three runs of ``rounds`` lookups. It is an estimate that
    leaves out the argument binding of the call itself. ``None`` when the
    store holds nothing to time.
    """
    try:
        key = next(iter(store.mapping))
    except Exception:  # empty, or changed while read by another thread
        return None
    mapping = {key: (None, float("inf")) if store.stamped else None}
    return min(_probe(mapping, key, store.stamped, rounds) for _ in range(3))
