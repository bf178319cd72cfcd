"""ProgramStats against the real kernel: a tracepoint program run exactly N times."""

from __future__ import annotations

import os
import time

import pytest

from otelbpf.health.program_stats import ProgramStats
from otelbpf.kernel.features import probe
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
        # BPF_ENABLE_STATS where the kernel has it, else the sysctl (checked against the probe,
        # itself checked against the real command in tests/kernel/test_features.py)
        assert stats.stats.method == ("bpf_enable_stats" if probe().enable_stats else "sysctl")
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


def _start_times(export, prog_id: int) -> set[int]:
    return {dp.start_time_unix_nano for rm in export.request.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics if m.name == "bpf.program.run.count" for dp in m.sum.data_points
            if any(a.key == "bpf.program.id" and a.value.int_value == prog_id for a in dp.attributes)}


def test_start_time_is_identical_across_agent_runs(tracepoint, tmp_path, grpc_receiver, pin_dir):
    """Two runs of the agent (a restart) export the same start time for a program that stayed
    loaded: one that moved by microseconds would read as a counter reset."""
    from agentproc import REPO, AgentProcess, write_agent_config
    from reliability.reliability_harness import wait_flushes

    _obj, _link, prog_id = tracepoint
    starts = []
    for run in range(2):
        (tmp_path / str(run)).mkdir()
        config = write_agent_config(tmp_path / str(run), endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    programs=[], programs_dir=REPO / "conf" / "conf.d", pin_dir=pin_dir,
                                    builtins=True)
        with AgentProcess(config) as agent:
            wait_flushes(agent, ok=True)
            assert agent.stop() == 0
        starts.append(_start_times(grpc_receiver.received[-1], prog_id))
    assert len(starts[0]) == 1 and starts[0] == starts[1], starts
    assert next(iter(starts[0])) <= time.time_ns()
