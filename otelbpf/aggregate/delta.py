"""Cumulative → delta temporality, against the last *successfully exported* cumulative baseline.

Kernel maps and stream aggregators are cumulative. Some backends want deltas; computing them
against the previous *collection* would lose every interval whose export failed (the OTLP
exporters drop data after their timeout). So the baseline only moves when the caller says the
export went through::

    deltas, token = converter.convert(metrics)
    if exporter.export(deltas):
        converter.commit(token)

After failed exports the next delta still starts at the last exported baseline and so covers every
unsent interval (start_time = the baseline's time).

Per series (metric name, kind and attributes):
- new series: delta = the cumulative point itself, from its own start time;
- reset (start time changed, a monotonic value went down, a bucket count went down, explicit bounds
  or zero threshold changed): delta = the new cumulative point, from its own start time;
- exponential histograms at different scales: the finer one is downscaled to the coarser scale
  (index >> difference, which is exact) before subtracting;
- min/max cannot be known for a difference, so delta histogram points carry none (a new or reset
  series keeps its own);
- a series absent from a committed collection keeps its baseline for `keep_absent` more commits:
  a series missing from one read (a partial read, a key briefly gone) and back in the next gets
  the delta since its last export, not its whole value again. Past that it is gone (a stream
  label set that went idle) and a later reappearance is new. Only metrics passed to that
  `convert` are touched, so one converter may serve several sources converted separately.
- `baseline()` / `restore()` let the agent keep the baseline across its own restarts.
Gauges, UpDownCounters (non-monotonic sums, kept cumulative as the OTel SDKs keep them) and
metrics that are already DELTA pass through unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from otelbpf.metrics.model import (Attributes, ExponentialHistogramPoint, HistogramPoint, Metric, MetricKind,
                                   NumberPoint, Point, Temporality)

__all__ = ["DeltaConverter", "DeltaToken", "subtract_point", "downscale_buckets"]

SeriesKey = tuple[str, MetricKind, Attributes]

# Commits a missing series keeps its baseline: one missed read is covered many times over, and
# series that are really gone (stream label sets gone idle) do not pile up.
DEFAULT_KEEP_ABSENT = 10


@dataclass(frozen=True)
class DeltaToken:
    """What `commit` makes the new baseline: every cumulative point of one `convert` call."""

    generation: int
    points: dict[SeriesKey, Point] = field(repr=False)
    metric_names: frozenset[str] = frozenset()


def downscale_buckets(offset: int, counts: Sequence[int], by: int) -> tuple[int, np.ndarray]:
    """Exponential buckets (offset, counts) at scale s → (offset, counts) at scale s - by (exact merge)."""
    arr = np.asarray(counts, dtype=np.int64)
    if by == 0 or arr.size == 0:
        return offset, arr
    index = (offset + np.arange(arr.size)) >> by
    new_offset = int(index[0])
    out = np.zeros(int(index[-1]) - new_offset + 1, dtype=np.int64)
    np.add.at(out, index - new_offset, arr)
    return new_offset, out


def _subtract_buckets(cur_off: int, cur: np.ndarray, base_off: int, base: np.ndarray) -> tuple[int, np.ndarray] | None:
    """cur - base over the union of their ranges; None when any bucket would go negative."""
    if base.size == 0:
        return cur_off, cur
    if cur.size == 0:
        return None if base.any() else (0, cur)
    lo = min(cur_off, base_off)
    hi = max(cur_off + cur.size, base_off + base.size)
    out = np.zeros(hi - lo, dtype=np.int64)
    out[cur_off - lo:cur_off - lo + cur.size] += cur
    out[base_off - lo:base_off - lo + base.size] -= base
    if (out < 0).any():
        return None
    nz = np.flatnonzero(out)
    if nz.size == 0:
        return 0, out[:0]
    return lo + int(nz[0]), out[nz[0]:nz[-1] + 1]


def subtract_point(cur: Point, base: Point, monotonic: bool = True) -> Point | None:
    """The delta point cur - base starting at base's time, or None when cur is a reset of base."""
    if type(cur) is not type(base) or cur.start_time_ns != base.start_time_ns:
        return None
    if isinstance(cur, NumberPoint):
        if monotonic and cur.value < base.value:
            return None
        return NumberPoint(cur.attributes, cur.value - base.value, cur.time_ns, base.time_ns)
    if isinstance(cur, HistogramPoint):
        if cur.bounds != base.bounds or cur.count < base.count:
            return None
        diff = np.asarray(cur.bucket_counts, dtype=np.int64) - np.asarray(base.bucket_counts, dtype=np.int64)
        if (diff < 0).any():
            return None
        return HistogramPoint(cur.attributes, base.time_ns, cur.time_ns, cur.count - base.count,
                              cur.sum - base.sum, cur.bounds, tuple(diff.tolist()))
    if isinstance(cur, ExponentialHistogramPoint):
        if cur.zero_threshold != base.zero_threshold or cur.count < base.count or cur.zero_count < base.zero_count:
            return None
        scale = min(cur.scale, base.scale)
        sides = []
        for c_off, c_counts, b_off, b_counts in ((cur.positive_offset, cur.positive_counts,
                                                  base.positive_offset, base.positive_counts),
                                                 (cur.negative_offset, cur.negative_counts,
                                                  base.negative_offset, base.negative_counts)):
            c_off, c_arr = downscale_buckets(c_off, c_counts, cur.scale - scale)
            b_off, b_arr = downscale_buckets(b_off, b_counts, base.scale - scale)
            side = _subtract_buckets(c_off, c_arr, b_off, b_arr)
            if side is None:
                return None
            sides.append((side[0], tuple(side[1].tolist())))
        (pos_off, pos), (neg_off, neg) = sides
        return ExponentialHistogramPoint(
            attributes=cur.attributes, start_time_ns=base.time_ns, time_ns=cur.time_ns,
            count=cur.count - base.count, sum=cur.sum - base.sum, scale=scale,
            zero_count=cur.zero_count - base.zero_count, positive_offset=pos_off, positive_counts=pos,
            negative_offset=neg_off, negative_counts=neg, zero_threshold=cur.zero_threshold)
    raise TypeError(f"unsupported point type {type(cur).__name__}")


