"""Kernel histogram slots → exact OTLP histogram points (ebpf_exporter-compatible slot semantics).

A histogram map holds one u64 count per (labels, slot) plus the sum of observed values at slot
``bucket_max + 1`` (``fixed``: ``len(bucket_keys)``). With multiplier m:

- ``exp2``: slot k counts (m·2^(k-1), m·2^k]; the lowest slot (``bucket_min``) also holds everything
  at or below its upper bound (slot 0 holds 0 and 1). The BPF helper is ``exp2_slot(v) = ceil(log2 v)``.
- ``exp2zero``: slot 0 counts exactly 0; slot k >= 1 counts (m·2^(k-2), m·2^(k-1)].
- ``linear``: slot k counts (m·(k-1), m·k]; the lowest slot holds everything at or below m·bucket_min.
- ``fixed``: slot i counts (m·keys[i-1], m·keys[i]]; slot 0 holds everything at or below m·keys[0].

Translation, chosen so that no observation ever crosses a bucket boundary:

- ``exp2``/``exp2zero`` with m = 2^j (j may be negative) → `ExponentialHistogramPoint` at scale 0,
  whose bucket i is (2^i, 2^(i+1)]: slot k is bucket k-1+j (exp2) or k-2+j (exp2zero). The lowest
  slot is *not* a bucket: it holds [0, its upper bound], which no exponential bucket can represent,
  so it becomes ``zero_count`` with ``zero_threshold`` = that upper bound (OTLP: |v| <= threshold
  is in the zero bucket). For ``exp2zero`` with bucket_min 0 that is exactly zero, threshold 0.
- Every other multiplier, ``linear`` and ``fixed`` → `HistogramPoint` whose explicit bounds are
  exactly the kernel's slot upper bounds, lowest first. OTLP's first bucket (-inf, bounds[0]] is
  the lowest slot; the highest slot's values go in the bucket ending at its bound; OTLP's final
  (bounds[-1], +inf) bucket stays 0 because nothing above the highest slot's bound is counted.

``aggregation`` chooses between the two: ``"auto"`` (the default) takes the exponential point
where it is exact and explicit bounds otherwise; ``"explicit"`` gives explicit bounds for
exp2/exp2zero too (for backends that store only classic ``le`` buckets): the bounds are each slot's
upper bound as above, the lowest slot absorbing everything below it, so the two translations
differ only in the shape of the point, never in which observations a bucket holds.
``"exponential"`` insists on the exponential point and is refused where it cannot be exact.

``exponential``: the kernel computes the OpenTelemetry bucket index itself
(``increment_exp_histogram`` in bpf/include/otelbpf.h): the bucket label is that signed 32-bit
index at ``bucket_scale``, key ``ZERO_KEY`` (0x80000000) counts zeros and ``SUM_KEY`` (0x7fffffff)
holds the sum. Keys are sparse, so these layouts take `sparse_to_points` (columns named by key)
instead of the dense slot table. A series is exported at ``bucket_scale`` with exactly the
kernel's buckets unless its index span exceeds ``max_size``; then it is downscaled by the fewest
steps that fit, merging bucket i into i >> k, which is exact (bucket i at scale s lies inside
bucket i >> 1 at scale s - 1).

Clamping caveat: ebpf_exporter programs clamp overflow into ``bucket_max`` (``if (slot > max)
slot = max``), so that slot then also holds values above its upper bound and no translation can be
exact for them. otelbpf's programs use 65 exp2 slots (``exp2_slot`` returns 0..64, every u64), so
exp2 never clamps; set ``bucket_max`` to the largest slot the program can write. Slots below
``bucket_min`` are still placed exactly (they join the lowest bucket, or zero_count); slots above
the sum slot have no bucket: ``maps.histogram_metric`` counts them in
``otelbpf.histogram.out_of_range``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

import numpy as np

from otelbpf.aggregate.exponential import scale_change
from otelbpf.metrics.model import Attributes, ExponentialHistogramPoint, HistogramPoint

# bucket_type "exponential": the keys otelbpf.h's increment_exp_histogram writes besides indexes.
ZERO_KEY = -(1 << 31)
SUM_KEY = (1 << 31) - 1
# Index spans up to this wide are laid out densely (one numpy table for all series).
_DENSE_SPAN = 4096

__all__ = ["AGGREGATIONS", "ZERO_KEY", "SUM_KEY", "BucketLayout", "effective_aggregation",
           "exponential_unavailable", "slot_upper_bounds", "power_of_two_exponent"]

AGGREGATIONS = ("auto", "exponential", "explicit")


def power_of_two_exponent(multiplier: float) -> int | None:
    """j when multiplier == 2^j exactly (j may be negative), else None."""
    if not multiplier > 0 or not math.isfinite(multiplier):
        return None
    mantissa, exp = math.frexp(multiplier)
    return exp - 1 if mantissa == 0.5 else None


def effective_aggregation(configured: str, default: str) -> str:
    """A histogram's own aggregation, or the agent-wide `default` when it is left at "auto"."""
    return default if configured == "auto" else configured


