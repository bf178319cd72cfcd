"""Per-metric series limit: past it, new attribute sets fold into one overflow series.

Like the OTel SDK's cardinality limit: a metric keeps at most ``limit`` series, the first
``limit - 1`` distinct attribute sets it sees plus one series with attributes
``{"otel.metric.overflow": true}`` that aggregates everything else (the overflow series counts
toward the limit). Admitted sets are remembered across intervals — a cumulative series must not
flap between its own identity and the overflow series — for the limiter's life (a reloaded
program gets a new one), unless `release`d (a stream series that went idle).

Two entry points: `apply(metric)` for whole metrics built from maps (folded points are merged into
the overflow point, see also `MonotonicSeries`), and `admit(metric_name, attributes)` for stream
aggregators, which decide once per new label set.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from otelbpf.aggregate.delta import downscale_buckets, subtract_point
from otelbpf.metrics.model import (Attributes, ExponentialHistogramPoint, HistogramPoint, Metric, NumberPoint,
                                   Point)

__all__ = ["CardinalityLimiter", "MonotonicSeries", "OVERFLOW_ATTRIBUTES", "merge_points"]

OVERFLOW_ATTRIBUTES: Attributes = (("otel.metric.overflow", True),)


class CardinalityLimiter:
    """At most `limit` series per metric name (limit - 1 admitted attribute sets + the overflow series)."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"cardinality limit must be >= 1, got {limit}")
        self.limit = limit
        self._admitted: dict[str, set[Attributes]] = {}

    def admit(self, metric: str, attributes: Attributes) -> bool:
        """True when `attributes` has (or now gets) a series of its own."""
        admitted = self._admitted.setdefault(metric, set())
        if attributes in admitted:
            return True
        if len(admitted) < self.limit - 1:
            admitted.add(attributes)
            return True
        return False

    def admitted_set(self, metric: str, attributes: Attributes) -> bool:
        """True when `attributes` has a series of its own (without admitting it)."""
        return attributes in self._admitted.get(metric, ())

    def release(self, metric: str, attributes: Attributes) -> None:
        """`attributes` no longer counts toward the limit (its series is gone): the budget it held
        is free for the next new attribute set."""
        self._admitted.get(metric, set()).discard(attributes)

    def apply(self, metric: Metric) -> Metric:
        """The metric with points beyond the limit merged into one overflow point."""
        kept: list[Point] = []
        overflow: Point | None = None
        for point in metric.points:
            if self.admit(metric.name, point.attributes):
                kept.append(point)
                continue
            point = replace(point, attributes=OVERFLOW_ATTRIBUTES)
            overflow = point if overflow is None else merge_points(overflow, point)
        if overflow is None:
            return metric
        return replace(metric, points=tuple(kept) + (overflow,))


def _add_buckets(a_off: int, a: np.ndarray, b_off: int, b: np.ndarray) -> tuple[int, tuple[int, ...]]:
    if a.size == 0:
        return (b_off, tuple(b.tolist())) if b.size else (0, ())
    if b.size == 0:
        return a_off, tuple(a.tolist())
    lo = min(a_off, b_off)
    out = np.zeros(max(a_off + a.size, b_off + b.size) - lo, dtype=np.int64)
    out[a_off - lo:a_off - lo + a.size] += a
    out[b_off - lo:b_off - lo + b.size] += b
    return lo, tuple(out.tolist())


def _min(a, b):
    return None if a is None or b is None else min(a, b)


def _max(a, b):
    return None if a is None or b is None else max(a, b)


