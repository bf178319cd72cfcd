"""Vectorised exponential histograms for event streams, bucket-for-bucket identical to the OTel SDK.

Many series live in one `ExponentialHistograms` (group ids 0..G-1); a batch of events is recorded
with a handful of numpy passes (bit tricks for the exponent, a 64K-entry mantissa table for scales
1..10, `log` only above that or next to a bucket boundary, `bincount`/`ufunc.at` per group), in
cache-sized slices, instead of ~20 µs per event in the SDK. Bucket counts of all series live in
two dense (series, max_size) int64 tables (positive, negative): 16 * max_size bytes per series,
so keep the number of groups bounded (see `cardinality.py`).

Bucket i at scale s covers (base^i, base^(i+1)], base = 2^(2^-s), upper bound inclusive. The index
of a value is the SDK's, not merely a correct one:
- scale <= 0 ("exponent mapping"): from the IEEE-754 exponent, exact powers of two one bucket lower
  (2^k belongs to (2^(k-1), 2^k], index k-1 at scale 0), shifted right by -scale.
- scale > 0 ("logarithm mapping"): exact powers of two as above; otherwise
  floor(log(v) * ldexp(1/ln 2, scale)) as the SDK computes it in float64, so values within rounding
  error of a boundary land where the SDK puts them. numpy's log may differ from libm's by an ulp,
  so values whose product is that close to an integer are recomputed with `math.log`.

Like the SDK, each series starts at `max_scale` and is downscaled (by the minimal amount) whenever
the positive or the negative index span would exceed `max_size`; both ranges share the scale.
Recording a batch is order-independent except in one place, handled exactly: the SDK's logarithm
mapping and exponent mapping can disagree by one bucket for values within an ulp or so of a power
of two, so whether such a value was recorded before or after its series' scale first dropped to 0
matters; a group whose batch makes that crossing *and* holds such a value is replayed event by event.

Sum, min and max follow the SDK's `sum += v` (see `series_stats.py`, shared with the
explicit-bucket histograms).

Differences from the SDK, on purpose: where the SDK's index span after a downscale is still one
bucket too wide (the case above) it aliases two buckets in its ring buffer; we downscale once more.
Non-finite values are dropped (counted in `dropped_nonfinite`) instead of poisoning the series.
`weights` count an event w times (the sum adds v*w). The state is cumulative: we do not emulate
the SDK's per-collection delta merging (which, e.g., forces scale 0 after an all-zero interval).
A series holding only zeros reports scale 0, as the SDK does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from otelbpf.aggregate.series_stats import SeriesStats, batch
from otelbpf.metrics.model import Attributes, ExponentialHistogramPoint

__all__ = ["ExponentialHistograms", "value_to_index", "scale_change", "MIN_SCALE", "MAX_SCALE"]

MIN_SCALE = -10
MAX_SCALE = 20

_MANTISSA_MASK = (1 << 52) - 1
_INV_LN2 = 1 / math.log(2)  # the SDK's scale factor is ldexp(1 / log(2), scale): same rounding
_MIN_NORMAL_EXPONENT = -1022
_MAX_NORMAL_EXPONENT = 1023
# A float64 log from numpy may differ from libm's by a few ulps; products this close to an
# integer (relative to |log2 v| * 2^scale) are recomputed with math.log to match the SDK exactly.
_RECHECK_REL = 2.0**-44


def _exponent_parts(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IEEE-754 unbiased exponent and "is an exact power of two" for positive finite float64."""
    bits = a.view(np.int64)
    exponent = (bits >> 52) - 1023
    pow2 = (bits & _MANTISSA_MASK) == 0
    return exponent, pow2


def _exponent_index(exponent: np.ndarray, pow2: np.ndarray, scale) -> np.ndarray:
    """SDK ExponentMapping.map_to_index, scale <= 0 (scale: int or int array).

    Subnormals have exponent -1023 and a non-zero mantissa, which yields the SDK's
    min-normal-lower-boundary index at every scale without a special case.
    """
    index0 = exponent - pow2
    return index0 >> (-np.asarray(scale, dtype=np.int64))


