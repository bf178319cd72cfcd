"""StreamSource: one configured stream, wired end to end (map → reader → aggregator → metrics).

`open_stream` picks the reader for the map type, finds the `<map>_drops` reserve-failure counter
that OTELBPF_RINGBUF() declares next to a ring, and builds the aggregator. The source is a
`MetricSource` for the flush loop; a `StreamDrainer` keeps it drained in the background.
"""

from __future__ import annotations

import time

from otelbpf.kernel.maps import MapType
from otelbpf.metrics.model import Metric
from otelbpf.streams.aggregate import StreamAggregator, gauge
from otelbpf.streams.perfbuf import PerfBufferReader
from otelbpf.streams.records import RecordBatch
from otelbpf.streams.ringbuf import RingBufferReader

DROPS_SUFFIX = "_drops"


class StreamSource:
    """A reader and its aggregator. `drain()` moves everything readable into the aggregator."""

    def __init__(self, reader: RingBufferReader | PerfBufferReader, aggregator: StreamAggregator, *,
                 drops_map=None):
        self.reader = reader
        self.aggregator = aggregator
        self.drops_map = drops_map
        self.name = f"{aggregator.program}/{aggregator.name}"
        self._lost_seen = 0
        self.caught_up = True

    def filenos(self) -> list[int]:
        return self.reader.filenos()

    def drain(self, max_batches: int = 64) -> int:
        """Read until the ring is empty (the kernel wakes only a reader that caught up), or until
        `max_batches` batches so that one flooded stream cannot starve the others; records read.
        `caught_up` says which of the two happened."""
        total = 0
        self.caught_up = False
        for _ in range(max_batches):
            batch: RecordBatch = self.reader.read()
            if self.reader.lost != self._lost_seen:
                self.aggregator.add_lost(self.reader.lost - self._lost_seen)
                self._lost_seen = self.reader.lost
            if len(batch) == 0:
                self.caught_up = True
                break
            self.aggregator.add(batch)
            total += len(batch)
        return total

    def dropped(self) -> int:
        """Reserve failures the BPF program counted in its per-CPU `<map>_drops` array (key 0)."""
        if self.drops_map is None:
            return 0
        values = self.drops_map.lookup_percpu(b"\0\0\0\0")
        return sum(int.from_bytes(v[:8], "little") for v in values or ())

    def collect(self, now_ns: int) -> list[Metric]:
        metrics = self.aggregator.collect(now_ns, extra_lost=self.dropped())
        if isinstance(self.reader, RingBufferReader) and not self.reader.closed:
            attrs = self.aggregator.self_attributes
            metrics.append(gauge("otelbpf.stream.ringbuf.usage", "Bytes written to the ring buffer and not read yet.",
                                 "By", attrs, self.reader.available(), now_ns))
            metrics.append(gauge("otelbpf.stream.ringbuf.limit", "Data size of the ring buffer.",
                                 "By", attrs, self.reader.size, now_ns))
        return metrics

    def close(self) -> None:
        self.reader.close()


def open_stream(config, maps, *, program: str, start_ns: int | None = None, pages_per_cpu: int = 64,
                drops_map: str | None = None, **aggregator_options) -> StreamSource:
    """A StreamSource for `config` (a StreamConfig) over the loaded object's `maps` (name → BpfMap).

    `drops_map` names the reserve-failure counter (default `<map>_drops`, used when present).
    Raises ValueError when the map is missing or is neither a RINGBUF nor a PERF_EVENT_ARRAY.
    """
    bpf_map = maps.get(config.map)
    if bpf_map is None:
        raise ValueError(f"stream {config.map!r}: the object has no map of that name")
    aggregator = StreamAggregator(config, program=program,
                                  start_ns=time.time_ns() if start_ns is None else start_ns, **aggregator_options)
    if bpf_map.type == MapType.RINGBUF:
        reader = RingBufferReader(bpf_map)
    elif bpf_map.type == MapType.PERF_EVENT_ARRAY:
        reader = PerfBufferReader(bpf_map, pages_per_cpu)
    else:
        raise ValueError(f"stream {config.map!r}: map type {bpf_map.type!r} is neither RINGBUF nor PERF_EVENT_ARRAY")
    drops = maps.get(drops_map or config.map + DROPS_SUFFIX)
    if drops is not None and drops.type != MapType.PERCPU_ARRAY:
        drops = None  # a same-named map of another kind is not our counter
    if drops_map and drops is None:
        reader.close()
        raise ValueError(f"stream {config.map!r}: drops map {drops_map!r} is missing or not a PERCPU_ARRAY")
    return StreamSource(reader, aggregator, drops_map=drops)


__all__ = ["StreamSource", "open_stream", "DROPS_SUFFIX"]
