"""StreamAggregator: batches of stream records → cumulative counters and histograms.

Everything per record is a numpy pass over the whole batch: view the records through the
configured layout, turn each record's label bytes into a key id (grouping.KeyIndex), map key ids
to series ids (decoding each raw key with the map labels' `KeyDecoder` when first seen, again when
an unstable decoder chain refreshes), then `bincount` for counters and
`ExponentialHistograms.record` / `ExplicitHistograms.record` for histograms. Python code runs per
batch, per metric and per new
label key, never per record.

Records that would corrupt a series (an impossible sample rate, a value a counter cannot take)
are skipped and counted by reason in `otelbpf.stream.dropped`. At each collection, series without
records for the stream's `idle_intervals` collections end and leave the cardinality budget.

Thread use: the drain thread calls `add`/`add_lost`; `collect` may run on any thread. Both hold
one lock, `collect` only long enough to copy the state; building points happens outside it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from otelbpf.aggregate.buckets import effective_aggregation
from otelbpf.aggregate.cardinality import OVERFLOW_ATTRIBUTES, CardinalityLimiter
from otelbpf.aggregate.explicit import DEFAULT_BOUNDS, ExplicitHistograms
from otelbpf.aggregate.exponential import ExponentialHistograms
from otelbpf.config.program import LabelConfig, default_decoders
from otelbpf.labels.keys import KeyDecoder
from otelbpf.metrics.model import Attributes, Metric, MetricKind, NumberPoint
from otelbpf.streams.grouping import KeyIndex
from otelbpf.streams.layout import RecordLayout, layout_from_config
from otelbpf.streams.records import RecordBatch

log = logging.getLogger(__name__)

DEFAULT_CARDINALITY_LIMIT = 2000


def stream_key_decoder(labels, layout: RecordLayout, cache_size: int = 100_000) -> KeyDecoder:
    """The `KeyDecoder` for a stream metric's labels: the label fields' bytes, concatenated in
    label order (as `KeyIndex.pack` lays them out), decoded like a map key whose labels have the
    fields' sizes and no padding. A label without decoders (a config built in code; the loader
    always fills them in) gets the loader's defaults for its field type."""
    fields = [layout.field(label.field) for label in labels]
    return KeyDecoder([LabelConfig(label.name, f.size, 0, label.decoders or default_decoders(f.type))
                       for label, f in zip(labels, fields)], cache_size)


_UNLEARNED = -2  # key_series: key id not mapped yet (new, relabelled or its series expired)
_DROPPED = -1  # key_series: the decoder chain drops this key