def exponential_unavailable(bucket_type: str, multiplier: float) -> str | None:
    """Why slots of this kind cannot become an exact exponential point, or None when they can."""
    if bucket_type not in ("exp2", "exp2zero"):
        return (f'bucket_type "{bucket_type}" slots are not powers of two, so no exponential bucket '
                "matches them")
    if power_of_two_exponent(multiplier) is None:
        return (f"bucket_multiplier {multiplier!r} is not a power of two, so the slot bounds are not "
                "exponential bucket bounds")
    return None


def _scaled_sum(sum_value: int | float, multiplier: float) -> int | float:
    if float(multiplier).is_integer() and isinstance(sum_value, (int, np.integer)):
        return int(sum_value) * int(multiplier)  # stays an exact int
    return float(sum_value) * multiplier


def slot_upper_bounds(bucket_type: str, multiplier: float, slots: Sequence[int]) -> tuple[float, ...]:
    """The inclusive upper bound of each kernel slot in `slots`, in the metric's unit."""
    # Multiply the multiplier as written (its shortest repr, e.g. 1e-06) exactly and round once,
    # so 5 slots of 1e-06 give the bound 5e-06 rather than 4.9999999999999996e-06.
    m = Decimal(repr(float(multiplier)))
    if bucket_type == "exp2":
        units = [Decimal(2) ** k for k in slots]
    elif bucket_type == "exp2zero":
        units = [Decimal(0) if k == 0 else Decimal(2) ** (k - 1) for k in slots]
    elif bucket_type == "linear":
        units = [Decimal(k) for k in slots]
    elif bucket_type == "fixed":
        units = [Decimal(k) for k in slots]  # fixed slots are keyed by their bound
    else:
        raise ValueError(f"unknown bucket_type {bucket_type!r}")
    with localcontext() as ctx:
        ctx.prec = 60
        return tuple(float(m * u) for u in units)