def _scalar_log_index(x: float, scale: int) -> int:
    """SDK LogarithmMapping.map_to_index for one positive finite value, scale > 0."""
    if x <= 2.2250738585072014e-308:
        return (_MIN_NORMAL_EXPONENT << scale) - 1
    mantissa, exp = math.frexp(x)
    if mantissa == 0.5:
        return ((exp - 1) << scale) - 1
    return min(math.floor(math.log(x) * math.ldexp(_INV_LN2, scale)), ((_MAX_NORMAL_EXPONENT + 1) << scale) - 1)


def _scalar_index(x: float, scale: int) -> int:
    if scale > 0:
        return _scalar_log_index(x, scale)
    if x < 2.2250738585072014e-308:
        exponent, pow2 = -1023, False
    else:
        mantissa, exp = math.frexp(x)
        exponent, pow2 = exp - 1, mantissa == 0.5
    return (exponent - pow2) >> -scale


_CHUNK = 1 << 17  # events per pass: keeps the per-event arrays in the CPU cache
_TABLE_BITS = 16
_TABLE_MAX_SCALE = 10


@functools.lru_cache(maxsize=None)
def _mantissa_table(scale: int) -> np.ndarray:
    """Sub-octave bucket of each cell of the top 16 mantissa bits at `scale`, or -1.

    A cell [1 + c/2^16, 1 + (c+1)/2^16) whose whole range (widened by 1e-9 index units, far more
    than the SDK's float64 rounding error of < 4e-10 units) lies inside one bucket gets that
    bucket; cells touching a boundary — including cell 0, which holds exact powers of two, and
    the last cell, next to the next power of two — are -1 and go through the log path.
    """
    cells = np.arange(1 << _TABLE_BITS, dtype=np.float64)
    lower = np.ldexp(np.log2(1.0 + cells / (1 << _TABLE_BITS)), scale)
    upper = np.ldexp(np.log2(1.0 + (cells + 1) / (1 << _TABLE_BITS)), scale)
    lo, hi = np.floor(lower - 1e-9), np.floor(upper + 1e-9)
    table = np.where(lo == hi, lo, -1).astype(np.int32)
    table[0] = table[-1] = -1
    return table


def _table_index(a: np.ndarray, scale: int) -> np.ndarray:
    """SDK LogarithmMapping.map_to_index for 1 <= scale <= 10 without a log for almost every value."""
    bits = a.view(np.int64)
    exponent = bits >> 52
    exponent -= 1023
    cell = bits >> (52 - _TABLE_BITS)
    cell &= (1 << _TABLE_BITS) - 1
    sub = _mantissa_table(scale)[cell]
    exponent <<= scale
    exponent += sub
    index = exponent
    slow = sub < 0
    if float(a.min()) < 2.2250738585072014e-308:
        slow |= a < 2.2250738585072014e-308
    slow = np.flatnonzero(slow)
    if slow.size:
        index[slow] = _log_index(a[slow], scale)
    return index


def _log_index(a: np.ndarray, scale) -> np.ndarray:
    """SDK LogarithmMapping.map_to_index, scale >= 1 (scale: int or int array broadcast with a)."""
    uniform = np.ndim(scale) == 0
    y = np.log(a)
    y *= _INV_LN2
    ymax = max(abs(float(y.max())), abs(float(y.min())))
    smax = int(scale) if uniform else int(np.max(scale))
    if uniform:
        y *= 2.0**smax  # exact: power-of-two scaling commutes with rounding
    else:
        y *= np.ldexp(1.0, np.asarray(scale, dtype=np.int32))
    ft = np.floor(y)
    index = ft.astype(np.int64)
    # distance of the product from the nearest integer: |frac - 0.5| close to 0.5
    y -= ft
    y -= 0.5
    np.abs(y, out=y)
    tol = (ymax + 1.0) * (2.0**smax) * _RECHECK_REL
    suspect = np.flatnonzero(y > 0.5 - tol)
    if suspect.size:
        # exact powers of two are near-integers too, but take the exact path below
        suspect = suspect[(a[suspect].view(np.int64) & _MANTISSA_MASK) != 0]
    if suspect.size:
        scales = np.broadcast_to(np.asarray(scale, dtype=np.int64), a.shape)
        for i in suspect.tolist():
            index[i] = _scalar_log_index(float(a[i]), int(scales[i]))
    bits = a.view(np.int64)
    exact = np.flatnonzero((bits & _MANTISSA_MASK) == 0)
    if exact.size:
        e = (bits[exact] >> 52) - 1023
        s = scale if uniform else np.asarray(scale)[exact]
        index[exact] = (e << s) - 1
    if float(a.min()) <= 2.2250738585072014e-308:
        tiny = np.flatnonzero(a <= 2.2250738585072014e-308)
        s = scale if uniform else np.asarray(scale)[tiny]
        index[tiny] = (_MIN_NORMAL_EXPONENT << np.asarray(s, dtype=np.int64)) - 1
    if ymax >= 1023:
        np.minimum(index, ((_MAX_NORMAL_EXPONENT + 1) << np.asarray(scale, dtype=np.int64)) - 1, out=index)
    return index


