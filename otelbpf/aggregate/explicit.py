"""Vectorised explicit-bucket histograms for event streams, bucket-for-bucket identical to the OTel SDK.

Bucket i counts (bounds[i-1], bounds[i]]; the first bucket is (-inf, bounds[0]], the last
(bounds[-1], +inf), as OTLP defines and as the SDK's ``bisect_left(bounds, v)`` places a value.
Integer values are compared with the bounds exactly (as Python compares an int with a float):
each bound becomes the largest integer not above it, so a u64 near 2^64 is never rounded onto the
other side of a bound the way a float64 conversion would round it.

Like `ExponentialHistograms`: many series in one object (group ids 0..G-1), batches recorded with
a few numpy passes, integer sums exact, `weights` count an event w times, non-finite values dropped
and counted, state cumulative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from otelbpf.aggregate.series_stats import SeriesStats, batch
from otelbpf.metrics.model import Attributes, HistogramPoint

__all__ = ["ExplicitHistograms", "DEFAULT_BOUNDS", "bucket_indexes"]

# The OpenTelemetry SDK's default explicit bucket boundaries (the metrics SDK specification's
# "Explicit Bucket Histogram Aggregation" defaults).
DEFAULT_BOUNDS = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0,
                  5000.0, 7500.0, 10000.0)


def bucket_indexes(values: np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """The bucket of each value: the number of bounds strictly below it (``bisect_left``)."""
    if values.dtype.kind == "f":
        return np.searchsorted(np.asarray(bounds, dtype=np.float64), values, side="left")
    # For an integer v: v <= b  <=>  v <= floor(b). Bounds below the dtype's range are below every
    # value; bounds above it are above every value and need no threshold.
    info = np.iinfo(values.dtype)
    floors = [math.floor(b) for b in bounds]
    below = sum(1 for f in floors if f < info.min)
    inside = np.array([f for f in floors if info.min <= f <= info.max], dtype=values.dtype)
    return below + np.searchsorted(inside, values, side="left")


class ExplicitHistograms:
    """Explicit-bucket histograms of many series with the same `bounds`, recorded in batches.

    `record(group_ids, values, weights=1)`, `point(group, attributes, start_ns, now_ns)`,
    `count(group)`, `copy()`, `reset(groups)`: the interface of `ExponentialHistograms`.
    """

    def __init__(self, bounds: Sequence[float] = DEFAULT_BOUNDS, *, capacity: int = 16):
        bounds = tuple(float(b) for b in bounds)
        if not all(math.isfinite(b) for b in bounds):
            raise ValueError("bounds must be finite")
        if any(b <= a for a, b in zip(bounds, bounds[1:])):
            raise ValueError("bounds must be strictly increasing")
        self.bounds = bounds
        self.dropped_nonfinite = 0
        self._cap = 0
        self._counts = np.zeros((0, len(bounds) + 1), dtype=np.int64)
        self._stats = SeriesStats()
        self._ensure(capacity)

    @property
    def n_groups(self) -> int:
        return self._cap

    def _ensure(self, capacity: int) -> None:
        if capacity <= self._cap:
            return
        capacity = max(capacity, 2 * self._cap)
        extra = capacity - self._cap
        self._counts = np.concatenate([self._counts, np.zeros((extra, len(self.bounds) + 1), dtype=np.int64)])
        self._stats.grow(capacity)
        self._cap = capacity

    def count(self, group: int) -> int:
        return int(self._counts[group].sum()) if group < self._cap else 0

    def copy(self) -> ExplicitHistograms:
        other = ExplicitHistograms.__new__(ExplicitHistograms)
        other.bounds, other.dropped_nonfinite, other._cap = self.bounds, self.dropped_nonfinite, self._cap
        other._counts = self._counts.copy()
        other._stats = self._stats.copy()
        return other

    def reset(self, groups: Sequence[int] | np.ndarray | None = None) -> None:
        rows = np.arange(self._cap) if groups is None else np.asarray(groups, dtype=np.intp)
        self._counts[rows] = 0
        self._stats.reset(rows.tolist())

    def point(self, group: int, attributes: Attributes, start_ns: int, now_ns: int) -> HistogramPoint:
        self._ensure(group + 1)
        counts = self._counts[group].tolist()
        return HistogramPoint(attributes=attributes, start_time_ns=start_ns, time_ns=now_ns, count=sum(counts),
                              sum=self._stats.sum[group], bounds=self.bounds, bucket_counts=tuple(counts),
                              min=self._stats.min[group], max=self._stats.max[group])

    def record(self, group_ids, values, weights=1) -> None:
        """Add events: value `values[i]` to series `group_ids[i]`, counted `weights` (int or array) times."""
        events = batch(group_ids, values, weights)
        if events is None:
            return
        g, v, w, nonfinite = events
        self.dropped_nonfinite += nonfinite
        if v.size == 0:
            return
        self._ensure(int(g.max()) + 1)
        width = len(self.bounds) + 1
        flat = self._counts.reshape(-1)
        cells = g * width + bucket_indexes(v, self.bounds)
        if w is None:
            flat += np.bincount(cells, minlength=flat.size)
        else:
            np.add.at(flat, cells, w)
        self._stats.record(g, v, w, np.flatnonzero(np.bincount(g, minlength=self._cap)))
