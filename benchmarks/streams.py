"""Stream throughput, side by side, on one ring buffer: how many events/s each consumer drains
and aggregates into one exponential histogram per label value (100 label values).

Records come from bpf/tests/stream_bench.bpf.c, a SEC("syscall") program that writes N records
per BPF_PROG_TEST_RUN with bpf_loop, so producing costs no system call per record. Each round
fills the 16 MiB ring with ROUND records (untimed), then times one consumer draining all of them.

  (1) otelbpf: RingBufferReader + StreamAggregator (mmap, numpy, vectorised histograms)
  (2) libbpf ring_buffer__consume with a Python ctypes callback per record; the callback only
      stores (key, value), aggregation then runs vectorised exactly as in (1)
  (3) OpenTelemetry SDK Histogram.record() per event (exponential aggregation), timed on a
      20K-event subset (records read by our reader, untimed) and reported as a rate
  (4) C: libbpf ring_buffer__consume with a C callback (benchmarks/ringbuf_consumer.c, compiled
      here with gcc), count + sum + base-2 bucket per label: the ceiling
Then a sustained run: a producer thread paces 1M events/s into the ring for 10 s while the
StreamDrainer thread drains it; records lost (reserve failures) must be zero.

Run as root from the repository root:  python3 benchmarks/streams.py
The last line of output is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from otelbpf.aggregate.exponential import ExponentialHistograms  # noqa: E402
from otelbpf.config.program import (StreamConfig, StreamFieldConfig, StreamHistogramConfig,  # noqa: E402
                                    StreamLabelConfig)
from otelbpf.kernel import libbpf as lb  # noqa: E402
from otelbpf.kernel.object import BpfObject  # noqa: E402
from otelbpf.streams.aggregate import StreamAggregator  # noqa: E402
from otelbpf.streams.drain import StreamDrainer  # noqa: E402
from otelbpf.streams.ringbuf import RingBufferReader  # noqa: E402
from otelbpf.streams.source import StreamSource  # noqa: E402

KEYS = 100
RING_BYTES = 16 << 20
RECORD_STRIDE = 24  # 16-byte payload + 8-byte header
ROUND = 600_000  # records per round: fits the 16 MiB ring (699050) with room to spare

CONFIG = StreamConfig(
    map="bench_ring",
    fields=(StreamFieldConfig("key", "u32", 0), StreamFieldConfig("pad", "u32", 4),
            StreamFieldConfig("value", "u64", 8)),
    histograms=(StreamHistogramConfig("bench.value", "Benchmark values", "us", value="value",
                                      labels=(StreamLabelConfig("key", "key"),)),),
)


class Bench:
    def __init__(self):
        subprocess.run(["make", "-s", "-C", str(REPO / "bpf")], check=True)
        self.obj = BpfObject.open(REPO / "bpf" / "build" / "tests" / "stream_bench.bpf.o")
        self.obj.load()
        self.ring = self.obj.maps["bench_ring"]
        self.drops = self.obj.maps["bench_ring_drops"]
        self.prog = self.obj.programs["bench_generate"]
        self.seq = 0

    def produce(self, n: int) -> None:
        self.prog.test_run(struct.pack("<3I", n, KEYS, self.seq))
        self.seq += n

    def dropped(self) -> int:
        return sum(int.from_bytes(v, "little") for v in self.drops.lookup_percpu(b"\0" * 4))

    def close(self) -> None:
        self.obj.close()


def timed_rounds(bench: Bench, rounds: int, consume) -> dict:
    """Rates over `rounds` rounds of ROUND records, timing only `consume()` (returns records read).

    events_per_s is per wall-clock second; events_per_cpu_s per second of this thread's CPU time,
    which is what the consumer would reach on an otherwise idle core (the machine is shared).
    """
    wall = cpu = 0.0
    total = 0
    for _ in range(rounds):
        bench.produce(ROUND)
        started, started_cpu = time.perf_counter(), time.thread_time()
        got = consume()
        wall += time.perf_counter() - started
        cpu += time.thread_time() - started_cpu
        if got != ROUND:
            raise RuntimeError(f"consumer read {got} records, expected {ROUND}")
        total += got
    return {"events_per_s": total / wall, "events_per_cpu_s": total / cpu, "events": total}


def path_otelbpf(bench: Bench, rounds: int) -> dict:
    reader = RingBufferReader(bench.ring)
    agg = StreamAggregator(CONFIG, program="bench")

    def consume() -> int:
        n = 0
        while len(batch := reader.read()):
            agg.add(batch)
            n += len(batch)
        return n

    timed_rounds(bench, 1, consume)  # warm up: first keys, numpy caches
    result = timed_rounds(bench, rounds, consume)
    series = [m for m in agg.collect(time.time_ns()) if m.name == "bench.value"][0].points
    reader.close()
    assert len(series) == KEYS
    return result


def path_python_callback(bench: Bench, rounds: int) -> dict:
    keys: list[int] = []
    values: list[int] = []
    unpack = struct.Struct("<IIQ").unpack

    @lb.RING_BUFFER_SAMPLE_FN
    def on_record(ctx, data, size):
        key, _pad, value = unpack(ctypes.string_at(data, 16))
        keys.append(key)
        values.append(value)
        return 0

    rb = lb.check_ptr(lb.ring_buffer__new(bench.ring.fd, on_record, None, None), "ring_buffer__new")
    hist = ExponentialHistograms(160, 20)

    def consume() -> int:
        keys.clear()
        values.clear()
        lb.check(lb.ring_buffer__consume(rb), "ring_buffer__consume")
        hist.record(np.array(keys, dtype=np.int64) % KEYS, np.array(values, dtype=np.uint64))
        return len(keys)

    try:
        return timed_rounds(bench, rounds, consume)
    finally:
        lb.ring_buffer__free(rb)


def path_otel_sdk(bench: Bench, sample: int) -> dict:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=[
        View(instrument_name="bench.value", aggregation=ExponentialBucketHistogramAggregation(max_size=160))])
    hist = provider.get_meter("bench").create_histogram("bench.value")
    attrs = [{"key": str(k)} for k in range(KEYS)]
    # Records read with our reader (not timed); the SDK's per-event record() is what is timed.
    ring = RingBufferReader(bench.ring)
    bench.produce(sample)
    batch = ring.read()
    words = np.frombuffer(batch.data, dtype=np.uint8)
    keys = [int.from_bytes(words[o:o + 4].tobytes(), "little") for o in batch.offsets.tolist()]
    vals = [int.from_bytes(words[o + 8:o + 16].tobytes(), "little") for o in batch.offsets.tolist()]
    ring.close()
    started, started_cpu = time.perf_counter(), time.thread_time()
    for k, v in zip(keys, vals):
        hist.record(v, attrs[k])
    wall, cpu = time.perf_counter() - started, time.thread_time() - started_cpu
    provider.shutdown()
    return {"events_per_s": len(keys) / wall, "events_per_cpu_s": len(keys) / cpu, "events": len(keys)}


def path_c(bench: Bench, rounds: int, workdir: Path) -> dict:
    so = workdir / "ringbuf_consumer.so"
    subprocess.run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(so),
                    str(REPO / "benchmarks" / "ringbuf_consumer.c"), "-lbpf"], check=True)
    lib = ctypes.CDLL(str(so))
    lib.consumer_open.restype = ctypes.c_void_p
    lib.consumer_open.argtypes = [ctypes.c_int]
    lib.consumer_consume.restype = ctypes.c_long
    lib.consumer_consume.argtypes = [ctypes.c_void_p]
    lib.consumer_close.argtypes = [ctypes.c_void_p]
    consumer = lib.consumer_open(bench.ring.fd)
    if not consumer:
        raise RuntimeError("consumer_open failed")
    try:
        return timed_rounds(bench, rounds, lambda: lib.consumer_consume(consumer))
    finally:
        lib.consumer_close(consumer)


def sustained(bench: Bench, rate: int, seconds: float) -> dict:
    """`rate` events/s for `seconds` produced in 10 ms slices by a thread; drained by StreamDrainer."""
    reader = RingBufferReader(bench.ring)
    agg = StreamAggregator(CONFIG, program="bench")
    source = StreamSource(reader, agg, drops_map=bench.drops)
    dropped_before = bench.dropped()
    slice_s = 0.01
    per_slice = int(rate * slice_s)
    produced = 0
    max_used = 0

    def produce() -> None:
        nonlocal produced
        start = time.monotonic()
        for i in range(int(seconds / slice_s)):
            delay = start + i * slice_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            bench.produce(per_slice)
            produced += per_slice

    drainer = StreamDrainer(poll_timeout=0.1)
    drainer.add(source)
    drainer.start()
    producer = threading.Thread(target=produce)
    started = time.monotonic()
    producer.start()
    while producer.is_alive():
        max_used = max(max_used, reader.available())
        time.sleep(0.005)
    producer.join()
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 10
    while agg.events < produced and time.monotonic() < deadline:
        time.sleep(0.01)
    drainer.close()
    return {
        "target_events_per_s": rate,
        "seconds": round(elapsed, 2),
        "produced": produced,
        "consumed": agg.events,
        "lost": bench.dropped() - dropped_before,
        "max_ring_fill_bytes": max_used,
        "ring_bytes": RING_BYTES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds of 600K records for paths 1 and 4")
    parser.add_argument("--callback-rounds", type=int, default=2, help="rounds for the ctypes callback path")
    parser.add_argument("--sdk-sample", type=int, default=20_000, help="events timed through the OTel SDK")
    parser.add_argument("--sustained-rate", type=int, default=1_000_000)
    parser.add_argument("--sustained-seconds", type=float, default=10.0)
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]
    bench = Bench()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = {
                "otelbpf": path_otelbpf(bench, args.rounds),
                "python_ctypes_callback": path_python_callback(bench, args.callback_rounds),
                "otel_sdk_histogram_record": path_otel_sdk(bench, args.sdk_sample),
                "c_libbpf_consumer": path_c(bench, args.rounds, Path(tmp)),
            }
        print(f"{'path':28s} {'M events/s':>12s} {'M events/cpu-s':>15s}")
        for name, r in results.items():
            print(f"{name:28s} {r['events_per_s'] / 1e6:12.3f} {r['events_per_cpu_s'] / 1e6:15.3f}")
        for unit in ("events_per_s", "events_per_cpu_s"):
            ours = results["otelbpf"][unit]
            results[f"ratios_{unit}"] = {
                "otelbpf_vs_python_callback": ours / results["python_ctypes_callback"][unit],
                "otelbpf_vs_otel_sdk": ours / results["otel_sdk_histogram_record"][unit],
                "otelbpf_vs_c": ours / results["c_libbpf_consumer"][unit],
            }
            print(unit, {k: round(v, 3) for k, v in results[f"ratios_{unit}"].items()})
        results["sustained"] = sustained(bench, args.sustained_rate, args.sustained_seconds)
        print("sustained:", results["sustained"])
    finally:
        bench.close()
    results["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
                          "numpy": np.__version__,
                          "loadavg_1m_start": load_at_start, "loadavg_1m_end": os.getloadavg()[0]}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
