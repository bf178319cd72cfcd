"""Collector outages: the agent keeps collecting while exports fail, and nothing is lost.

Cumulative: the next successful export carries the kernel's totals. Delta: intervals whose export
failed are merged into the next delta point (DeltaConverter keeps the last *exported* baseline), so
the sum of every delta received equals the work done, with start/end times that chain.
"""

from __future__ import annotations

import itertools

import pytest
from agentproc import AgentProcess, grpc_points, programs_dir, write_agent_config
from reliability_harness import flushes, no_traceback, wait_flushes
from workloads import GetpidChild

pytestmark = [pytest.mark.kernel, pytest.mark.backend, pytest.mark.slow]

SECRET = "Bearer otelbpf-secret-9f3c1a"


def test_cumulative_totals_survive_a_victoria_metrics_outage(tmp_path, bpf_build,
                                                               own_victoria_metrics, pin_dir):
    vm = own_victoria_metrics
    with GetpidChild() as child:
        config = write_agent_config(tmp_path, endpoint=vm.otlp_http_endpoint, programs=["syscalls"],
                                    programs_dir=programs_dir(tmp_path, child.pid), pin_dir=pin_dir)
        env = {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization={SECRET}"}
        with AgentProcess(config, env=env) as agent:
            wait_flushes(agent, ok=True)
            child.getpid(1000)
            wait_flushes(agent, ok=True)
            assert vm.value('syscalls_total{syscall="getpid"}') == 1000

            vm.stop()
            child.getpid(200)
            wait_flushes(agent, 2, ok=False)
            child.getpid(30)
            wait_flushes(agent, 1, ok=False)  # three intervals or more lost their export
            vm.start()  # same port, same storage
            wait_flushes(agent, ok=True)
            child.getpid(4)
            assert agent.stop() == 0
        no_traceback(agent)

    assert vm.value('syscalls_total{syscall="getpid"}') == 1234
    # The outage was seen, counted and exported once the backend was back.
    assert agent.count_events("export failed, retries exhausted before the deadline, data dropped") >= 3
    assert vm.value('otelbpf_export_failures_total{reason="retries_exhausted"}') >= 3
    assert vm.value("otelbpf_export_retries_total") >= 1
    assert vm.value('otelbpf_export_requests_total{outcome="retryable_error"}') >= 3
    assert vm.query("otelbpf_export_duration_seconds_count") != []
    # The header's name may be logged, its value never.
    stderr = "".join(agent.raw_stderr)
    assert "authorization" in stderr
    assert "otelbpf-secret-9f3c1a" not in stderr


def test_delta_intervals_merge_across_grpc_outage(tmp_path, bpf_build, grpc_receiver, pin_dir):
    with GetpidChild() as child:
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    temporality="delta", programs=["syscalls"],
                                    programs_dir=programs_dir(tmp_path, child.pid), pin_dir=pin_dir)
        with AgentProcess(config) as agent:
            wait_flushes(agent, ok=True)
            child.getpid(500)
            wait_flushes(agent, ok=True)
            calls = grpc_receiver.calls
            grpc_receiver.fail_next(6)  # UNAVAILABLE: retryable, for several intervals
            child.getpid(70)
            wait_flushes(agent, 2, ok=False)
            child.getpid(8)
            wait_flushes(agent, ok=True, timeout=60)
            assert grpc_receiver.calls >= calls + 6
            child.getpid(1)
            assert agent.stop() == 0
        no_traceback(agent)
        failed = flushes(agent, ok=False)

    assert failed >= 2
    points = grpc_points(grpc_receiver.received, "syscalls", syscall="getpid")
    assert sum(p.as_int for p in points) == 579
    # One chain of intervals: each delta starts where the previously *exported* one ended, so
    # nothing is counted twice and no interval is missing.
    for prev, cur in itertools.pairwise(points):
        assert cur.start_time_unix_nano == prev.time_unix_nano, (prev, cur)
        assert cur.time_unix_nano > cur.start_time_unix_nano
    # The failed intervals were merged into one point that spans them all and carries their counts.
    merged = [p for p in points if p.as_int == 78]
    assert len(merged) == 1, [p.as_int for p in points]
    assert merged[0].time_unix_nano - merged[0].start_time_unix_nano > 2 * 1e9
    # Every received point was sent as delta.
    for export in grpc_receiver.received:
        for rm in export.request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == "syscalls":
                        assert m.sum.aggregation_temporality == 1  # DELTA


def test_unreachable_endpoint_keeps_collecting(tmp_path, bpf_build, pin_dir):
    """Nothing listens at the endpoint: the agent runs, logs failures, and the kernel keeps counting."""
    from backends import free_port

    from otelbpf.kernel.maps import BpfMap

    with GetpidChild() as child:
        config = write_agent_config(tmp_path, endpoint=f"http://127.0.0.1:{free_port()}",
                                    programs=["syscalls"],
                                    programs_dir=programs_dir(tmp_path, child.pid), pin_dir=pin_dir)
        with AgentProcess(config) as agent:
            agent.wait_event("agent started")
            child.getpid(321)
            wait_flushes(agent, 2, ok=False)
            with BpfMap.from_pin(pin_dir / "syscalls" / "syscall_counts") as counts:
                snap = counts.read_all()
            assert agent.proc.poll() is None
            assert agent.stop() == 0
        no_traceback(agent)
    from workloads import SYS_GETPID
    keys = snap.keys[:, :4].copy().view("<u4").ravel()
    assert int(snap.u64().sum(axis=1)[keys == SYS_GETPID].sum()) == 321
    assert agent.count_events("export failed, retries exhausted before the deadline, data dropped") >= 2
