"""Package streams drains ring buffers and perf buffers and aggregates their records in bulk.

Some events cannot be aggregated in the kernel (unbounded label values, values needing user-space
decoding), so BPF programs emit one record per event into a BPF_MAP_TYPE_RINGBUF or
BPF_MAP_TYPE_PERF_EVENT_ARRAY. Here those records are read straight from the mmap'd rings
(`ringbuf.RingBufferReader`, `perfbuf.PerfBufferReader`), viewed through the configured C struct
layout (`layout`), grouped by label bytes (`grouping`) and aggregated into cumulative counters and
exponential histograms (`aggregate.StreamAggregator`) — numpy passes over whole batches, never a
Python call per event. `source.open_stream` wires one configured stream; `drain.StreamDrainer`
keeps every stream drained on one background thread, independent of the export interval.
"""

from otelbpf.streams.aggregate import StreamAggregator
from otelbpf.streams.drain import StreamDrainer
from otelbpf.streams.perfbuf import PerfBufferReader
from otelbpf.streams.records import RecordBatch
from otelbpf.streams.ringbuf import RingBufferReader
from otelbpf.streams.source import StreamSource, open_stream

__all__ = ["PerfBufferReader", "RecordBatch", "RingBufferReader", "StreamAggregator", "StreamDrainer",
           "StreamSource", "open_stream"]