def _index_at_scale(a: np.ndarray, scale: int) -> np.ndarray:
    if scale <= 0:
        return _exponent_index(*_exponent_parts(a), scale)
    if scale <= _TABLE_MAX_SCALE:
        return _table_index(a, scale)
    return _log_index(a, scale)


def value_to_index(values, scale: int) -> np.ndarray:
    """Bucket index of |v| for each value at `scale`, exactly as the OTel SDK maps it.

    Values must be finite and non-zero (zero belongs in zero_count). Returns int64.
    """
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise ValueError(f"scale {scale} outside [{MIN_SCALE}, {MAX_SCALE}]")
    a = np.abs(np.asarray(values, dtype=np.float64)).reshape(-1)
    if not np.all(np.isfinite(a)) or np.any(a == 0):
        raise ValueError("value_to_index needs finite, non-zero values")
    return _index_at_scale(a, scale)


def scale_change(low, high, max_size: int) -> np.ndarray:
    """Minimal right shift c (per element) such that (high >> c) - (low >> c) < max_size."""
    low = np.asarray(low, dtype=np.int64).copy()
    high = np.asarray(high, dtype=np.int64).copy()
    change = np.zeros(np.broadcast(low, high).shape, dtype=np.int64)
    while True:
        need = (high - low) >= max_size
        if not need.any():
            return change
        change += need
        low = np.where(need, low >> 1, low)
        high = np.where(need, high >> 1, high)


class _Side:
    """Positive or negative buckets of every series: a dense (capacity, max_size) table.

    Row g holds bucket `start[g] + j` in column j; `used[g]` says whether the row holds anything.
    """

    def __init__(self, capacity: int, width: int):
        self.width = width
        self.counts = np.zeros((capacity, width), dtype=np.int64)
        self.start = np.zeros(capacity, dtype=np.int64)
        self.end = np.zeros(capacity, dtype=np.int64)
        self.used = np.zeros(capacity, dtype=bool)

    def grow(self, capacity: int) -> None:
        extra = capacity - len(self.start)
        self.counts = np.vstack([self.counts, np.zeros((extra, self.width), dtype=np.int64)])
        self.start = np.concatenate([self.start, np.zeros(extra, dtype=np.int64)])
        self.end = np.concatenate([self.end, np.zeros(extra, dtype=np.int64)])
        self.used = np.concatenate([self.used, np.zeros(extra, dtype=bool)])

    def copy(self) -> _Side:
        other = _Side.__new__(_Side)
        other.width = self.width
        other.counts, other.start = self.counts.copy(), self.start.copy()
        other.end, other.used = self.end.copy(), self.used.copy()
        return other

    def rebin(self, rows: np.ndarray, shift: np.ndarray, new_start: np.ndarray) -> None:
        """Shift rows' indices right by `shift` and re-anchor them at `new_start` (same length as rows)."""
        if rows.size == 0:
            return
        w = self.width
        old = self.counts[rows]
        idx = (self.start[rows][:, None] + np.arange(w)) >> shift[:, None]
        col = idx - new_start[:, None]
        nz = old != 0
        flat = (np.arange(rows.size)[:, None] * w + col)[nz]
        out = np.zeros(rows.size * w, dtype=np.int64)
        np.add.at(out, flat, old[nz])
        self.counts[rows] = out.reshape(rows.size, w)
        used = self.used[rows]
        self.start[rows] = np.where(used, new_start, self.start[rows])
        self.end[rows] = np.where(used, self.end[rows] >> shift, self.end[rows])

    def clear(self, rows) -> None:
        self.counts[rows] = 0
        self.start[rows] = 0
        self.end[rows] = 0
        self.used[rows] = False