class _MetricState:
    """One configured counter or histogram: its series and values."""

    def __init__(self, config, kind: MetricKind, layout: RecordLayout, limiter: CardinalityLimiter,
                 integral: bool, start_ns: int, label_cache: int):
        self.config = config
        self.kind = kind
        self.label_fields = tuple(label.field for label in config.labels)
        self.value_field = config.value
        self.decoder = stream_key_decoder(config.labels, layout, label_cache)
        self.label_generation = self.decoder.cache.generation
        self.limiter = limiter
        self.series: dict[Attributes, int] = {}
        self.attributes: list[Attributes | None] = []  # None: a free (expired) series id
        self.starts: list[int] = []
        # Per series: the collection at which it last counted something, and its total then
        # (comparing totals once per collection costs nothing per record).
        self.last_seen = np.zeros(16, dtype=np.int64)
        self.seen_totals = np.zeros(16, dtype=np.float64)
        self.collection = 0
        self.free: list[int] = []
        self.start_ns = start_ns  # start of series created now (moves to each collection's time)
        self.key_series = np.zeros(0, dtype=np.int64)  # KeyIndex id → series id (or _DROPPED/_UNLEARNED)
        self.key_generation = 0
        if kind is MetricKind.SUM:
            # Exact integer sums unless a fractional sample rate makes them fractional; the type
            # of a series never changes (a backend may reject a sum that flips int/double).
            self.values = np.zeros(16, dtype=np.int64 if integral else np.float64)
        elif kind is MetricKind.HISTOGRAM:
            self.histograms = ExplicitHistograms(config.bounds or DEFAULT_BOUNDS)
        else:
            self.histograms = ExponentialHistograms(max_size=config.max_size, max_scale=config.scale)

    def series_ids(self, index: KeyIndex, key_ids: np.ndarray) -> np.ndarray:
        """Series id (or _DROPPED) of every record, deciding series for keys not mapped yet."""
        if index.generation != self.key_generation:
            self.key_series = self.key_series[:0]
            self.key_generation = index.generation
        cache = self.decoder.cache
        if cache.refresh_seconds is not None:
            cache.expire()
            if cache.generation != self.label_generation:
                # Label values may have changed (a renamed interface, a reused device number):
                # decode every key again as records arrive; old series keep their counts.
                self.label_generation = cache.generation
                self.key_series[:] = _UNLEARNED
        if len(self.key_series) < len(index):
            grow = np.full(len(index) - len(self.key_series), _UNLEARNED, dtype=np.int64)
            self.key_series = np.concatenate([self.key_series, grow])
        sid = self.key_series[key_ids]
        if len(sid) and sid.min() == _UNLEARNED:
            for key_id in np.unique(key_ids[sid == _UNLEARNED]).tolist():
                self.key_series[key_id] = self._series_id(index.key_bytes(key_id))
            sid = self.key_series[key_ids]
        return sid

    def _series_id(self, raw: bytes) -> int:
        values = self.decoder.decode(raw)
        if values is None:
            return _DROPPED
        attrs: Attributes = tuple(zip(self.decoder.names, values))
        if not self.limiter.admit(self.config.name, attrs):
            attrs = OVERFLOW_ATTRIBUTES
        sid = self.series.get(attrs)
        if sid is None:
            sid = self._new_series(attrs)
        return sid

    def _new_series(self, attrs: Attributes) -> int:
        if self.free:
            sid = self.free.pop()
            self.attributes[sid] = attrs
            self.starts[sid] = self.start_ns
        else:
            sid = len(self.attributes)
            self.attributes.append(attrs)
            self.starts.append(self.start_ns)
            if sid >= len(self.last_seen):
                self.last_seen = np.concatenate([self.last_seen, np.zeros_like(self.last_seen)])
                self.seen_totals = np.concatenate([self.seen_totals, np.zeros_like(self.seen_totals)])
            if self.kind is MetricKind.SUM and sid >= len(self.values):
                self.values = np.concatenate([self.values, np.zeros_like(self.values)])
        self.series[attrs] = sid
        self.last_seen[sid] = self.collection
        self.seen_totals[sid] = 0
        return sid

    def expire(self, collection: int, idle_intervals: int) -> None:
        """Series without records for `idle_intervals` collections end: they leave the
        cardinality budget, so a burst of one-off label values cannot keep later real ones in the
        overflow series. A label set that comes back starts a new series (new start time)."""
        self.collection = collection
        n = len(self.attributes)
        if self.kind is MetricKind.SUM:
            totals = self.values[:n].astype(np.float64)
        else:
            totals = np.array([self.histograms.count(sid) for sid in range(n)], dtype=np.float64)
        counted = totals != self.seen_totals[:n]
        self.last_seen[:n][counted] = collection
        self.seen_totals[:n] = totals
        live = np.array([a is not None and a != OVERFLOW_ATTRIBUTES for a in self.attributes], dtype=bool)
        idle = np.flatnonzero(live & (self.last_seen[:n] <= collection - idle_intervals))
        if idle.size:
            self.end_series(idle)

    def flush(self, start_ns: int) -> None:
        """Every series ends (overflow included); the next records start new ones at
        `start_ns`, so a backend sees a counter reset, not a drop."""
        ended = np.array([sid for sid, a in enumerate(self.attributes) if a is not None], dtype=np.int64)
        if ended.size:
            self.end_series(ended)
        self.start_ns = start_ns

    def end_series(self, sids: np.ndarray) -> None:
        for sid in sids.tolist():
            attrs = self.attributes[sid]
            del self.series[attrs]
            self.limiter.release(self.config.name, attrs)
            self.attributes[sid] = None
            self.free.append(sid)
        if self.kind is MetricKind.SUM:
            self.values[sids] = 0
        else:
            self.histograms.reset(sids)
        self.key_series[np.isin(self.key_series, sids)] = _UNLEARNED

    def add(self, sid: np.ndarray, values: np.ndarray | None, weights) -> None:
        """Add one batch: `sid` series per record, `values` the value field (None: count records),
        `weights` None, a number or one integer per record (sample rates)."""
        if self.kind is not MetricKind.SUM:
            self.histograms.record(sid, values, 1 if weights is None else _int_weights(weights))
            return
        n = len(self.values)
        if self.values.dtype.kind == "f":  # fractional sample rate: weights is a float
            w = np.full(len(sid), float(weights)) if values is None else values.astype(np.float64) * float(weights)
            self.values += np.bincount(sid, weights=w, minlength=n)
        elif values is None and weights is None:
            self._make_room(float(len(sid)))
            self.values += np.bincount(sid, minlength=n)
        else:
            amount = np.ones(len(sid), dtype=np.int64) if values is None else values.astype(np.int64)
            if weights is not None:
                amount = amount * _int_weights(weights)
            self._make_room(float(amount.sum(dtype=np.float64)))
            np.add.at(self.values, sid, amount)

    def _make_room(self, batch_total: float) -> None:
        """Totals are int64 while they fit; one that this batch could carry past 2^63 (a sum of
        nanoseconds on a busy host, after months) turns the table into exact Python ints first."""
        if self.values.dtype == np.int64 and float(self.values.max(initial=0)) + batch_total >= _INT64_LIMIT:
            self.values = self.values.astype(object)

    def value_drops(self, values: np.ndarray | None, weights) -> list[tuple[str, np.ndarray]]:
        """(reason, mask) of records whose value a counter cannot take.

        A counter only grows and its sums are int64: a negative value, or one that times its
        sample rate reaches 2^63, would corrupt it. Histograms take any value (non-finite ones
        are counted by `ExponentialHistograms`).
        """
        if self.kind is not MetricKind.SUM or values is None or not len(values):
            return []
        largest = float(values.max()) * (1.0 if weights is None else float(np.max(weights)))
        if largest < _INT64_LIMIT and (values.dtype.kind != "i" or values.min() >= 0):
            return []  # the common batch: two reductions, no per-record masks
        drops = []
        if values.dtype.kind == "i":
            drops.append(("negative_value", values < 0))
        rate = 1.0 if weights is None else np.asarray(weights, dtype=np.float64)
        drops.append(("value_too_large", values.astype(np.float64) * rate >= _INT64_LIMIT))
        return [(reason, mask) for reason, mask in drops if mask.any()]