class DeltaConverter:
    """Turns cumulative metrics into delta metrics; see the module doc for the contract."""

    def __init__(self, keep_absent: int = DEFAULT_KEEP_ABSENT) -> None:
        self._baseline: dict[SeriesKey, Point] = {}
        self._absent: dict[SeriesKey, int] = {}  # commits in a row a baseline's series was missing
        self.keep_absent = keep_absent
        self._generation = itertools.count(1)
        self._committed = 0
        self.resets = 0  # series re-emitted from their own start (reset detected), for self-metrics

    def __len__(self) -> int:
        return len(self._baseline)

    def convert(self, metrics: Sequence[Metric]) -> tuple[list[Metric], DeltaToken]:
        """Delta metrics for `metrics` against the committed baseline, and the token to commit."""
        pending: dict[SeriesKey, Point] = {}
        out: list[Metric] = []
        names = set()
        for metric in metrics:
            # UpDownCounters stay cumulative, as the OTel SDKs' delta temporality preference keeps
            # them: a delta of a value that goes both ways means nothing to a backend on its own.
            if metric.kind is MetricKind.GAUGE or metric.temporality is Temporality.DELTA or (
                    metric.kind is MetricKind.SUM and not metric.monotonic):
                out.append(metric)
                continue
            names.add(metric.name)
            points = []
            for point in metric.points:
                key = (metric.name, metric.kind, point.attributes)
                pending[key] = point
                base = self._baseline.get(key)
                delta = None if base is None else subtract_point(point, base, metric.monotonic)
                if delta is None:
                    if base is not None:
                        self.resets += 1
                    delta = point
                points.append(delta)
            out.append(replace(metric, points=tuple(points), temporality=Temporality.DELTA))
        return out, DeltaToken(next(self._generation), pending, frozenset(names))

    def commit(self, token: DeltaToken) -> None:
        """The export of `token`'s deltas succeeded: its cumulative points become the baseline.

        Committing an older token after a newer one is ignored.
        """
        if token.generation <= self._committed:
            return
        self._committed = token.generation
        baseline = dict(self._baseline)
        for key in self._baseline:
            if key[0] in token.metric_names and key not in token.points:
                missed = self._absent.get(key, 0) + 1
                if missed > self.keep_absent:
                    del baseline[key]
                    self._absent.pop(key, None)
                else:
                    self._absent[key] = missed
        for key in token.points:
            self._absent.pop(key, None)
        baseline.update(token.points)
        self._baseline = baseline

    def baseline(self) -> dict[SeriesKey, Point]:
        """The committed baseline (a copy), for persisting it across a restart of the process."""
        return dict(self._baseline)

    def restore(self, baseline: dict[SeriesKey, Point]) -> None:
        """Start from a baseline saved by `baseline()`: with pinned, still-counting kernel maps,
        the first delta after a restart then covers only what was not exported before it."""
        self._baseline = dict(baseline)

