"""The whole path, kernel to backend: the shipped programs and configs, the real agent process,
VictoriaMetrics over OTLP/HTTP and a receiver over OTLP/gRPC, and workloads with a known answer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from agentproc import AgentProcess, grpc_points, programs_dir, write_agent_config
from workloads import GetpidChild, fsync_writes

from otelbpf.kernel.maps import BpfMap

pytestmark = [pytest.mark.kernel, pytest.mark.backend]

GETPIDS = 2500
BIO_MAX_SLOT = 64  # conf/conf.d/biolatency.toml bucket_max: the sum lives at key 65


def kernel_histogram_total(pin_dir: Path) -> int:
    """The biolatency map's own total: every slot's count, leaving out the sum key."""
    with BpfMap.from_pin(pin_dir / "biolatency" / "bio_latency") as bio:
        snap = bio.read_all()
    slots = snap.keys[:, 8:16].copy().view("<u8").ravel()
    counts = snap.u64().sum(axis=1)
    return int(counts[slots <= BIO_MAX_SLOT].sum())


def test_http_exact_counts_in_victoria_metrics(tmp_path, bpf_build, victoria_metrics, run_id, pin_dir):
    with GetpidChild() as child:
        config = write_agent_config(
            tmp_path, endpoint=victoria_metrics.otlp_http_endpoint, programs=["syscalls", "biolatency"],
            programs_dir=programs_dir(tmp_path, child.pid, biolatency=True), pin_dir=pin_dir)
        with AgentProcess(config, env={"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"}) as agent:
            agent.wait_event("agent started")
            agent.wait_log(lambda e: e.get("event") == "flushed" and e.get("ok"))
            child.getpid(GETPIDS)
            fsync_writes(24)
            assert agent.stop() == 0
        assert agent.count_events("flushed") >= 2

    sel = f'test_run="{run_id}"'
    getpid = victoria_metrics.query(f'syscalls_total{{syscall="getpid",{sel}}}')
    assert [s.value for s in getpid] == [GETPIDS]
    # The filter holds: the child made no other syscall than the ones its loop and pipe need.
    assert victoria_metrics.query(f'syscalls_total{{syscall="execve",{sel}}}') == []

    exported = victoria_metrics.query(f"sum(bio_latency_microseconds_count{{{sel}}})")
    kernel_total = kernel_histogram_total(pin_dir)
    assert kernel_total >= 24
    assert [s.value for s in exported] == [kernel_total]
    # Buckets are the kernel's own slots: every vmrange is (2^(k-1), 2^k] or the [0, 1] zero
    # bucket (VictoriaMetrics prints bounds with 4 significant digits).
    slot_ranges = {f"{2.0 ** (k - 1):.3e}...{2.0 ** k:.3e}" for k in range(1, 65)}
    slot_ranges.add(f"{0.0:.3e}...{1.0:.3e}")
    buckets = victoria_metrics.query(f"bio_latency_microseconds_bucket{{{sel}}}")
    assert buckets and sum(s.value for s in buckets) == kernel_total
    for s in buckets:
        assert s.labels["vmrange"] in slot_ranges, s.labels


def test_grpc_exact_counts(tmp_path, bpf_build, grpc_receiver, pin_dir):
    with GetpidChild() as child:
        config = write_agent_config(
            tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc", programs=["syscalls"],
            programs_dir=programs_dir(tmp_path, child.pid), pin_dir=pin_dir)
        with AgentProcess(config) as agent:
            agent.wait_log(lambda e: e.get("event") == "flushed" and e.get("ok"))
            child.getpid(777)
            assert agent.stop() == 0

    getpid = grpc_points(grpc_receiver.received[-1:], "syscalls", syscall="getpid")
    assert [dp.as_int for dp in getpid] == [777]
    last = grpc_receiver.received[-1].request
    assert all(m.sum.is_monotonic for rm in last.resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics if m.name == "syscalls")


def test_console_without_endpoint_shows_metrics(tmp_path, bpf_build, pin_dir):
    with GetpidChild() as child:
        config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                    programs_dir=programs_dir(tmp_path, child.pid), pin_dir=pin_dir)
        with AgentProcess(config) as agent:
            agent.wait_log(lambda e: e.get("event") == "flushed" and e.get("ok"))
            child.getpid(42)
            assert agent.stop() == 0
    text = "".join(agent.stdout_lines)
    assert re.search(r"^\s*syscalls\{syscall=getpid\} 42 \{call\}$", text, re.M), text[-2000:]
