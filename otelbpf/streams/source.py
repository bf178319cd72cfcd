"""StreamSource: one configured stream, wired end to end (map → reader → aggregator → metrics).

`open_stream` picks the reader for the map type, finds the `<map>_drops` reserve-failure counter
that OTELBPF_RINGBUF() declares next to a ring, and builds the aggregator. The source is a
`MetricSource` for the flush loop; a `StreamDrainer` keeps it drained in the background.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from otelbpf.kernel.maps import MapType
from otelbpf.metrics.model import Metric
from otelbpf.streams.aggregate import StreamAggregator, gauge
from otelbpf.streams.perfbuf import PerfBufferReader
from otelbpf.streams.records import RecordBatch
from otelbpf.streams.ringbuf import RingBufferReader

DROPS_SUFFIX = "_drops"


class DrainedSource:
    """What the `StreamDrainer` keeps for every source it drains: whether it is up, why it failed
    and when to try again. A source whose reader cannot be rebuilt is simply marked up again on
    restart; sources with per-CPU rings override `discard`/`open_new_cpus`."""

    up = True
    error: str | None = None  # why the source last failed
    failures = 0  # failures since the last successful restart
    retry_at = 0.0  # time.monotonic() of the next restart attempt

    def failed(self, error: BaseException, backoff: float) -> None:
        """Reading failed: the source is down until `retry_at` (now + `backoff`)."""
        self.up = False
        self.error = f"{type(error).__name__}: {error}"
        self.failures += 1
        self.retry_at = time.monotonic() + backoff

    def restart(self) -> None:
        self.up = True
        self.error = None

    def discard(self, max_batches: int = 64) -> None:
        """Called instead of `drain` while the source is down."""

    def open_new_cpus(self) -> list[int]:
        return []


class StreamSource(DrainedSource):
    """A reader and its aggregator. `drain()` moves everything readable into the aggregator.

    `up` is False while the source is waiting to be restarted after a failure (`failed`,
    `restart`, driven by the StreamDrainer); `open_reader` builds a fresh reader of the same map.
    """

    def __init__(self, reader: RingBufferReader | PerfBufferReader, aggregator: StreamAggregator, *,
                 drops_map=None, open_reader: Callable[[], RingBufferReader | PerfBufferReader] | None = None):
        self.reader = reader
        self.aggregator = aggregator
        self.drops_map = drops_map
        self.open_reader = open_reader
        self.name = f"{aggregator.program}/{aggregator.name}"
        self._lost_seen = 0
        self.caught_up = True

    def filenos(self) -> list[int]:
        return self.reader.filenos()

    def drain(self, max_batches: int = 64) -> int:
        """Read until the ring is empty (the kernel wakes only a reader that caught up), or until
        `max_batches` batches so that one flooded stream cannot starve the others; records read.
        `caught_up` says which of the two happened."""
        total, self.caught_up, self._lost_seen = _drain(self.reader, self.aggregator, self._lost_seen, max_batches)
        return total

    def restart(self) -> None:
        """Replace the reader with a fresh one of the same map, then read what the old one still
        holds (a perf reader's rings keep their samples and LOST records) before closing it."""
        if self.open_reader is None:
            raise RuntimeError("this stream source cannot reopen its reader")
        old = self.reader
        self.reader = self.open_reader()
        lost_seen, self._lost_seen = self._lost_seen, 0
        try:
            if not old.closed:
                while True:
                    got, caught_up, lost_seen = _drain(old, self.aggregator, lost_seen, 64)
                    if caught_up:
                        break
        finally:
            if isinstance(old, PerfBufferReader):
                old.close(clear_map=False)  # the new reader owns the map's slots now
            else:
                old.close()
        self.up = True
        self.error = None

    def discard(self, max_batches: int = 64) -> None:
        """While down, a perf reader's rings are still read so that the kernel's LOST records keep
        arriving (they are written only once the ring has room again, and the rings are replaced
        on restart): their samples count as otelbpf.stream.dropped{reason=stream_down}. A ring
        buffer keeps its records for the restarted reader (reserve failures are counted by the
        program in `<map>_drops` meanwhile)."""
        if not isinstance(self.reader, PerfBufferReader) or self.reader.closed:
            return
        for _ in range(max_batches):
            batch = self.reader.read()
            if self.reader.lost != self._lost_seen:
                self.aggregator.add_lost(self.reader.lost - self._lost_seen)
                self._lost_seen = self.reader.lost
            if len(batch) == 0:
                return
            self.aggregator.add_dropped("stream_down", len(batch))

    def track_online_cpus(self) -> list[int]:
        """A perf reader follows CPU hotplug (`PerfBufferReader.track_online_cpus`); the fds of its
        new rings (none for a ring buffer)."""
        return self.reader.track_online_cpus() if isinstance(self.reader, PerfBufferReader) and self.up else []

    def dropped(self) -> int:
        """Reserve failures the BPF program counted in its per-CPU `<map>_drops` array (key 0)."""
        if self.drops_map is None:
            return 0
        values = self.drops_map.lookup_percpu(b"\0\0\0\0")
        return sum(int.from_bytes(v[:8], "little") for v in values or ())

    def collect(self, now_ns: int) -> list[Metric]:
        metrics = self.aggregator.collect(now_ns, extra_lost=self.dropped())
        metrics.append(gauge("otelbpf.stream.up", "1 while the stream is read, 0 while its reader waits for a restart.",
                             "{stream}", self.aggregator.self_attributes, int(self.up), now_ns))
        if isinstance(self.reader, RingBufferReader) and not self.reader.closed:
            attrs = self.aggregator.self_attributes
            metrics.append(gauge("otelbpf.stream.ringbuf.usage", "Bytes written to the ring buffer and not read yet.",
                                 "By", attrs, self.reader.available(), now_ns))
            metrics.append(gauge("otelbpf.stream.ringbuf.limit", "Data size of the ring buffer.",
                                 "By", attrs, self.reader.size, now_ns))
        return metrics

    def close(self) -> None:
        self.reader.close()


def _drain(reader, aggregator: StreamAggregator, lost_seen: int, max_batches: int) -> tuple[int, bool, int]:
    """(records read, caught up, reader.lost accounted so far): read `reader` into `aggregator`."""
    total = 0
    for _ in range(max_batches):
        batch: RecordBatch = reader.read()
        if reader.lost != lost_seen:
            aggregator.add_lost(reader.lost - lost_seen)
            lost_seen = reader.lost
        if len(batch) == 0:
            return total, True, lost_seen
        aggregator.add(batch)
        total += len(batch)
    return total, False, lost_seen


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
        def open_reader():
            return RingBufferReader(bpf_map)
    elif bpf_map.type == MapType.PERF_EVENT_ARRAY:
        def open_reader():
            return PerfBufferReader(bpf_map, pages_per_cpu)
    else:
        raise ValueError(f"stream {config.map!r}: map type {bpf_map.type!r} is neither RINGBUF nor PERF_EVENT_ARRAY")
    reader = open_reader()
    drops = maps.get(drops_map or config.map + DROPS_SUFFIX)
    if drops is not None and drops.type != MapType.PERCPU_ARRAY:
        drops = None  # a same-named map of another kind is not our counter
    if drops_map and drops is None:
        reader.close()
        raise ValueError(f"stream {config.map!r}: drops map {drops_map!r} is missing or not a PERCPU_ARRAY")
    return StreamSource(reader, aggregator, drops_map=drops, open_reader=open_reader)


__all__ = ["StreamSource", "open_stream", "DROPS_SUFFIX"]
