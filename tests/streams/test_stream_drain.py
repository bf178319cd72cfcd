"""StreamDrainer: background draining of several streams, decoupled from collect()."""

from __future__ import annotations

import os
import threading
import time

import pytest

from otelbpf.config.program import (
    StreamConfig,
    StreamCounterConfig,
    StreamFieldConfig,
    StreamLabelConfig,
)
from otelbpf.streams.aggregate import StreamAggregator
from otelbpf.streams.drain import StreamDrainer
from otelbpf.streams.ringbuf import RingBufferReader
from otelbpf.streams.source import StreamSource, open_stream
from tests.streams.generators import gen_args

pytestmark = pytest.mark.kernel

FIELDS = (StreamFieldConfig("seq", "u32", 0), StreamFieldConfig("key", "u32", 4), StreamFieldConfig("value", "u64", 8))


def config(map_name: str) -> StreamConfig:
    return StreamConfig(map=map_name, fields=FIELDS, counters=(
        StreamCounterConfig("records", "", "1", labels=(StreamLabelConfig("key", "key"),)),))


def totals(source) -> dict:
    out = {}
    for m in source.collect(time.time_ns()):
        for p in m.points:
            out[(m.name, p.attributes)] = p.value
    return out


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_drains_ring_and_perf_streams_in_the_background(stream_test):
    stream_test.attach("perf_burst")
    ring = open_stream(config("big_ring"), stream_test.maps, program="stream_test")
    perf = open_stream(config("test_perf"), stream_test.maps, program="stream_test", pages_per_cpu=64)
    assert ring.drops_map is stream_test.maps["big_ring_drops"]
    with StreamDrainer(poll_timeout=0.1) as drainer:
        drainer.add(ring)
        drainer.add(perf)
        drainer.start()
        for i in range(20):
            stream_test.programs["gen_big"].test_run(gen_args(1000, first=1000 * i, keys=4))
            try:
                os.getpgid(50)
            except ProcessLookupError:
                pass
        wait_for(lambda: ring.aggregator.events == 20_000 and perf.aggregator.events == 1000)
        ring_totals, perf_totals = totals(ring), totals(perf)
    assert {k[1]: v for k, v in ring_totals.items() if k[0] == "records"} == {
        (("key", str(k)),): 5000 for k in range(4)}
    assert perf_totals[("records", (("key", "0"),))] == 1000
    assert perf_totals[("otelbpf.stream.lost", perf.aggregator.self_attributes)] == 0
    assert ring_totals[("otelbpf.stream.lost", ring.aggregator.self_attributes)] == 0
    assert ring_totals[("otelbpf.stream.ringbuf.usage", ring.aggregator.self_attributes)] == 0


def test_collect_is_not_blocked_by_draining(stream_test):
    """collect() only copies state under the lock: while a producer floods the ring it stays fast."""
    source = open_stream(config("big_ring"), stream_test.maps, program="stream_test")
    prog = stream_test.programs["gen_big"]
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            prog.test_run(gen_args(20_000, first=i, keys=100))
            i += 20_000

    producer = threading.Thread(target=produce)
    with StreamDrainer(poll_timeout=0.1) as drainer:
        drainer.add(source)
        drainer.start()
        producer.start()
        slowest = 0.0
        try:
            for _ in range(20):
                started = time.perf_counter()
                source.collect(time.time_ns())
                slowest = max(slowest, time.perf_counter() - started)
                time.sleep(0.01)
        finally:
            stop.set()
            producer.join()
        wait_for(lambda: source.reader.available() == 0)
    assert source.aggregator.events > 0
    assert slowest < 0.25


def test_a_failing_stream_is_dropped_and_the_others_keep_draining(stream_test):
    good = open_stream(config("big_ring"), stream_test.maps, program="stream_test")
    bad = open_stream(config("test_ring"), stream_test.maps, program="stream_test")

    def broken():
        raise RuntimeError("reader exploded")

    bad.drain = broken
    with StreamDrainer(poll_timeout=0.05) as drainer:
        drainer.add(bad)
        drainer.add(good)
        drainer.start()
        stream_test.programs["gen_big"].test_run(gen_args(10))
        wait_for(lambda: good.aggregator.events == 10)
        assert good.aggregator.events == 10
        assert drainer.failures == {bad.name: "reader exploded"}


def test_stop_drains_what_is_left_and_close_releases_the_readers(stream_test):
    source = open_stream(config("big_ring"), stream_test.maps, program="stream_test")
    drainer = StreamDrainer(poll_timeout=5.0)
    drainer.add(source)
    drainer.start()
    drainer.stop()
    stream_test.programs["gen_big"].test_run(gen_args(7))
    drainer.drain_once()
    assert source.aggregator.events == 7
    drainer.close()
    assert source.reader.closed


def test_layout_larger_than_the_records_is_reported_once_and_counted(stream_test, caplog):
    """The program writes 16-byte records; a config describing 24 bytes must not crash anything."""
    too_big = StreamConfig(map="big_ring", fields=FIELDS + (StreamFieldConfig("extra", "u64", 16),), counters=(
        StreamCounterConfig("records", "", "1", labels=(StreamLabelConfig("key", "key"),)),))
    source = open_stream(too_big, stream_test.maps, program="stream_test")
    with caplog.at_level("ERROR", logger="otelbpf.streams.aggregate"):
        for _ in range(3):
            stream_test.programs["gen_big"].test_run(gen_args(10))
            source.drain()
    got = totals(source)
    source.close()
    attrs = source.aggregator.self_attributes
    assert got[("otelbpf.stream.skipped", attrs)] == 30
    assert got[("otelbpf.stream.events", attrs)] == 30
    assert not [k for k in got if k[0] == "records"]
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 1
    assert "records of 16 bytes are shorter than the 24 bytes" in errors[0]


def test_a_flooded_stream_yields_after_max_batches(stream_test):
    reader = RingBufferReader(stream_test.maps["big_ring"], max_batch_bytes=4096)
    source = StreamSource(reader, StreamAggregator(config("big_ring"), program="stream_test"))
    stream_test.programs["gen_big"].test_run(gen_args(1000))  # 24,000 bytes: 6 batches of ~4096
    first = source.drain(max_batches=2)
    assert not source.caught_up
    assert first == 2 * -(-4096 // 24)  # a record starting inside the batch limit is read whole
    rest = source.drain()
    assert source.caught_up
    assert first + rest == 1000 == source.aggregator.events
    source.close()
