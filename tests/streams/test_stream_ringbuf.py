"""RingBufferReader against real ring buffers, fed by SEC("syscall") generators (stream_test.bpf.c)."""

from __future__ import annotations

import struct
import threading
import time

import pytest

from otelbpf.kernel.maps import BpfMap, MapType
from otelbpf.streams.ringbuf import RingBufferReader
from tests.streams.generators import gen_args, payloads, Readiness, seqs

pytestmark = pytest.mark.kernel


def dropped(drops_map) -> int:
    return sum(int.from_bytes(v, "little") for v in drops_map.lookup_percpu(b"\0" * 4))


def test_reads_every_record_in_order(stream_test):
    with RingBufferReader(stream_test.maps["big_ring"]) as reader:
        stream_test.programs["gen_big"].test_run(gen_args(1000, keys=7))
        batch = reader.read()
        assert batch.stride == 24  # 16-byte payload + 8-byte header: one uniform run
        assert [struct.unpack_from("<II", p) for p in payloads(batch)] == [(i, i % 7) for i in range(1000)]
        assert reader.available() == 0
        assert len(reader.read()) == 0


def test_discarded_records_are_skipped(stream_test):
    with RingBufferReader(stream_test.maps["big_ring"]) as reader:
        stream_test.programs["gen_big"].test_run(gen_args(100, discard_every=3))
        assert seqs(reader.read()) == [i for i in range(100) if i % 3]


def test_variable_length_records(stream_test):
    with RingBufferReader(stream_test.maps["big_ring"]) as reader:
        stream_test.programs["gen_big"].test_run(gen_args(60, vary=5))
        batch = reader.read()
        assert seqs(batch) == list(range(60))
        assert batch.lengths.tolist() == [16 + 8 * (i % 5) for i in range(60)]


def test_wraps_around_a_small_ring_many_times(stream_test):
    # 4096-byte ring, 24-byte records: 4096 is not a multiple of 24, so records straddle the end.
    ring = stream_test.maps["test_ring"]
    assert ring.max_entries == 4096
    got = []
    with RingBufferReader(ring) as reader:
        for i in range(200):
            stream_test.programs["gen_small"].test_run(gen_args(37, first=37 * i))
            got += seqs(reader.read())
    assert got == list(range(37 * 200))
    assert dropped(stream_test.maps["test_ring_drops"]) == 0


def test_reserve_failures_are_counted_in_the_drops_map(stream_test):
    ring, drops = stream_test.maps["test_ring"], stream_test.maps["test_ring_drops"]
    with RingBufferReader(ring) as reader:
        stream_test.programs["gen_small"].test_run(gen_args(500))  # 170 fit in 4096 bytes
        read = len(reader.read())
    assert read == 4096 // 24
    assert read + dropped(drops) == 500


def test_busy_record_stops_the_walk_until_committed(stream_test):
    """A record reserved but not committed blocks everything after it, however long it takes."""
    prog = stream_test.programs["gen_big"]
    release = stream_test.maps["spin_release"]
    with RingBufferReader(stream_test.maps["big_ring"]) as reader:
        # The generator commits 4 records, reserves the 5th and holds it until we release it.
        writer = threading.Thread(target=prog.test_run, args=(gen_args(5, first=100, spin=64),))
        writer.start()
        deadline = time.monotonic() + 5
        while reader.available() < 5 * 24 and time.monotonic() < deadline:
            time.sleep(0.001)
        during = seqs(reader.read())
        again = seqs(reader.read())
        release.update(b"\0" * 4, struct.pack("<I", 1))
        writer.join()
        after = seqs(reader.read())
    assert during == [100, 101, 102, 103]
    assert again == []
    assert after == [104]


def test_wait_wakes_up_on_new_records(stream_test):
    prog = stream_test.programs["gen_big"]
    with RingBufferReader(stream_test.maps["big_ring"]) as reader:
        ready = Readiness(reader)
        assert ready(0.05) is False
        timer = threading.Timer(0.1, prog.test_run, args=(gen_args(3),))
        timer.start()
        started = time.monotonic()
        assert ready(5.0) is True
        assert time.monotonic() - started < 4
        timer.join()
        assert seqs(reader.read()) == [0, 1, 2]


def test_rejects_a_ring_size_that_is_not_a_power_of_two_of_pages():
    class FakeMap:  # only the size check runs: nothing is mapped
        fd, name, max_entries = -1, "odd", 3 * 4096

    with pytest.raises(ValueError, match="power-of-two"):
        RingBufferReader(FakeMap())


def test_scratch_ring_created_from_python_reads_empty(bpf_build):
    with BpfMap.create(MapType.RINGBUF, 0, 0, 1 << 16, name="scratch_rb") as ring, RingBufferReader(ring) as reader:
        assert reader.size == 1 << 16
        assert reader.available() == 0
        assert len(reader.read()) == 0
