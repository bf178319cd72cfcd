"""What every stream histogram keeps per series besides its buckets, and how a batch is read.

`ExponentialHistograms` and `ExplicitHistograms` record the same batches (group ids, values,
weights) and report the same sum, min and max per series; both take them from here:

- `batch(group_ids, values, weights)` checks and normalises one batch: flat arrays, events of
  weight 0 removed, non-finite floats removed (and counted: they are dropped, not recorded).
- `SeriesStats` holds each series' sum, min and max. The SDK's sum is `sum += v` in event order:
  float sums are accumulated the same way (`np.add.at`, sequential), integer sums stay exact
  Python ints until a float arrives (as `int + float` does), min and max keep the input's type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["Batch", "SeriesStats", "batch", "exact_int_sums"]


class Batch(NamedTuple):
    g: np.ndarray          # group id per event (intp)
    v: np.ndarray          # value per event (integer or float dtype)
    w: np.ndarray | None   # weight per event (int64, all > 0), None: every weight is 1
    nonfinite: int         # non-finite values dropped from the input


def batch(group_ids, values, weights=1) -> Batch | None:
    """The events to record, or None when none remain. ValueError for malformed input."""
    g = np.asarray(group_ids, dtype=np.intp).reshape(-1)
    v = np.asarray(values).reshape(-1)
    if v.dtype.kind not in "iuf":
        v = v.astype(np.float64)
    if g.shape != v.shape:
        raise ValueError(f"group_ids ({g.size}) and values ({v.size}) differ in length")
    w = None
    if not np.isscalar(weights) and np.ndim(weights) != 0:
        w = np.asarray(weights, dtype=np.int64).reshape(-1)
        if w.shape != v.shape:
            raise ValueError("weights must be an int or match values in length")
        if w.size and w.min() < 0:
            raise ValueError("weights must be >= 0")
        keep = w > 0
        if not keep.all():
            g, v, w = g[keep], v[keep], w[keep]
    else:
        wi = int(weights)
        if wi < 0:
            raise ValueError("weights must be >= 0")
        if wi == 0:
            return None
        if wi != 1:
            w = np.full(v.shape, wi, dtype=np.int64)
    nonfinite = 0
    if v.dtype.kind == "f":
        finite = np.isfinite(v)
        if not finite.all():
            nonfinite = int(np.count_nonzero(~finite))
            g, v = g[finite], v[finite]
            w = None if w is None else w[finite]
    if v.size and g.min() < 0:
        raise ValueError("group ids must be >= 0")
    return Batch(g, v, w, nonfinite)


class SeriesStats:
    """Sum, min and max of series 0..len-1 (min and max None while a series is empty)."""

    def __init__(self) -> None:
        self.sum: list[int | float] = []
        self.min: list[int | float | None] = []
        self.max: list[int | float | None] = []

    def grow(self, capacity: int) -> None:
        extra = capacity - len(self.sum)
        self.sum.extend([0] * extra)
        self.min.extend([None] * extra)
        self.max.extend([None] * extra)

    def copy(self) -> SeriesStats:
        other = SeriesStats()
        other.sum, other.min, other.max = list(self.sum), list(self.min), list(self.max)
        return other

    def reset(self, rows: Sequence[int]) -> None:
        for g in rows:
            self.sum[g], self.min[g], self.max[g] = 0, None, None

    def record(self, g: np.ndarray, v: np.ndarray, w: np.ndarray | None, touched: np.ndarray,
               vf: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Add a batch whose events fall in the groups `touched`; `vf` is v as float64 if the
        caller has it. Returns this batch's min and max per group (every group; untouched ones
        hold the dtype's extremes)."""
        cap = len(self.sum)
        if v.dtype.kind == "f":
            lo, hi = np.full(cap, np.inf), np.full(cap, -np.inf)
        else:
            info = np.iinfo(v.dtype)
            lo = np.full(cap, info.max, dtype=v.dtype)
            hi = np.full(cap, info.min, dtype=v.dtype)
        np.minimum.at(lo, g, v)
        np.maximum.at(hi, g, v)
        groups = touched.tolist()
        sums = self._sums(g, v, v.astype(np.float64, copy=False) if vf is None else vf, w, groups)
        mins, maxs = lo[touched].tolist(), hi[touched].tolist()
        for k, grp in enumerate(groups):
            old = self.min[grp]
            self.min[grp] = mins[k] if old is None or mins[k] < old else old
            old = self.max[grp]
            self.max[grp] = maxs[k] if old is None or maxs[k] > old else old
            self.sum[grp] = sums[grp]
        return lo, hi

    def _sums(self, g, v, vf, w, groups: list[int]) -> dict[int, int | float]:
        """New running sums of `groups`: float ones in event order, integer ones exact."""
        sums = {grp: self.sum[grp] for grp in groups}
        if v.dtype.kind == "f":
            float_groups = groups
        else:
            float_groups = [grp for grp in groups if isinstance(sums[grp], float)]
        if float_groups:
            mask = None if len(float_groups) == len(groups) else np.isin(g, float_groups)
            acc = np.zeros(len(self.sum))
            acc[float_groups] = [float(sums[grp]) for grp in float_groups]
            gf, vff = (g, vf) if mask is None else (g[mask], vf[mask])
            wf = w if mask is None or w is None else w[mask]
            with np.errstate(over="ignore"):  # a float sum may overflow to inf, as in the SDK
                np.add.at(acc, gf, vff if wf is None else vff * wf)
            for grp, s in zip(float_groups, acc[float_groups].tolist()):
                sums[grp] = s
            if mask is None:
                return sums
            keep = ~mask
            g, v = g[keep], v[keep]
            w = None if w is None else w[keep]
        for grp, s in exact_int_sums(g, v, w, len(self.sum)).items():
            sums[grp] = sums[grp] + s
        return sums


def exact_int_sums(g: np.ndarray, v: np.ndarray, w: np.ndarray | None, cap: int) -> dict[int, int]:
    """Exact per-group sums of integer values (times weights) as Python ints."""
    if g.size == 0:
        return {}
    vmax = max(abs(int(v.min())), abs(int(v.max())))
    wmax = 1 if w is None else int(w.max())
    if vmax * wmax * g.size < 2**63:
        acc = np.zeros(cap, dtype=np.int64)
        np.add.at(acc, g, v.astype(np.int64) if w is None else v.astype(np.int64) * w)
        present = np.flatnonzero(np.bincount(g, minlength=cap))
        return dict(zip(present.tolist(), (int(x) for x in acc[present].tolist())))
    if wmax * g.size < 2**31:
        # split into 32-bit halves; each half-sum fits in int64
        if v.dtype.kind == "u":
            high = (v >> np.uint64(32)).astype(np.int64)
            low = (v & np.uint64(0xFFFFFFFF)).astype(np.int64)
        else:
            high = v.astype(np.int64) >> 32
            low = v.astype(np.int64) & 0xFFFFFFFF
        if w is not None:
            high, low = high * w, low * w
        acc_h = np.zeros(cap, dtype=np.int64)
        acc_l = np.zeros(cap, dtype=np.int64)
        np.add.at(acc_h, g, high)
        np.add.at(acc_l, g, low)
        present = np.flatnonzero(np.bincount(g, minlength=cap))
        return {i: (int(acc_h[i]) << 32) + int(acc_l[i]) for i in present.tolist()}
    sums: dict[int, int] = {}
    ws = [1] * g.size if w is None else w.tolist()
    for grp, x, k in zip(g.tolist(), v.tolist(), ws):
        sums[grp] = sums.get(grp, 0) + x * k
    return sums
