"""StreamAggregator: batches of stream records → cumulative counters and histograms.

Everything per record is a numpy pass over the whole batch: view the records through the
configured layout, turn each record's label bytes into a key id (grouping.KeyIndex), map key ids
to series ids (decoding each raw key once, when first seen), then `bincount` for counters and
`ExponentialHistograms.record` / `ExplicitHistograms.record` for histograms. Python code runs per batch, per metric and per new
label key, never per record.

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
from otelbpf.config.program import default_decoders
from otelbpf.decoders import build_chain
from otelbpf.metrics.model import Attributes, Metric, MetricKind, NumberPoint
from otelbpf.streams.grouping import KeyIndex
from otelbpf.streams.layout import RecordLayout, layout_from_config
from otelbpf.streams.records import RecordBatch

log = logging.getLogger(__name__)

DEFAULT_CARDINALITY_LIMIT = 2000


class _LabelDecoder:
    """Raw label key (the label fields' bytes, concatenated) → attributes, or None to drop.

    A label without decoders (a config built in code; the loader always fills them in) gets the
    loader's defaults: numbers in decimal, char[N] up to the NUL, u8[N] in hex.
    """

    def __init__(self, labels, layout: RecordLayout):
        self.names = [label.name for label in labels]
        self.fields = [layout.field(label.field) for label in labels]
        self.chains = [build_chain(label.decoders or default_decoders(f.type))
                       for label, f in zip(labels, self.fields)]

    def decode(self, raw: bytes) -> Attributes | None:
        out = []
        pos = 0
        for name, f, chain in zip(self.names, self.fields, self.chains):
            part = raw[pos:pos + f.size]
            pos += f.size
            value = chain(part)
            if value is None:
                return None
            out.append((name, value.decode("utf-8", "replace")))
        return tuple(out)


class _MetricState:
    """One configured counter or histogram: its series and values."""

    def __init__(self, config, kind: MetricKind, layout: RecordLayout, limiter: CardinalityLimiter,
                 integral: bool):
        self.config = config
        self.kind = kind
        self.label_fields = tuple(label.field for label in config.labels)
        self.value_field = config.value
        self.decoder = _LabelDecoder(config.labels, layout)
        self.limiter = limiter
        self.series: dict[Attributes, int] = {}
        self.attributes: list[Attributes] = []
        self.key_series = np.zeros(0, dtype=np.int64)  # KeyIndex id → series id (-1: dropped)
        self.key_generation = 0
        if kind is MetricKind.SUM:
            # Exact integer sums unless a fractional sample rate makes them fractional.
            self.values = np.zeros(16, dtype=np.int64 if integral else np.float64)
        elif kind is MetricKind.HISTOGRAM:
            self.histograms = ExplicitHistograms(config.bounds or DEFAULT_BOUNDS)
        else:
            self.histograms = ExponentialHistograms(max_size=config.max_size, max_scale=config.scale)

    def learn_keys(self, index: KeyIndex) -> None:
        """Series ids for the keys `index` just created (decoded once each)."""
        if index.generation != self.key_generation:
            self.key_series = self.key_series[:0]
            self.key_generation = index.generation
        if not index.new_keys:
            return
        ids = [self._series_id(raw) for raw in index.new_keys]
        self.key_series = np.concatenate([self.key_series, np.array(ids, dtype=np.int64)])

    def _series_id(self, raw: bytes) -> int:
        attrs = self.decoder.decode(raw)
        if attrs is None:
            return -1
        if not self.limiter.admit(self.config.name, attrs):
            attrs = OVERFLOW_ATTRIBUTES
        sid = self.series.get(attrs)
        if sid is None:
            sid = len(self.attributes)
            self.series[attrs] = sid
            self.attributes.append(attrs)
            if self.kind is MetricKind.SUM and sid >= len(self.values):
                self.values = np.concatenate([self.values, np.zeros_like(self.values)])
        return sid

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
            self.values += np.bincount(sid, minlength=n)
        else:
            amount = np.ones(len(sid), dtype=np.int64) if values is None else values.astype(np.int64)
            if weights is not None:
                amount = amount * _int_weights(weights)
            np.add.at(self.values, sid, amount)


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
    metrics: list


class StreamAggregator:
    """Aggregates one stream's records as its config says.

    `program` names the BPF program (the `otelbpf.program` attribute of the self metrics);
    `start_ns` is the start time of every cumulative point (default: now);
    `default_aggregation` is what a histogram left at "auto" becomes ("auto" keeps it exponential).
    """

    def __init__(self, config, *, program: str, start_ns: int | None = None,
                 default_cardinality_limit: int = DEFAULT_CARDINALITY_LIMIT, max_label_keys: int = 1 << 16,
                 default_aggregation: str = "auto"):
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
        self._metrics = [_MetricState(c, MetricKind.SUM, self.layout, limiter, integral) for c in config.counters]
        self._metrics += [_MetricState(h, _histogram_kind(h, default_aggregation), self.layout, limiter, integral)
                          for h in config.histograms]
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
        weights = self._weights(records)
        key_ids: dict[tuple[str, ...], np.ndarray] = {}
        for fields, index in self._indexes.items():
            key_ids[fields] = index.lookup(index.pack(records, list(fields)))
        for m in self._metrics:
            index = self._indexes[m.label_fields]
            m.learn_keys(index)
            sid = m.key_series[key_ids[m.label_fields]]
            values = None if m.value_field is None else records[m.value_field]
            w = weights
            keep = sid >= 0
            if not keep.all():
                sid = sid[keep]
                values = None if values is None else values[keep]
                w = w[keep] if w is not None and np.ndim(w) else w
            if len(sid):
                m.add(sid, values, w)

    def _weights(self, records: np.ndarray):
        """None (every record is one event), a number, or one int64 weight per record (0 counts as 1)."""
        if self._rate_field is not None:
            w = records[self._rate_field].astype(np.int64)
            w[w == 0] = 1
            return w
        return self._rate

    # -- export side ----------------------------------------------------------------------------------

    def snapshot(self) -> _Snapshot:
        with self._lock:
            metrics = []
            for m in self._metrics:
                state = m.values[:len(m.attributes)].copy() if m.kind is MetricKind.SUM else m.histograms.copy()
                metrics.append((m, list(m.attributes), state))
            return _Snapshot(self.events, self.lost, self.skipped, metrics)

    def collect(self, now_ns: int, *, extra_lost: int = 0) -> list[Metric]:
        """Cumulative metrics: the configured counters and histograms, then the stream self metrics.

        `extra_lost` adds losses counted elsewhere (ring buffer reserve failures from `<map>_drops`).
        """
        snap = self.snapshot()
        start = self.start_ns
        out: list[Metric] = []
        for m, attributes, state in snap.metrics:
            c = m.config
            if m.kind is MetricKind.SUM:
                points = tuple(NumberPoint(a, _number(v), now_ns, start) for a, v in zip(attributes, state.tolist()))
            else:
                points = tuple(state.point(i, a, start, now_ns) for i, a in enumerate(attributes))
            out.append(Metric(c.name, c.help, c.unit, m.kind, points))
        out.append(self._self_counter("otelbpf.stream.events", "Records read from the stream.", snap.events, now_ns))
        out.append(self._self_counter(
            "otelbpf.stream.lost", "Records the kernel could not write because the buffer was full.",
            snap.lost + extra_lost, now_ns))
        out.append(self._self_counter(
            "otelbpf.stream.skipped", "Records skipped because they are shorter than the configured fields.",
            snap.skipped, now_ns))
        return out

    def _self_counter(self, name: str, help: str, value: int, now_ns: int) -> Metric:
        point = NumberPoint(self.self_attributes, int(value), now_ns, self.start_ns)
        return Metric(name, help, "{record}", MetricKind.SUM, (point,))


def _number(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def gauge(name: str, help: str, unit: str, attributes: Attributes, value: int | float, now_ns: int) -> Metric:
    return Metric(name, help, unit, MetricKind.GAUGE, (NumberPoint(attributes, value, now_ns),))


__all__ = ["StreamAggregator", "DEFAULT_CARDINALITY_LIMIT", "gauge"]