_INT64_LIMIT = float(1 << 63)


def _histogram_kind(config, default_aggregation: str) -> MetricKind:
    explicit = effective_aggregation(config.aggregation, default_aggregation) == "explicit"
    return MetricKind.HISTOGRAM if explicit else MetricKind.EXPONENTIAL_HISTOGRAM


def _int_weights(weights):
    """Histograms count whole events: a fractional sample rate is rounded (numbers only; a rate
    field is an integer field)."""
    return int(round(float(weights))) if np.ndim(weights) == 0 else weights


@dataclass(frozen=True)
class _Snapshot:
    events: int
    lost: int
    skipped: int
    dropped: dict
    metrics: list


class StreamAggregator:
    """Aggregates one stream's records as its config says.

    `program` names the BPF program (the `otelbpf.program` attribute of the self metrics);
    `start_ns` (default: now) is the start time of the self metrics and of series created before
    the first collection; a series created later starts at the collection before it (it had
    nothing until then). `default_aggregation` is what a histogram left at "auto" becomes ("auto"
    keeps it exponential). `label_cache` bounds each metric's cache of decoded label sets
    (`[limits] label_cache`).
    """

    def __init__(self, config, *, program: str, start_ns: int | None = None,
                 default_cardinality_limit: int = DEFAULT_CARDINALITY_LIMIT, max_label_keys: int = 1 << 16,
                 default_aggregation: str = "auto", label_cache: int = 100_000):
        self.config = config
        self.name = config.map
        self.program = program
        self.start_ns = time.time_ns() if start_ns is None else start_ns
        self.layout = layout_from_config(config.fields)
        # One limiter, keyed by metric name: each metric gets its own `limit` series.
        limiter = CardinalityLimiter(config.cardinality_limit or default_cardinality_limit)
        rate = config.sample_rate
        self._rate_field = rate if isinstance(rate, str) else None
        self._rate = None if isinstance(rate, str) or rate == 1 else rate
        integral = self._rate is None or float(self._rate).is_integer()
        self._metrics = [_MetricState(c, MetricKind.SUM, self.layout, limiter, integral, self.start_ns,
                                      label_cache) for c in config.counters]
        self._metrics += [_MetricState(h, _histogram_kind(h, default_aggregation), self.layout, limiter,
                                       integral, self.start_ns, label_cache) for h in config.histograms]
        self._indexes: dict[tuple[str, ...], KeyIndex] = {}
        for m in self._metrics:
            if m.label_fields not in self._indexes:
                size = sum(self.layout.field(f).size for f in m.label_fields)
                self._indexes[m.label_fields] = KeyIndex(size, max_label_keys)
        self.self_attributes: Attributes = (("otelbpf.program", program), ("otelbpf.stream", self.name))
        self._lock = threading.Lock()
        self.events = 0
        self.lost = 0
        self.skipped = 0
        self.dropped: dict[str, int] = {}  # reason → records skipped (for one metric or all)
        self._drops_reported: set[str] = set()
        self.collections = 0  # completed collections: the clock of `idle_intervals`
        self._flush_ns = None if config.flush_interval is None else int(config.flush_interval * 1e9)
        self._next_flush_ns = None if self._flush_ns is None else self.start_ns + self._flush_ns
        self._short_lengths_reported: set[int] = set()

    # -- drain side ---------------------------------------------------------------------------------

    def add(self, batch: RecordBatch) -> None:
        if len(batch) == 0:
            return
        records, short = batch.view(self.layout)
        with self._lock:
            self.events += len(records)
            if short:
                self._skip(batch, short)
            if len(records):
                self._aggregate(records)

    def add_lost(self, count: int) -> None:
        if count:
            with self._lock:
                self.lost += int(count)

    def add_dropped(self, reason: str, count: int) -> None:
        """Records read but not aggregated (the stream is down): counted in otelbpf.stream.dropped."""
        if count:
            with self._lock:
                self.events += int(count)
                self.dropped[reason] = self.dropped.get(reason, 0) + int(count)

    def _skip(self, batch: RecordBatch, short: int) -> None:
        self.skipped += short
        self.events += short  # consumed all the same
        lengths = np.unique(batch.lengths[batch.lengths < self.layout.min_record_size]).tolist()
        new = [n for n in lengths if n not in self._short_lengths_reported]
        if new:
            self._short_lengths_reported.update(new)
            log.error(
                "stream %s of program %s: records of %s bytes are shorter than the %d bytes the configured "
                "fields need; they are skipped and counted in otelbpf.stream.skipped "
                "(fix: make the stream's fields match the record struct the BPF program writes)",
                self.name, self.program, ", ".join(map(str, new)), self.layout.min_record_size,
            )

    def _aggregate(self, records: np.ndarray) -> None:
        weights, keep = self._weights(records)
        if keep is not None:
            records = records[keep]
            weights = weights[keep]
            if not len(records):
                return
        key_ids: dict[tuple[str, ...], np.ndarray] = {}
        for fields, index in self._indexes.items():
            key_ids[fields] = index.lookup(index.pack(records, list(fields)))
        for m in self._metrics:
            index = self._indexes[m.label_fields]
            sid = m.series_ids(index, key_ids[m.label_fields])
            values = None if m.value_field is None else records[m.value_field]
            w = weights
            keep = sid >= 0
            for reason, bad in m.value_drops(values, w):
                self._drop(reason, bad & keep)
                keep &= ~bad
            if not keep.all():
                sid = sid[keep]
                values = None if values is None else values[keep]
                w = w[keep] if w is not None and np.ndim(w) else w
            if len(sid):
                m.add(sid, values, w)

    def _weights(self, records: np.ndarray):
        """(weights, records to keep or None).

        Weights are None (every record is one event), a number, or one int64 per record. A rate
        field must hold 1 .. 2^63-1: a zero, negative or larger rate cannot be a sampling rate
        (an uninitialised or corrupt field), so those records are skipped and counted in
        `otelbpf.stream.dropped{reason}` rather than guessed at.
        """
        if self._rate_field is None:
            return self._rate, None
        raw = records[self._rate_field]
        bad = [("sample_rate_zero", raw == 0)]
        if raw.dtype.kind == "i":
            bad.append(("sample_rate_negative", raw < 0))
        elif raw.dtype.itemsize == 8:
            bad.append(("sample_rate_too_large", raw >= np.uint64(1 << 63)))
        keep = None
        for reason, mask in bad:
            if mask.any():
                self._drop(reason, mask)
                keep = ~mask if keep is None else keep & ~mask
        return raw.astype(np.int64), keep

    def _drop(self, reason: str, mask: np.ndarray) -> None:
        n = int(np.count_nonzero(mask))
        if not n:
            return
        self.dropped[reason] = self.dropped.get(reason, 0) + n
        if reason not in self._drops_reported:
            self._drops_reported.add(reason)
            log.warning(
                "stream %s of program %s: records with %s are skipped and counted in "
                "otelbpf.stream.dropped{reason=%s} (fix: check what the BPF program writes into the field)",
                self.name, self.program, reason.replace("_", " "), reason)

    # -- export side ----------------------------------------------------------------------------------

    def snapshot(self, now_ns: int | None = None) -> _Snapshot:
        """A copy of the state. With `now_ns` it is a collection: idle series expire first, and
        series created from now on start at `now_ns`."""
        with self._lock:
            if now_ns is not None:
                self.collections += 1
                for m in self._metrics:
                    m.expire(self.collections, self.config.idle_intervals)
                    m.start_ns = max(m.start_ns, now_ns)
            metrics = []
            for m in self._metrics:
                state = m.values[:len(m.attributes)].copy() if m.kind is MetricKind.SUM else m.histograms.copy()
                metrics.append((m, list(m.attributes), list(m.starts), state))
            if now_ns is not None and self._next_flush_ns is not None and now_ns >= self._next_flush_ns:
                # After the copy: what was counted up to now is exported before the restart.
                for m in self._metrics:
                    m.flush(now_ns)
                while self._next_flush_ns <= now_ns:
                    self._next_flush_ns += self._flush_ns
            dropped = dict(self.dropped)
            nonfinite = sum(m.histograms.dropped_nonfinite for m in self._metrics if m.kind is not MetricKind.SUM)
            if nonfinite:
                dropped["non_finite_value"] = nonfinite
            return _Snapshot(self.events, self.lost, self.skipped, dropped, metrics)

    def collect(self, now_ns: int, *, extra_lost: int = 0) -> list[Metric]:
        """Cumulative metrics: the configured counters and histograms, then the stream self metrics.

        `extra_lost` adds losses counted elsewhere (ring buffer reserve failures from `<map>_drops`).
        """
        snap = self.snapshot(now_ns)
        out: list[Metric] = []
        for m, attributes, starts, state in snap.metrics:
            c = m.config
            if m.kind is MetricKind.SUM:
                points = tuple(NumberPoint(a, v, now_ns, t0)
                               for a, v, t0 in zip(attributes, state.tolist(), starts) if a is not None)
            else:
                points = tuple(state.point(i, a, t0, now_ns)
                               for i, (a, t0) in enumerate(zip(attributes, starts)) if a is not None)
            out.append(Metric(c.name, c.help, c.unit, m.kind, points))
        out.append(self._self_counter("otelbpf.stream.events", "Records read from the stream.", snap.events, now_ns))
        out.append(self._self_counter(
            "otelbpf.stream.lost", "Records the kernel could not write because the buffer was full.",
            snap.lost + extra_lost, now_ns))
        out.append(self._self_counter(
            "otelbpf.stream.skipped", "Records skipped because they are shorter than the configured fields.",
            snap.skipped, now_ns))
        if snap.dropped:
            points = tuple(NumberPoint(self.self_attributes + (("reason", reason),), count, now_ns, self.start_ns)
                           for reason, count in sorted(snap.dropped.items()))
            out.append(Metric("otelbpf.stream.dropped",
                              "Records skipped for a metric because a value or sample rate is out of range.",
                              "{record}", MetricKind.SUM, points))
        return out

    def _self_counter(self, name: str, help: str, value: int, now_ns: int) -> Metric:
        point = NumberPoint(self.self_attributes, int(value), now_ns, self.start_ns)
        return Metric(name, help, "{record}", MetricKind.SUM, (point,))


def gauge(name: str, help: str, unit: str, attributes: Attributes, value: int | float, now_ns: int) -> Metric:
    return Metric(name, help, unit, MetricKind.GAUGE, (NumberPoint(attributes, value, now_ns),))


__all__ = ["StreamAggregator", "DEFAULT_CARDINALITY_LIMIT", "gauge"]
