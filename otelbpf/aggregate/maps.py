"""Map snapshots → metrics: counters (one u64 per key, or one field of a struct of u64s) and
histograms (one u64 per key and slot).

Kernel maps are cumulative, so every point is CUMULATIVE with the series' start time given by the
caller. Keys whose labels decode to the same values are summed (e.g. a decoder that maps many pids
to one command name); keys whose decoder chain returns None are dropped. Per-CPU values are summed
unless the config says ``per_cpu = "label"``, which keeps one series per CPU with a ``cpu``
attribute (a string, like every other label). A counter with ``skip_zero`` leaves out keys that are
0 on every CPU. Points are sorted by attributes so output is stable.

Histogram keys are grouped by their label bytes (everything before the trailing bucket field) with
numpy in one pass; the decoder runs once per distinct label prefix (and is cached across
intervals). Slots outside ``[bucket_min, bucket_max + 1]`` mean the program and the config
disagree: their events are counted in ``otelbpf.histogram.out_of_range`` (`OutOfRangeSlots`) and
logged once per metric. Slots below ``bucket_min`` go into the lowest bucket (they are at or below
its bound), or are left out with ``below_bucket_min = "drop"`` (ebpf_exporter's rule); slots above
the sum slot (for ``fixed``: keys not in ``bucket_keys``) have no bucket and are left out of the
histogram.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import logging

from otelbpf.aggregate.buckets import BucketLayout
from otelbpf.config.program import key_extent
from otelbpf.metrics.model import Attributes, Metric, MetricKind, NumberPoint, Point, Temporality

__all__ = ["counter_metric", "histogram_metric", "sum_cpus", "OutOfRangeSlots"]

log = logging.getLogger(__name__)

_U64_MAX = (1 << 64) - 1


def sum_cpus(values: np.ndarray) -> np.ndarray:
    """(n, ncpu) uint64 → (n,) sums: uint64 when no sum can overflow, else exact Python ints."""
    if values.shape[1] == 1:
        return values[:, 0]
    if values.size == 0 or int(values.max()) <= _U64_MAX // values.shape[1]:
        return values.sum(axis=1, dtype=np.uint64)
    return np.array([sum(row) for row in values.tolist()], dtype=object)


def _rows_as_bytes(arr: np.ndarray) -> list[bytes]:
    arr = np.ascontiguousarray(arr)
    width = arr.shape[1]
    buf = arr.tobytes()
    return [buf[i * width:(i + 1) * width] for i in range(arr.shape[0])]


def _attributes(names: Sequence[str], labels: Sequence[str], cpu: int | None) -> Attributes:
    attrs = tuple(zip(names, labels))
    return attrs if cpu is None else attrs + (("cpu", str(cpu)),)


KEY_ZERO = bytes(4)  # the u32 key 0 of a single-key counter


def counter_metric(cfg, snapshot, decoder, start_ns: int, now_ns: int, cpu_label: bool = False) -> Metric:
    """A `CounterConfig`'s map snapshot → one monotonic cumulative SUM metric.

    ``cpu_label`` (or ``cfg.per_cpu == "label"``) keeps per-CPU values apart under a "cpu" attribute.
    """
    per_cpu = cpu_label or cfg.per_cpu == "label"
    values = snapshot.u64(cfg.value_offset)
    key_rows = snapshot.keys
    if cfg.skip_zero:
        counted = values.any(axis=1)
        values, key_rows = values[counted], key_rows[counted]
    keys = _rows_as_bytes(key_rows)
    if cfg.single_key:
        stray = next((key for key in keys if key != KEY_ZERO), None)
        if stray is not None:
            raise ValueError(
                f"the map holds key 0x{stray.hex()}, but a counter without labels reads the one "
                f"u32 key 0 (single_key, ebpf_exporter's rule) (fix: give the counter labels that "
                f"describe the map's keys)")
    totals: dict[tuple, int] = {}
    if per_cpu:
        rows = values.tolist()
        for key, row in zip(keys, rows):
            labels = decoder.decode(key)
            if labels is None:
                continue
            for cpu, value in enumerate(row):
                ident = (labels, cpu)
                totals[ident] = totals.get(ident, 0) + value
    else:
        for key, value in zip(keys, sum_cpus(values).tolist()):
            labels = decoder.decode(key)
            if labels is None:
                continue
            ident = (labels, None)
            totals[ident] = totals.get(ident, 0) + int(value)
    names = decoder.names
    # A counter exported in another unit than the kernel's (ns as s) becomes a double.
    scale = cfg.multiplier
    points = tuple(
        _number_point(_attributes(names, labels, cpu), total if scale == 1.0 else total * scale,
                      start_ns, now_ns)
        for (labels, cpu), total in sorted(totals.items(), key=_flat_order)
    )
    return Metric(cfg.name, cfg.help, cfg.unit, MetricKind.SUM, points, Temporality.CUMULATIVE, monotonic=True)


def _flat_order(item):
    """The order of `_order`, as one string per series: labels joined by NUL, the smallest
    character, compare as the label tuples do (label values hold no NUL), and one string
    comparison is several times cheaper than comparing tuples of strings (100K series)."""
    (labels, cpu), _ = item
    flat = "\0".join(labels)
    return flat if cpu is None else (flat, cpu)  # one call sees either kind, never both


def _order(item):
    (labels, cpu), _ = item
    return labels, -1 if cpu is None else cpu


def _number_point(attributes: Attributes, value: int, start_ns: int, now_ns: int) -> NumberPoint:
    return NumberPoint(attributes=attributes, value=value, time_ns=now_ns, start_time_ns=start_ns)


def _bucket_field(keys: np.ndarray, offset: int, size: int) -> np.ndarray:
    """The little-endian unsigned integer of `size` bytes at `offset` in each key, as int64."""
    field = np.zeros((keys.shape[0], 8), dtype=np.uint8)
    field[:, :size] = keys[:, offset:offset + size]
    return field.view("<u8").reshape(-1).astype(np.int64)


def _group_prefixes(prefix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows of a (n, width) uint8 array → (first row index of each group, inverse).

    Rows are padded to whole u64 words and sorted as integers (np.lexsort over the words), which
    is several times faster than sorting a void dtype.
    """
    n, width = prefix.shape
    if width == 0 or n == 0:
        return np.zeros(min(n, 1), dtype=np.intp), np.zeros(n, dtype=np.intp)
    words = -(-width // 8)
    padded = np.zeros((n, words * 8), dtype=np.uint8)
    padded[:, :width] = prefix
    cols = padded.view(np.uint64)
    if words == 1:
        _, first, inverse = np.unique(cols[:, 0], return_index=True, return_inverse=True)
        return first, inverse.reshape(-1)
    order = np.lexsort(cols.T[::-1])
    ordered = cols[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    group_sorted = np.cumsum(starts) - 1
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = group_sorted
    return order[starts], inverse


class OutOfRangeSlots:
    """Events a histogram map holds in slots outside ``[bucket_min, bucket_max + 1]``.

    The map is cumulative, so the events in those slots at each read are a cumulative count
    themselves: `metric` reports them with the map's start time. The first time a metric has any,
    one warning names it and the slots (a program writing slots its config does not declare).
    """

    def __init__(self, program: str):
        self.program = program
        self.events: dict[str, int] = {}  # metric name → events in out-of-range slots, last read
        self._warned: set[str] = set()

    def record(self, cfg, layout: BucketLayout, slots: np.ndarray, events: int) -> None:
        self.events[cfg.name] = events
        if events and cfg.name not in self._warned:
            self._warned.add(cfg.name)
            low, high = layout.slot_keys[0], layout.sum_key
            log.warning(
                "histogram %s of program %s: %d events in slots %s, outside [bucket_min %d, bucket_max + 1 = %d]; "
                "they are counted in otelbpf.histogram.out_of_range (slots below bucket_min still count in the "
                "lowest bucket, slots above the sum slot are left out) (fix: set bucket_min/bucket_max to the "
                "slots the program writes)",
                cfg.name, self.program, events, ", ".join(map(str, sorted(set(slots.tolist())))), low, high)

    def metric(self, start_ns: int, now_ns: int) -> Metric | None:
        points = tuple(
            NumberPoint((("otelbpf.program", self.program), ("otelbpf.metric", name)), events, now_ns, start_ns)
            for name, events in sorted(self.events.items()) if events)
        if not points:
            return None
        return Metric("otelbpf.histogram.out_of_range",
                      "Events in histogram slots outside [bucket_min, bucket_max + 1] of the config",
                      "{event}", MetricKind.SUM, points, Temporality.CUMULATIVE, monotonic=True)


def histogram_metric(cfg, snapshot, decoder_without_bucket, layout: BucketLayout, start_ns: int, now_ns: int,
                     cpu_label: bool = False, out_of_range: OutOfRangeSlots | None = None) -> Metric:
    """A `HistogramConfig`'s map snapshot → one cumulative histogram metric.

    ``decoder_without_bucket`` decodes the series labels (``KeyDecoder(cfg.series_labels)``); it is
    given each distinct label prefix once. The kind is EXPONENTIAL_HISTOGRAM when ``layout`` is
    exponential, else HISTOGRAM. ``out_of_range`` is told how many events lie in slots outside
    the layout (see `OutOfRangeSlots`).
    """
    kind = MetricKind.EXPONENTIAL_HISTOGRAM if layout.exponential else MetricKind.HISTOGRAM
    per_cpu = cpu_label or cfg.per_cpu == "label"
    offset = key_extent(cfg.series_labels)
    bucket_size = cfg.bucket_label.size
    keys = snapshot.keys
    if keys.shape[0] == 0:
        if out_of_range is not None:
            out_of_range.record(cfg, layout, np.zeros(0, dtype=np.int64), 0)
        return Metric(cfg.name, cfg.help, cfg.unit, kind, (), Temporality.CUMULATIVE)
    values = snapshot.u64()
    ncpu = values.shape[1]

    raw_slot = _bucket_field(keys, offset, bucket_size)
    first, inverse = _group_prefixes(keys[:, :offset])
    if layout.sparse:
        # Signed bucket indexes (plus the zero and sum keys): one column per distinct key.
        signed = np.where(raw_slot >= 1 << 31, raw_slot - (1 << 32), raw_slot)
        column_keys, slot = np.unique(signed, return_inverse=True)
        slot = slot.reshape(-1)
        valid = np.ones(slot.size, dtype=bool)
        n_groups, width = first.size, column_keys.size
    else:
        slot = layout.columns(raw_slot)
        valid = slot >= 0
        below = raw_slot < layout.slot_keys[0]
        if out_of_range is not None:
            outside = below | ~valid
            events = int(sum(int(x) for x in sum_cpus(values[outside]).tolist())) if outside.any() else 0
            out_of_range.record(cfg, layout, raw_slot[outside], events)
        if cfg.below_bucket_min == "drop":
            valid &= ~below
        n_groups, width = first.size, layout.n_columns

    if per_cpu:
        rows = (inverse[valid][:, None] * ncpu + np.arange(ncpu)).reshape(-1)
        cols = np.repeat(slot[valid], ncpu)
        vals = values[valid].reshape(-1)
        n_rows = n_groups * ncpu
    else:
        rows, cols, vals = inverse[valid], slot[valid], sum_cpus(values[valid])
        n_rows = n_groups
    if vals.dtype == object:
        table = np.zeros((n_rows, width), dtype=object)
        for r, c, x in zip(rows.tolist(), cols.tolist(), vals.tolist()):
            table[r, c] += x
    else:
        table = np.zeros((n_rows, width), dtype=np.uint64)
        np.add.at(table, (rows, cols), vals)

    prefixes = _rows_as_bytes(keys[first, :offset]) if offset else [b""] * n_groups
    # series identity (labels, cpu) → output row; keys whose labels decode equal share a row
    target: dict[tuple, int] = {}
    row_of = np.full(n_rows, -1, dtype=np.intp)
    for group, prefix in enumerate(prefixes):
        labels = decoder_without_bucket.decode(prefix)
        if labels is None:
            continue
        for cpu in range(ncpu) if per_cpu else (None,):
            r = group * ncpu + cpu if per_cpu else group
            row_of[r] = target.setdefault((labels, cpu), len(target))
    kept = np.flatnonzero(row_of >= 0)
    if kept.size == len(target) and kept.size == n_rows:
        merged = table
    else:
        overflow = table.dtype != object and table.size and int(table.max()) * kept.size > _U64_MAX
        merged = np.zeros((len(target), width), dtype=object if overflow else table.dtype)
        np.add.at(merged, row_of[kept], table[kept].astype(merged.dtype))
    idents = list(target)
    order = sorted(range(len(idents)), key=lambda i: _order((idents[i], None)))
    merged = merged[order]
    # Every label set the map holds is a series, all-zero ones too (as for counters, and as
    # ebpf_exporter serves them): a series present from the start lets increase() count its
    # first events.
    names = decoder_without_bucket.names
    attributes = [_attributes(names, *idents[i]) for i in order]
    rows = merged
    if layout.sparse:
        return Metric(cfg.name, cfg.help, cfg.unit, kind,
                      tuple(layout.sparse_to_points(rows, column_keys, attributes, start_ns, now_ns)),
                      Temporality.CUMULATIVE)
    sums = [int(x) for x in rows[:, layout.sum_column].tolist()]
    points: list[Point] = layout.to_points(rows[:, :layout.sum_column].astype(np.int64), sums, attributes,
                                           start_ns, now_ns)
    return Metric(cfg.name, cfg.help, cfg.unit, kind, tuple(points), Temporality.CUMULATIVE)
