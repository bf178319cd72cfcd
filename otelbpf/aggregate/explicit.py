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

from otelbpf.aggregate.exponential import _exact_int_sums
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
        self._sum: list[int | float] = []
        self._min: list[int | float | None] = []
        self._max: list[int | float | None] = []
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
        self._sum.extend([0] * extra)
        self._min.extend([None] * extra)
        self._max.extend([None] * extra)
        self._cap = capacity

    def count(self, group: int) -> int:
        return int(self._counts[group].sum()) if group < self._cap else 0

    def copy(self) -> ExplicitHistograms:
        other = ExplicitHistograms.__new__(ExplicitHistograms)
        other.bounds, other.dropped_nonfinite, other._cap = self.bounds, self.dropped_nonfinite, self._cap
        other._counts = self._counts.copy()
        other._sum, other._min, other._max = list(self._sum), list(self._min), list(self._max)
        return other

    def reset(self, groups: Sequence[int] | np.ndarray | None = None) -> None:
        rows = np.arange(self._cap) if groups is None else np.asarray(groups, dtype=np.intp)
        self._counts[rows] = 0
        for g in rows.tolist():
            self._sum[g], self._min[g], self._max[g] = 0, None, None

    def point(self, group: int, attributes: Attributes, start_ns: int, now_ns: int) -> HistogramPoint:
        self._ensure(group + 1)
        counts = self._counts[group].tolist()
        return HistogramPoint(attributes=attributes, start_time_ns=start_ns, time_ns=now_ns, count=sum(counts),
                              sum=self._sum[group], bounds=self.bounds, bucket_counts=tuple(counts),
                              min=self._min[group], max=self._max[group])

    def record(self, group_ids, values, weights=1) -> None:
        """Add events: value `values[i]` to series `group_ids[i]`, counted `weights` (int or array) times."""
        g = np.asarray(group_ids, dtype=np.intp).reshape(-1)
        v = np.asarray(values).reshape(-1)
        if v.dtype.kind not in "iuf":
            v = v.astype(np.float64)
        if g.shape != v.shape:
            raise ValueError(f"group_ids ({g.size}) and values ({v.size}) differ in length")
        w = None
        if np.ndim(weights) != 0:
            w = np.asarray(weights, dtype=np.int64).reshape(-1)
            if w.shape != v.shape:
                raise ValueError("weights must be an int or match values in length")
            if w.size and w.min() < 0:
                raise ValueError("weights must be >= 0")
        elif int(weights) < 0:
            raise ValueError("weights must be >= 0")
        elif int(weights) == 0:
            return
        elif int(weights) != 1:
            w = np.full(v.shape, int(weights), dtype=np.int64)
        if v.dtype.kind == "f":
            finite = np.isfinite(v)
            if not finite.all():
                self.dropped_nonfinite += int(np.count_nonzero(~finite))
                g, v = g[finite], v[finite]
                w = None if w is None else w[finite]
        if w is not None and not (keep := w > 0).all():
            g, v, w = g[keep], v[keep], w[keep]
        if v.size == 0:
            return
        if g.min() < 0:
            raise ValueError("group ids must be >= 0")
        self._ensure(int(g.max()) + 1)
        width = len(self.bounds) + 1
        flat = self._counts.reshape(-1)
        cells = g * width + bucket_indexes(v, self.bounds)
        if w is None:
            flat += np.bincount(cells, minlength=flat.size)
        else:
            np.add.at(flat, cells, w)
        self._record_stats(g, v, w)

    def _record_stats(self, g: np.ndarray, v: np.ndarray, w: np.ndarray | None) -> None:
        touched = np.flatnonzero(np.bincount(g, minlength=self._cap))
        if v.dtype.kind == "f":
            lo, hi = np.full(self._cap, np.inf), np.full(self._cap, -np.inf)
            # Sequentially from the running sum, in event order: the SDK's `sum += v`, same rounding.
            sums = np.zeros(self._cap)
            sums[touched] = [float(self._sum[grp]) for grp in touched.tolist()]
            np.add.at(sums, g, v if w is None else v * w)
            new_sums = dict(zip(touched.tolist(), sums[touched].tolist()))
        else:
            info = np.iinfo(v.dtype)
            lo = np.full(self._cap, info.max, dtype=v.dtype)
            hi = np.full(self._cap, info.min, dtype=v.dtype)
            exact = _exact_int_sums(g, v, w, self._cap)
            new_sums = {grp: self._sum[grp] + exact[grp] for grp in touched.tolist()}
        np.minimum.at(lo, g, v)
        np.maximum.at(hi, g, v)
        mins, maxs = lo[touched].tolist(), hi[touched].tolist()
        for k, grp in enumerate(touched.tolist()):
            self._sum[grp] = new_sums[grp]
            old = self._min[grp]
            self._min[grp] = mins[k] if old is None or mins[k] < old else old
            old = self._max[grp]
            self._max[grp] = maxs[k] if old is None or maxs[k] > old else old