@dataclass(frozen=True)
class BucketLayout:
    """Where a histogram map keeps its slots and sum, and how they become a point.

    ``slot_keys``: the kernel slot numbers that are buckets, lowest first. ``sum_key``: the slot
    number holding the sum of observed values. ``exponential``: True when points are
    `ExponentialHistogramPoint` (exp2/exp2zero with a power-of-two multiplier).

    Counts are gathered into a dense table whose columns are `columns` of the kernel slot numbers:
    for exp2/exp2zero/linear column == slot number (0..sum_key); for ``fixed``, whose slot numbers
    are bucket values and may be sparse and large, column i is ``bucket_keys[i]`` and the last
    column the sum. ``exponential`` bucket types are sparse (signed indexes) and take
    `sparse_to_points` instead.
    """

    bucket_type: str
    slot_keys: tuple[int, ...]
    sum_key: int
    multiplier: float
    exponential: bool
    multiplier_log2: int = 0
    bounds: tuple[float, ...] = ()  # explicit layouts: upper bound of each slot in slot_keys
    scale: int = 0  # "exponential": the scale of the kernel's bucket indexes
    max_size: int = 160  # "exponential": most buckets per exported series

    @property
    def sparse(self) -> bool:
        """True when the bucket label is a signed bucket index (`sparse_to_points`), not a slot."""
        return self.bucket_type == "exponential"

    @classmethod
    def from_config(cls, cfg, default_aggregation: str = "auto") -> BucketLayout:
        """From a `HistogramConfig` (anything with bucket_type/_min/_max/_keys/_multiplier and
        aggregation); a histogram left at ``"auto"`` takes `default_aggregation` (the agent-wide
        choice)."""
        aggregation = effective_aggregation(cfg.aggregation, default_aggregation)
        return cls.create(cfg.bucket_type, bucket_min=cfg.bucket_min, bucket_max=cfg.bucket_max,
                          bucket_keys=tuple(cfg.bucket_keys), multiplier=cfg.bucket_multiplier,
                          aggregation=aggregation, scale=cfg.bucket_scale, max_size=cfg.max_size)

    @classmethod
    def create(cls, bucket_type: str, *, bucket_min: int = 0, bucket_max: int = 0,
               bucket_keys: Sequence[int] = (), multiplier: float = 1.0,
               aggregation: str = "auto", scale: int = 0, max_size: int = 160) -> BucketLayout:
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggregation!r}")
        if bucket_type == "exponential":
            # The kernel's bucket indexes are exponential buckets already; their bounds
            # (2^(i/2^scale)) are not exact floats, so they are never turned into explicit bounds.
            if multiplier != 1.0:
                raise ValueError('bucket_type "exponential" cannot be rescaled by a multiplier')
            if max_size < 2:
                raise ValueError(f"max_size must be at least 2, not {max_size}")
            return cls(bucket_type, (), SUM_KEY, 1.0, True, scale=scale, max_size=max_size)
        if bucket_type == "fixed":
            if not bucket_keys:
                raise ValueError('bucket_type "fixed" needs bucket_keys')
            if bucket_keys[0] < 0 or any(b <= a for a, b in zip(bucket_keys, bucket_keys[1:])):
                raise ValueError("bucket_keys must be non-negative and strictly increasing")
            slots = tuple(int(k) for k in bucket_keys)
            sum_key = slots[-1] + 1
        elif bucket_type in ("exp2", "exp2zero", "linear"):
            if not 0 <= bucket_min <= bucket_max:
                raise ValueError(f"need 0 <= bucket_min ({bucket_min}) <= bucket_max ({bucket_max})")
            slots = tuple(range(bucket_min, bucket_max + 1))
            sum_key = bucket_max + 1
        else:
            raise ValueError(f"unknown bucket_type {bucket_type!r}")
        j = power_of_two_exponent(multiplier) if bucket_type in ("exp2", "exp2zero") else None
        if aggregation == "exponential" and j is None:
            raise ValueError(exponential_unavailable(bucket_type, multiplier))
        if j is not None and aggregation != "explicit":
            return cls(bucket_type, slots, sum_key, float(multiplier), True, j)
        bounds = slot_upper_bounds(bucket_type, multiplier, slots)
        return cls(bucket_type, slots, sum_key, float(multiplier), False, 0, bounds)

    @property
    def n_columns(self) -> int:
        """Columns of the dense count table: every bucket column and the sum column."""
        return len(self.slot_keys) + 1 if self.bucket_type == "fixed" else self.sum_key + 1

    @property
    def sum_column(self) -> int:
        return self.n_columns - 1

    def columns(self, slots: np.ndarray) -> np.ndarray:
        """Kernel slot numbers (int64 array) → table columns; -1 for slots this layout never reads."""
        slots = np.asarray(slots, dtype=np.int64)
        if self.bucket_type != "fixed":
            return np.where((slots >= 0) & (slots <= self.sum_key), slots, -1)
        known = np.asarray(self.slot_keys + (self.sum_key,), dtype=np.int64)
        at = np.minimum(np.searchsorted(known, slots), known.size - 1)
        return np.where(known[at] == slots, at, -1)

    def _bucket_columns(self) -> tuple[int, int]:
        """First and last table column that are buckets."""
        if self.bucket_type == "fixed":
            return 0, len(self.slot_keys) - 1
        return self.slot_keys[0], self.slot_keys[-1]

    def to_points(self, table: np.ndarray, sums: Sequence[int | float], attributes: Sequence[Attributes],
                  start_ns: int, now_ns: int) -> list[ExponentialHistogramPoint | HistogramPoint]:
        """Cumulative points, one per series: row r of `table` (n, >= sum_column) holds series r's
        counts by table column (see `columns`; columns from sum_column on are ignored), `sums[r]`
        its raw kernel sum (multiplied by the layout's multiplier here)."""
        table = np.asarray(table)
        counts = np.zeros((table.shape[0], self.sum_column), dtype=np.int64)
        width = min(table.shape[1], self.sum_column)
        counts[:, :width] = table[:, :width]
        totals = [_scaled_sum(x, self.multiplier) for x in sums]
        lowest, highest = self._bucket_columns()
        count = counts.sum(axis=1).tolist()
        if self.exponential:
            zero_slot = self.bucket_type == "exp2zero"
            shift = (-2 if zero_slot else -1) + self.multiplier_log2
            if zero_slot:
                threshold = 0.0 if lowest == 0 else math.ldexp(1.0, lowest - 1 + self.multiplier_log2)
            else:
                threshold = math.ldexp(1.0, lowest + self.multiplier_log2)
            zero = counts[:, :lowest + 1].sum(axis=1).tolist()
            above = counts[:, lowest + 1:]
            nonzero = above != 0
            has = nonzero.any(axis=1).tolist()
            first = nonzero.argmax(axis=1).tolist()
            last = (above.shape[1] - 1 - nonzero[:, ::-1].argmax(axis=1)).tolist()
            rows = above.tolist()
            points: list = []
            for r, attrs in enumerate(attributes):
                if has[r]:
                    offset, positive = lowest + 1 + first[r] + shift, tuple(rows[r][first[r]:last[r] + 1])
                else:
                    offset, positive = 0, ()
                points.append(ExponentialHistogramPoint(
                    attributes=attrs, start_time_ns=start_ns, time_ns=now_ns, count=count[r], sum=totals[r],
                    scale=0, zero_count=zero[r], positive_offset=offset, positive_counts=positive,
                    zero_threshold=threshold))
            return points
        buckets = np.zeros((counts.shape[0], len(self.slot_keys) + 1), dtype=np.int64)
        buckets[:, :-1] = counts[:, lowest:highest + 1]
        buckets[:, 0] += counts[:, :lowest].sum(axis=1)
        rows = buckets.tolist()
        return [HistogramPoint(attributes=attrs, start_time_ns=start_ns, time_ns=now_ns, count=count[r],
                               sum=totals[r], bounds=self.bounds, bucket_counts=tuple(rows[r]))
                for r, attrs in enumerate(attributes)]

    def sparse_to_points(self, table: np.ndarray, keys: Sequence[int], attributes: Sequence[Attributes],
                         start_ns: int, now_ns: int) -> list[ExponentialHistogramPoint]:
        """``exponential`` layouts: row r of `table` holds series r's values by kernel key, column c
        being key ``keys[c]`` (a bucket index, ZERO_KEY or SUM_KEY; sorted, distinct)."""
        keys = np.asarray(keys, dtype=np.int64)
        zero_col = np.flatnonzero(keys == ZERO_KEY)
        sum_col = np.flatnonzero(keys == SUM_KEY)
        bucket_cols = np.flatnonzero((keys != ZERO_KEY) & (keys != SUM_KEY))
        n = table.shape[0]
        sums = ([int(x) for x in table[:, sum_col[0]].tolist()] if sum_col.size else [0] * n)
        zero = (np.asarray(table[:, zero_col[0]], dtype=np.int64) if zero_col.size
                else np.zeros(n, dtype=np.int64))
        index = keys[bucket_cols]
        counts = np.asarray(table[:, bucket_cols], dtype=np.int64)
        totals = (counts.sum(axis=1) + zero).tolist()
        zero = zero.tolist()
        points = []
        if index.size and int(index[-1] - index[0]) < _DENSE_SPAN:
            low = int(index[0])
            dense = np.zeros((n, int(index[-1]) - low + 1), dtype=np.int64)
            dense[:, index - low] = counts
            nonzero = dense != 0
            has = nonzero.any(axis=1).tolist()
            first = nonzero.argmax(axis=1).tolist()
            last = (dense.shape[1] - 1 - nonzero[:, ::-1].argmax(axis=1)).tolist()
            rows = dense.tolist()
            for r, attrs in enumerate(attributes):
                if not has[r]:
                    scale, offset, positive = self.scale, 0, ()
                elif last[r] - first[r] < self.max_size:
                    scale, offset, positive = self.scale, low + first[r], tuple(rows[r][first[r]:last[r] + 1])
                else:
                    scale, offset, positive = self._downscaled(index, counts[r])
                points.append(self._point(attrs, start_ns, now_ns, totals[r], sums[r], zero[r],
                                          scale, offset, positive))
            return points
        for r, attrs in enumerate(attributes):
            scale, offset, positive = self._downscaled(index, counts[r])
            points.append(self._point(attrs, start_ns, now_ns, totals[r], sums[r], zero[r], scale, offset, positive))
        return points

    def _downscaled(self, index: np.ndarray, counts: np.ndarray) -> tuple[int, int, tuple[int, ...]]:
        """(scale, offset, counts) of one series' buckets, merged i -> i >> k by the fewest k that
        brings the span within max_size."""
        used = counts != 0
        if not used.any():
            return self.scale, 0, ()
        index, counts = index[used], counts[used]
        k = int(scale_change(index[0], index[-1], self.max_size))
        merged = index >> k
        offset = int(merged[0])
        positive = np.zeros(int(merged[-1]) - offset + 1, dtype=np.int64)
        np.add.at(positive, merged - offset, counts)
        return self.scale - k, offset, tuple(positive.tolist())

    @staticmethod
    def _point(attrs, start_ns, now_ns, count, total, zero, scale, offset, positive) -> ExponentialHistogramPoint:
        return ExponentialHistogramPoint(
            attributes=attrs, start_time_ns=start_ns, time_ns=now_ns, count=count, sum=total, scale=scale,
            zero_count=zero, positive_offset=offset, positive_counts=positive, zero_threshold=0.0)
