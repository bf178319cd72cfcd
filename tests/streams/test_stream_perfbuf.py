"""PerfBufferReader against a real PERF_EVENT_ARRAY: stream_test.bpf.c's perf_burst writes
exactly N samples for each getpgid(N) this process makes."""

from __future__ import annotations

import os

import pytest

from otelbpf.streams.perfbuf import PerfBufferReader
from tests.streams.generators import Readiness, seqs

pytestmark = pytest.mark.kernel


def burst(n: int) -> None:
    try:
        os.getpgid(n)  # the tracepoint fires on entry; the pid need not exist
    except ProcessLookupError:
        pass


@pytest.fixture
def perf_burst(stream_test):
    stream_test.attach("perf_burst")
    return stream_test


def test_reads_exact_samples(perf_burst):
    with PerfBufferReader(perf_burst.maps["test_perf"], 8) as reader:
        burst(100)
        batch = reader.read()
        assert seqs(batch) == list(range(100))
        # 16 bytes written; the kernel pads raw data so the 8-byte header + u32 size + raw is 8-aligned
        assert batch.lengths.tolist() == [20] * 100
        assert reader.lost == 0
        assert len(reader.read()) == 0


def test_wraps_around_a_one_page_ring(perf_burst):
    got = []
    with PerfBufferReader(perf_burst.maps["test_perf"], 1) as reader:
        for _ in range(60):  # 100 x 32-byte records per round in a 4096-byte ring
            burst(100)
            batch = reader.read()
            got.append(seqs(batch))
        assert reader.lost == 0
    assert got == [list(range(100))] * 60


def test_lost_samples_are_counted(perf_burst):
    with PerfBufferReader(perf_burst.maps["test_perf"], 1) as reader:
        burst(10_000)
        read = len(reader.read())
        assert 0 < read <= 4096 // 32
        assert reader.lost == 0
        # The kernel writes the PERF_RECORD_LOST record before the next sample that fits.
        burst(1)
        read += len(reader.read())
        assert read + reader.lost == 10_001


def test_wait_wakes_up_per_sample(perf_burst):
    with PerfBufferReader(perf_burst.maps["test_perf"], 4) as reader:
        ready = Readiness(reader)
        assert ready(0.05) is False
        burst(1)
        assert ready(5.0) is True
        assert seqs(reader.read()) == [0]


def test_a_new_reader_takes_over_after_close(perf_burst):
    perf_map = perf_burst.maps["test_perf"]
    with PerfBufferReader(perf_map, 1) as first:
        burst(3)
        assert seqs(first.read()) == [0, 1, 2]
    with PerfBufferReader(perf_map, 2) as second:
        burst(4)
        assert seqs(second.read()) == [0, 1, 2, 3]


def test_pages_per_cpu_must_be_a_power_of_two(perf_burst):
    with pytest.raises(ValueError, match="power of two"):
        PerfBufferReader(perf_burst.maps["test_perf"], 3)


def test_watermark_wakes_only_past_the_threshold_but_read_sees_everything(perf_burst):
    with PerfBufferReader(perf_burst.maps["test_perf"], 4, wakeup_bytes=4096) as reader:
        ready = Readiness(reader)
        burst(10)  # 320 bytes: below the watermark, no wake-up
        assert ready(0.1) is False
        assert seqs(reader.read()) == list(range(10))
        burst(200)  # 6400 bytes: past it
        assert ready(5.0) is True
        assert len(reader.read()) == 200