class ExponentialHistograms:
    """Exponential histograms of many series, recorded in batches.

    `record(group_ids, values, weights=1)`: group_ids are ints >= 0 (the table grows as needed).
    `point(group, attributes, start_ns, now_ns)` builds the cumulative point of one series;
    `reset(groups)` clears series (delta temporality); `copy()` snapshots everything.
    """

    def __init__(self, max_size: int = 160, max_scale: int = MAX_SCALE, *, capacity: int = 16):
        if not 2 <= max_size <= 16384:
            raise ValueError(f"max_size {max_size} must be within [2, 16384]")
        if not MIN_SCALE <= max_scale <= MAX_SCALE:
            raise ValueError(f"max_scale {max_scale} must be within [{MIN_SCALE}, {MAX_SCALE}]")
        self.max_size = max_size
        self.max_scale = max_scale
        self.dropped_nonfinite = 0
        self._cap = 0
        self._scale = np.zeros(0, dtype=np.int64)
        self._count = np.zeros(0, dtype=np.int64)
        self._zero = np.zeros(0, dtype=np.int64)
        self._stats = SeriesStats()
        self._pos = _Side(0, max_size)
        self._neg = _Side(0, max_size)
        self._ensure(capacity)

    # -- state -------------------------------------------------------------------------------------

    @property
    def n_groups(self) -> int:
        """Capacity: every group id below it is valid (unrecorded groups are empty)."""
        return self._cap

    def _ensure(self, capacity: int) -> None:
        if capacity <= self._cap:
            return
        capacity = max(capacity, 2 * self._cap)
        extra = capacity - self._cap
        self._scale = np.concatenate([self._scale, np.full(extra, self.max_scale, dtype=np.int64)])
        self._count = np.concatenate([self._count, np.zeros(extra, dtype=np.int64)])
        self._zero = np.concatenate([self._zero, np.zeros(extra, dtype=np.int64)])
        self._stats.grow(capacity)
        self._pos.grow(capacity)
        self._neg.grow(capacity)
        self._cap = capacity

    def count(self, group: int) -> int:
        return int(self._count[group]) if group < self._cap else 0

    def scale(self, group: int) -> int:
        """The scale the series' point reports (0 while it holds only zeros, like the SDK)."""
        if group >= self._cap or self._count[group] == self._zero[group]:
            return 0
        return int(self._scale[group])

    def copy(self) -> ExponentialHistograms:
        other = ExponentialHistograms.__new__(ExponentialHistograms)
        other.max_size, other.max_scale = self.max_size, self.max_scale
        other.dropped_nonfinite = self.dropped_nonfinite
        other._cap = self._cap
        other._scale, other._count, other._zero = self._scale.copy(), self._count.copy(), self._zero.copy()
        other._stats = self._stats.copy()
        other._pos, other._neg = self._pos.copy(), self._neg.copy()
        return other

    def reset(self, groups: Sequence[int] | np.ndarray | None = None) -> None:
        """Empty the given series (all when None); they restart at max_scale."""
        rows = np.arange(self._cap) if groups is None else np.asarray(groups, dtype=np.intp)
        self._scale[rows] = self.max_scale
        self._count[rows] = 0
        self._zero[rows] = 0
        self._stats.reset(rows.tolist())
        self._pos.clear(rows)
        self._neg.clear(rows)

    def point(self, group: int, attributes: Attributes, start_ns: int, now_ns: int) -> ExponentialHistogramPoint:
        """The cumulative point of one series (an empty point for a group never recorded)."""
        if group >= self._cap:
            self._ensure(group + 1)
        pos_off, pos = self._side_counts(self._pos, group)
        neg_off, neg = self._side_counts(self._neg, group)
        return ExponentialHistogramPoint(
            attributes=attributes,
            start_time_ns=start_ns,
            time_ns=now_ns,
            count=int(self._count[group]),
            sum=self._stats.sum[group],
            scale=self.scale(group),
            zero_count=int(self._zero[group]),
            positive_offset=pos_off,
            positive_counts=pos,
            negative_offset=neg_off,
            negative_counts=neg,
            min=self._stats.min[group],
            max=self._stats.max[group],
        )

    @staticmethod
    def _side_counts(side: _Side, group: int) -> tuple[int, tuple[int, ...]]:
        if not side.used[group]:
            return 0, ()
        n = int(side.end[group] - side.start[group]) + 1
        return int(side.start[group]), tuple(side.counts[group, :n].tolist())

    # -- recording ---------------------------------------------------------------------------------

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

        # Recording consecutive slices is exactly recording the whole (like the SDK, one value at a
        # time); slices that fit in the CPU cache make every numpy pass several times cheaper.
        for i in range(0, v.size, _CHUNK):
            gc, vc = g[i:i + _CHUNK], v[i:i + _CHUNK]
            wc = None if w is None else w[i:i + _CHUNK]
            vf = vc.astype(np.float64, copy=False)
            touched, vmin, vmax = self._record_stats(gc, vc, vf, wc)
            self._record_buckets(gc, vf, wc, touched, vmin, vmax)

    def _record_stats(self, g: np.ndarray, v: np.ndarray, vf: np.ndarray, w: np.ndarray | None):
        """count, zero_count, sum, min, max (independent of scale and buckets).

        Returns the touched groups and the batch's per-group min and max values (all groups).
        """
        cap = self._cap
        batch_count = np.bincount(g, minlength=cap) if w is None else np.bincount(g, weights=w, minlength=cap)
        batch_count = batch_count.astype(np.int64)
        touched = np.flatnonzero(batch_count)
        self._count += batch_count
        if float(vf.min()) <= 0 and (zero := vf == 0).any():
            zw = None if w is None else w[zero]
            self._zero += np.bincount(g[zero], weights=zw, minlength=cap).astype(np.int64)

        lo, hi = self._stats.record(g, v, w, touched, vf)
        return touched, lo, hi

    def _record_buckets(self, g: np.ndarray, vf: np.ndarray, w: np.ndarray | None, touched: np.ndarray,
                        vmin: np.ndarray, vmax: np.ndarray) -> None:
        cap = self._cap
        if float(vf.min()) > 0:  # the common case: every value positive, no masking at all
            mixed = False
            a, row = vf, g
        else:
            # Rows of a (3 * cap) table: positive values of group g at g, negative ones at cap + g,
            # zeros at 2 * cap + g (kept in place rather than filtered out; ignored).
            mixed = True
            negative = vf < 0
            zero = vf == 0
            a = np.abs(vf)
            any_zero = bool(zero.any())
            if any_zero:
                a[zero] = 1.5  # any value off a bucket boundary; its index is then discarded
            row = negative * cap
            row += zero * (2 * cap)
            row += g
        # Indices are computed at scale_at = scale - pre: `pre` skips, for fresh series still at a
        # high scale, the part of this batch's downscale already implied by its min and max values,
        # so most values take the table path instead of a log. Shifting a logarithm-mapping index
        # right is exactly the index at the lower scale, so nothing changes but the cost.
        pre = np.zeros(cap, dtype=np.int64)
        if not mixed and int(self._scale[touched].max()) > _TABLE_MAX_SCALE:
            pre = self._implied_change(touched, vmin, vmax)
        scale_at = self._scale - pre
        scales = scale_at[touched]
        uniform = int(scales[0]) if scales.min() == scales.max() else None
        index = self._index_at(a, g, uniform, scale_at)
        if mixed and any_zero:
            index[zero] = 0

        big = np.iinfo(np.int64).max
        if mixed:
            lo = np.full(3 * cap, big, dtype=np.int64)
            hi = np.full(3 * cap, -big, dtype=np.int64)
            np.minimum.at(lo, row, index)
            np.maximum.at(hi, row, index)
            pos_lo, neg_lo, pos_hi, neg_hi = lo[:cap], lo[cap:2 * cap], hi[:cap], hi[cap:2 * cap]
        else:
            pos_lo, pos_hi = self._positive_ranges(g, index, touched, vmin, vmax, scale_at)
            neg_lo, neg_hi = np.full(cap, big, dtype=np.int64), np.full(cap, -big, dtype=np.int64)
        change = np.maximum(self._side_change(self._pos, pos_lo, pos_hi, pre),
                            self._side_change(self._neg, neg_lo, neg_hi, pre))  # from scale_at
        total = pre + change  # from the series' scale

        crossing = (self._scale > 0) & (self._scale - total <= 0)
        if crossing.any():
            # The SDK's log and exponent mappings disagree for some values next to powers of two;
            # for those, when the scale crossed 0 during the batch decides the bucket: replay.
            sel = np.flatnonzero(crossing[g] & (vf != 0))
            exponent, pow2 = _exponent_parts(a[sel])
            disputed = np.unique(g[sel[(index[sel] >> scale_at[g[sel]]) != (exponent - pow2)]])
            if disputed.size:
                for grp in disputed.tolist():
                    mine = np.flatnonzero((g == grp) & (vf != 0))
                    self._replay(grp, vf[mine], None if w is None else w[mine])
                keep = ~np.isin(g, disputed)
                g, row, index = g[keep], row[keep], index[keep]
                w = None if w is None else w[keep]
                change[disputed] = total[disputed] = 0
                pos_lo[disputed] = neg_lo[disputed] = big
                pos_hi[disputed] = neg_hi[disputed] = -big
                if g.size == 0:
                    return

        changed = np.flatnonzero(total)
        if changed.size:
            self._scale[changed] -= total[changed]
            if change.any():
                index >>= change[g]
        bases = []
        for k, (side, lo, hi) in enumerate(((self._pos, pos_lo, pos_hi), (self._neg, neg_lo, neg_hi))):
            has = lo <= hi  # groups with values of this sign in the batch
            lo_s, hi_s = lo >> change, hi >> change
            new_start = np.where(side.used, np.minimum(side.start >> total, lo_s), lo_s)
            moved = np.flatnonzero(side.used & ((total > 0) | (new_start != side.start)))
            side.rebin(moved, total[moved], new_start[moved])
            side.end = np.where(has, np.where(side.used, np.maximum(side.end, hi_s), hi_s), side.end)
            side.start = np.where(has, new_start, side.start)
            side.used |= has
            bases.append(np.arange(k * cap, (k + 1) * cap, dtype=np.int64) * side.width - side.start)
        # flat position in the stacked (pos, neg) tables: row * width + (index - start[row]);
        # zeros (index set to 0) land in one spare cell past both tables
        width = self.max_size
        size = 2 * cap * width
        if mixed:
            bases.append(np.full(cap, size, dtype=np.int64))
        key = np.concatenate(bases)[row] if mixed else bases[0][row]
        key += index
        counts = np.bincount(key, minlength=size + 1) if w is None else np.bincount(key, weights=w, minlength=size + 1)
        counts = counts[:size].astype(np.int64).reshape(2, cap, width)
        self._pos.counts += counts[0]
        if mixed:
            self._neg.counts += counts[1]

    @staticmethod
    def _index_at(a: np.ndarray, g: np.ndarray, uniform: int | None, group_scales: np.ndarray) -> np.ndarray:
        """SDK index of each value at its group's scale (`uniform` when all share one)."""
        if uniform is not None:
            return _index_at_scale(a, uniform)
        scales = group_scales[g]
        lo, hi = int(scales.min()), int(scales.max())
        if 0 < lo and hi <= _TABLE_MAX_SCALE:
            # within the logarithm mapping, index at scale s == index at scale S >> (S - s)
            index = _table_index(a, hi)
            index >>= hi - scales
            return index
        out = np.empty(a.size, dtype=np.int64)
        for sc in np.unique(scales).tolist():
            sel = np.flatnonzero(scales == sc)
            out[sel] = _index_at_scale(a[sel], sc)
        return out

    def _implied_change(self, touched, batch_min, batch_max) -> np.ndarray:
        """Per group, the downscale that the batch's extreme values alone already force (stopping
        at scale 1), for groups above the table's scales; 0 elsewhere. Never more than the real
        change: the true index range contains the extremes' indices."""
        pre = np.zeros(self._cap, dtype=np.int64)
        high = touched[self._scale[touched] > _TABLE_MAX_SCALE]
        side = self._pos
        for sc in np.unique(self._scale[high]).tolist():
            groups = high[self._scale[high] == sc]
            lo = _index_at_scale(batch_min[groups].astype(np.float64), sc)
            hi = _index_at_scale(batch_max[groups].astype(np.float64), sc)
            used = side.used[groups]
            lo = np.where(used, np.minimum(side.start[groups], lo), lo)
            hi = np.where(used, np.maximum(side.end[groups], hi), hi)
            pre[groups] = np.minimum(scale_change(lo, hi, self.max_size), sc - 1)
        return pre

    def _positive_ranges(self, g, index, touched, batch_min, batch_max, group_scales):
        """Per group min/max index of an all-positive batch, from each group's min/max value.

        The SDK's index is monotone in the value except next to powers of two at positive scales
        (2^k is mapped exactly while values an ulp below may round up a bucket), so groups whose
        extreme values sit there get their range from every index instead.
        """
        big = np.iinfo(np.int64).max
        lo = np.full(self._cap, big, dtype=np.int64)
        hi = np.full(self._cap, -big, dtype=np.int64)
        vmin = batch_min[touched].astype(np.float64)
        vmax = batch_max[touched].astype(np.float64)
        scales = group_scales[touched]
        both = np.concatenate([vmin, vmax])
        both_scales = np.concatenate([scales, scales])
        index_of_extremes = np.empty(both.size, dtype=np.int64)
        for sc in np.unique(scales).tolist():
            sel = np.flatnonzero(both_scales == sc)
            index_of_extremes[sel] = _index_at_scale(both[sel], int(sc))
        lo[touched], hi[touched] = index_of_extremes[:touched.size], index_of_extremes[touched.size:]
        # a max that is a power of two, or a min within rounding reach below one
        risky = (np.frexp(vmax)[0] == 0.5) | (np.frexp(vmin)[0] > 1 - 1e-11)
        risky = touched[risky & (scales > 0)]
        if risky.size:
            flag = np.zeros(self._cap, dtype=bool)
            flag[risky] = True
            mask = flag[g]
            lo[risky], hi[risky] = big, -big
            np.minimum.at(lo, g[mask], index[mask])
            np.maximum.at(hi, g[mask], index[mask])
        return lo, hi

    def _side_change(self, side: _Side, lo: np.ndarray, hi: np.ndarray, pre: np.ndarray) -> np.ndarray:
        """Downscale needed so the side's state (shifted by `pre`) and the batch range [lo, hi] fit."""
        has = lo <= hi
        low = np.where(side.used, np.minimum(side.start >> pre, lo), lo)
        high = np.where(side.used, np.maximum(side.end >> pre, hi), hi)
        low = np.where(has, low, 0)
        high = np.where(has, high, 0)
        return scale_change(low, high, self.max_size)

    def _replay(self, grp: int, values: np.ndarray, weights: np.ndarray | None) -> None:
        """Record one group's non-zero values one at a time, exactly as the SDK would."""
        rows = np.array([grp])
        for i, x in enumerate(values.tolist()):
            side = self._pos if x > 0 else self._neg
            a = abs(x)
            scale = int(self._scale[grp])
            index = _scalar_index(a, scale)
            # Normally one pass. Re-mapping at the new scale can land one bucket lower than the
            # shifted index (the log/exponent disagreement), leaving the span one too wide: the SDK
            # then wraps its ring buffer and aliases two buckets; we downscale once more instead.
            while side.used[grp]:
                low, high = min(int(side.start[grp]), index), max(int(side.end[grp]), index)
                change = int(scale_change(low, high, self.max_size))
                if not change:
                    break
                for s in (self._pos, self._neg):
                    s.rebin(rows, np.array([change]), s.start[rows] >> change)
                self._scale[grp] = scale = scale - change
                index = _scalar_index(a, scale)
            if not side.used[grp]:
                side.used[grp] = True
                side.start[grp] = side.end[grp] = index
            elif index < side.start[grp]:
                side.rebin(rows, np.array([0]), np.array([index]))
            side.end[grp] = max(int(side.end[grp]), index)
            side.counts[grp, index - side.start[grp]] += 1 if weights is None else int(weights[i])