def merge_points(a: Point, b: Point) -> Point:
    """The point of the union of two series' observations (a's attributes, widest time range).

    Explicit histograms must share bounds; exponential histograms are merged at the coarser scale
    (not re-limited to a max_size).
    """
    start, time = min(a.start_time_ns, b.start_time_ns), max(a.time_ns, b.time_ns)
    if isinstance(a, NumberPoint) and isinstance(b, NumberPoint):
        return NumberPoint(a.attributes, a.value + b.value, time, start)
    if isinstance(a, HistogramPoint) and isinstance(b, HistogramPoint):
        if a.bounds != b.bounds:
            raise ValueError("cannot merge explicit histograms with different bounds")
        counts = tuple(x + y for x, y in zip(a.bucket_counts, b.bucket_counts))
        return HistogramPoint(a.attributes, start, time, a.count + b.count, a.sum + b.sum, a.bounds, counts,
                              _min(a.min, b.min), _max(a.max, b.max))
    if isinstance(a, ExponentialHistogramPoint) and isinstance(b, ExponentialHistogramPoint):
        scale = min(a.scale, b.scale)
        sides = []
        for a_off, a_counts, b_off, b_counts in ((a.positive_offset, a.positive_counts, b.positive_offset,
                                                  b.positive_counts),
                                                 (a.negative_offset, a.negative_counts, b.negative_offset,
                                                  b.negative_counts)):
            ao, aa = downscale_buckets(a_off, a_counts, a.scale - scale)
            bo, bb = downscale_buckets(b_off, b_counts, b.scale - scale)
            sides.append(_add_buckets(ao, aa, bo, bb))
        (pos_off, pos), (neg_off, neg) = sides
        return ExponentialHistogramPoint(
            attributes=a.attributes, start_time_ns=start, time_ns=time, count=a.count + b.count,
            sum=a.sum + b.sum, scale=scale, zero_count=a.zero_count + b.zero_count, positive_offset=pos_off,
            positive_counts=pos, negative_offset=neg_off, negative_counts=neg,
            zero_threshold=max(a.zero_threshold, b.zero_threshold), min=_min(a.min, b.min), max=_max(a.max, b.max))
    raise TypeError(f"cannot merge {type(a).__name__} with {type(b).__name__}")


class MonotonicSeries:
    """Keeps every cumulative series of map metrics from going down when the kernel drops keys.

    An LRU map evicts keys, a program may delete them, and a key can come back from zero. Read as
    is, such a series goes down with the same start time: cumulative readers see a counter reset
    and the delta converter re-sends the whole series. So, per metric and attribute set:

    - a series whose value went down (its key was recreated) has its last value folded into a
      running total that is added to it from then on;
    - an admitted series missing from a read is exported with its last value (plus its running
      total): a key absent from one read and back in the next keeps counting where it was, and
      an evicted one keeps its count;
    - a folded series (one counted in the overflow series) that goes down or goes missing has its
      last value folded into the overflow series' running total, so the overflow series never
      goes down either; its own memory is freed.

    Exact while each attribute set comes from one key (the rule of map labels); when a decoder
    maps several keys to one attribute set and one of them is evicted, the survivors' last values
    are folded in as well and counted twice.
    """

    def __init__(self, limiter: CardinalityLimiter):
        self.limiter = limiter
        self._last: dict[str, dict[Attributes, Point]] = {}
        self._carried: dict[str, dict[Attributes, Point]] = {}
        self._retired: dict[str, Point] = {}

    def apply(self, metric: Metric, now_ns: int) -> Metric:
        """`metric` (one read of a map at `now_ns`) with running totals added and then the
        cardinality limit applied (`CardinalityLimiter.apply`)."""
        name = metric.name
        last = self._last.setdefault(name, {})
        carried = self._carried.setdefault(name, {})
        now = now_ns
        points: list[Point] = []
        seen = set()
        for point in metric.points:
            attrs = point.attributes
            seen.add(attrs)
            before = last.get(attrs)
            if before is not None and subtract_point(point, before, metric.monotonic) is None:
                self._fold(name, attrs, before)
            last[attrs] = point
            total = carried.get(attrs)
            points.append(point if total is None else merge_points(point, total))
        for attrs in [a for a in last if a not in seen]:
            before = last[attrs]
            if self.limiter.admitted_set(name, attrs):
                total = carried.get(attrs)
                held = replace(before, time_ns=now)
                points.append(held if total is None else merge_points(held, total))
            else:
                del last[attrs]
                self._fold(name, attrs, before)
        limited = self.limiter.apply(replace(metric, points=tuple(sorted(points, key=_by_attributes))))
        retired = self._retired.get(name)
        if retired is None:
            return limited
        kept = [p for p in limited.points if p.attributes != OVERFLOW_ATTRIBUTES]
        overflow = [p for p in limited.points if p.attributes == OVERFLOW_ATTRIBUTES]
        stamp = replace(retired, time_ns=now)
        merged = merge_points(overflow[0], stamp) if overflow else stamp
        return replace(limited, points=tuple(kept) + (merged,))

    def _fold(self, name: str, attrs: Attributes, point: Point) -> None:
        if self.limiter.admitted_set(name, attrs):
            carried = self._carried[name]
            carried[attrs] = point if attrs not in carried else merge_points(carried[attrs], point)
        else:
            point = replace(point, attributes=OVERFLOW_ATTRIBUTES)
            retired = self._retired.get(name)
            self._retired[name] = point if retired is None else merge_points(retired, point)


def _by_attributes(point: Point):
    return point.attributes
