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


def test_a_failing_stream_is_restarted_with_backoff_and_the_others_keep_draining(stream_test, caplog):
    """A reader that fails is out of the poll set (the others keep draining), says so in
    otelbpf.stream.up and the log, and is restarted with a fresh reader after a backoff that
    doubles while restarts fail; once restarted it reads what waited in the ring meanwhile."""
    good = open_stream(config("big_ring"), stream_test.maps, program="stream_test")
    bad = open_stream(config("test_ring"), stream_test.maps, program="stream_test")
    real_add, real_open = bad.aggregator.add, bad.open_reader
    broken = {"add": 1, "open": 1}

    def flaky_add(batch):
        if broken["add"]:
            broken["add"] -= 1
            raise RuntimeError("aggregator exploded")
        real_add(batch)

    def flaky_open():
        if broken["open"]:
            broken["open"] -= 1
            raise OSError("mmap refused")
        return real_open()

    bad.aggregator.add, bad.open_reader = flaky_add, flaky_open
    up = lambda: next(m for m in bad.collect(time.time_ns()) if m.name == "otelbpf.stream.up").points[0].value
    with caplog.at_level("WARNING"), StreamDrainer(poll_timeout=0.05, restart_backoff=(0.3, 5.0)) as drainer:
        drainer.add(bad)
        drainer.add(good)
        drainer.start()
        stream_test.programs["gen_small"].test_run(gen_args(3))
        wait_for(lambda: not bad.up)
        assert up() == 0 and drainer.failures == {bad.name: "aggregator exploded"}
        stream_test.programs["gen_small"].test_run(gen_args(4))  # waits in the ring while down
        stream_test.programs["gen_big"].test_run(gen_args(10))
        wait_for(lambda: good.aggregator.events == 10)
        assert good.aggregator.events == 10 and not bad.up
        wait_for(lambda: bad.up and bad.aggregator.events == 4)
        assert bad.aggregator.events == 4 and up() == 1  # the failed batch's 3 records are gone
        stream_test.programs["gen_small"].test_run(gen_args(5))
        wait_for(lambda: bad.aggregator.events == 9)
    assert bad.aggregator.events == 9
    failed = [r.getMessage() for r in caplog.records if "otelbpf.stream.up is 0" in r.getMessage()]
    assert len(failed) == 2
    assert "RuntimeError: aggregator exploded" in failed[0] and "restarts in 0.3s" in failed[0]
    assert "OSError: mmap refused" in failed[1] and "restarts in 0.6s" in failed[1]
    assert any("restarted with a fresh reader" in r.getMessage() for r in caplog.records)


def test_perf_reader_opens_rings_for_cpus_that_come_online(stream_test):
    """CPU hotplug cannot be driven here (it would take a CPU from everyone on the machine), so the
    reader starts with CPU 0 only, as if the others were offline, and picks up the rest."""
    from otelbpf.kernel.perf import online_cpus
    from otelbpf.streams.perfbuf import PerfBufferReader

    cpus = online_cpus()
    if len(cpus) < 2:
        pytest.skip("needs two online CPUs")
    bpf_map = stream_test.maps["test_perf"]
    with PerfBufferReader(bpf_map, 8, cpus=[cpus[0]]) as reader:
        assert len(reader.filenos()) == 1
        new = reader.track_online_cpus()
        assert len(new) == len(cpus) - 1 and len(reader.filenos()) == len(cpus)
        assert reader.track_online_cpus() == []
        stream_test.attach("perf_burst")
        for cpu in cpus:  # a sample from every CPU arrives
            os.sched_setaffinity(0, {cpu})
            try:
                os.getpgid(50)
            except ProcessLookupError:
                pass
        os.sched_setaffinity(0, set(cpus))
        assert len(reader.read()) == 50 * len(cpus)  # getpgid(50): 50 samples per call


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


def test_perf_losses_are_counted_while_the_stream_is_down(stream_test):
    """While a perf stream waits for its restart its rings are still read, so the kernel's LOST
    records keep arriving: every sample is either aggregated, dropped (stream down) or lost."""
    source = open_stream(config("test_perf"), stream_test.maps, program="stream_test", pages_per_cpu=1)

    def broken(batch):
        raise RuntimeError("aggregator exploded")

    source.aggregator.add = broken
    stream_test.attach("perf_burst")
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})

    def samples(n):
        try:
            os.getpgid(n)  # perf_burst writes n samples on this CPU
        except ProcessLookupError:
            pass

    try:
        with StreamDrainer(poll_timeout=0.05, restart_backoff=(60.0, 60.0)) as drainer:
            drainer.add(source)
            drainer.start()
            samples(1)
            wait_for(lambda: not source.up)
            samples(1000)  # far more than one page of ring holds
            wait_for(lambda: source.aggregator.dropped.get("stream_down", 0) > 0)
            samples(1)  # the kernel writes its LOST record once the ring has room again
            wait_for(lambda: source.aggregator.lost > 0)
            time.sleep(0.2)
            dropped = source.aggregator.dropped["stream_down"]
            assert source.aggregator.lost > 0 and not source.up
            assert 1 + dropped + source.aggregator.lost == 1002
            counted = {m.name: m.points for m in source.collect(time.time_ns())}
            assert [p.value for p in counted["otelbpf.stream.up"]] == [0]
            assert counted["otelbpf.stream.lost"][0].value == source.aggregator.lost
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count())))


def test_perf_reader_enables_again_an_event_a_cpu_hotplug_switched_off(stream_test):
    """A CPU that goes offline leaves its perf event switched off until someone enables it again.
    Hotplug cannot be driven here, so the test switches the event off the same way (the
    PERF_EVENT_IOC_DISABLE state) and checks that the next CPU check brings the ring back."""
    import fcntl

    from otelbpf.streams.perfbuf import PerfBufferReader

    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    stream_test.attach("perf_burst")
    try:
        with PerfBufferReader(stream_test.maps["test_perf"], 8) as reader:
            (fd,) = [r.fd for r in reader._rings if r.cpu == cpu]
            fcntl.ioctl(fd, 0x2401, 0)  # PERF_EVENT_IOC_DISABLE: the state hotplug leaves behind
            try:
                os.getpgid(5)
            except ProcessLookupError:
                pass
            assert len(reader.read()) == 0  # switched off: the samples are lost
            reader.track_online_cpus()
            try:
                os.getpgid(5)
            except ProcessLookupError:
                pass
            assert len(reader.read()) == 5
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count())))
