"""ProgramStats against the real kernel: a tracepoint program run exactly N times."""

from __future__ import annotations

import os
import time

import pytest

from otelbpf.health.program_stats import ProgramStats
from otelbpf.kernel.object import BpfObject

from .conftest import points_by, program_stats_config

pytestmark = pytest.mark.kernel

RUNS = 1000


@pytest.fixture
def tracepoint(bpf_build):
    obj = BpfObject.open(bpf_build / "tests" / "health_tracepoint.bpf.o")
    obj.load()
    link = obj.attach("health_tp")
    prog_id = obj.programs["health_tp"].id
    yield obj, link, prog_id
    link.close()
    obj.close()


def test_run_count_grows_by_exactly_the_runs(tracepoint):
    obj, link, prog_id = tracepoint
    stats = ProgramStats(program_stats_config())
    try:
        assert stats.stats.method == "bpf_enable_stats"
        t0 = time.time_ns()
        first = points_by(stats.collect(t0), "bpf.program.id")
        for _ in range(RUNS):
            os.sched_get_priority_max(os.SCHED_OTHER)
        second = points_by(stats.collect(time.time_ns()), "bpf.program.id")
    finally:
        stats.close()

    count0, count1 = first["bpf.program.runs"][prog_id], second["bpf.program.runs"][prog_id]
    assert count1.value - count0.value == RUNS
    time0, time1 = first["bpf.program.run.time"][prog_id], second["bpf.program.run.time"][prog_id]
    assert time1.value > time0.value
    # Seconds now, from the kernel's ns: the same interval, to within the doubles' rounding.
    assert second["bpf.program.run.average_time"][prog_id].value == pytest.approx((time1.value - time0.value) / RUNS,
                                                                                  rel=1e-9)
    assert second["bpf.program.run.average_time"][prog_id].value < 1e-3  # seconds, not ns
    assert 0 < second["bpf.program.cpu.utilization"][prog_id].value < 1
    assert second["bpf.program.run.rate"][prog_id].value > 0
    assert second["bpf.program.recursion.misses"][prog_id].value == 0
    # No interval yet at the first sight of a program: no rates.
    assert prog_id not in first.get("bpf.program.run.rate", {})

    # Cumulative series start at the program's load time, and keep that start.
    assert count0.start_time_ns == count1.start_time_ns == time1.start_time_ns
    assert t0 - 60e9 < count0.start_time_ns <= t0
    attrs = dict(count1.attributes)
    assert attrs["bpf.program.name"] == "health_tp"
    assert attrs["bpf.program.type"] == "tracepoint"
    assert attrs["bpf.program.tag"] == obj.programs["health_tp"].tag


def test_unloaded_programs_stop_being_exported(bpf_build):
    stats = ProgramStats(program_stats_config())
    try:
        obj = BpfObject.open(bpf_build / "tests" / "health_tracepoint.bpf.o")
        obj.load()
        link = obj.attach("health_tp")
        prog_id = obj.programs["health_tp"].id
        assert prog_id in points_by(stats.collect(time.time_ns()), "bpf.program.id")["bpf.program.runs"]
        link.close()
        obj.close()
        deadline = time.monotonic() + 10
        while True:
            seen = points_by(stats.collect(time.time_ns()), "bpf.program.id")
            ids = {i for points in seen.values() for i in points}
            if prog_id not in ids or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert prog_id not in ids
    finally:
        stats.close()


def test_include_exclude(tracepoint):
    _, _, prog_id = tracepoint
    for config, expected in (
        (program_stats_config(include=("health_*",)), True),
        (program_stats_config(include=("nothing_*",)), False),
        (program_stats_config(exclude=("health_tp",)), False),
    ):
        stats = ProgramStats(config)
        try:
            ids = {
                dict(p.attributes)["bpf.program.id"] for m in stats.collect(time.time_ns()) for p in m.points
            }
        finally:
            stats.close()
        assert (prog_id in ids) is expected, config
