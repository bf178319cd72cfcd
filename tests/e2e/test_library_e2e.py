"""A library program with kernel-computed exponential buckets, end to end: syscall-latency in the
real agent, exported over OTLP/HTTP into VictoriaMetrics, counted exactly there."""

from __future__ import annotations

import os

import pytest
from agentproc import CONF_D, AgentProcess, write_agent_config
from workloads import SYS_GETPID, PythonChild

pytestmark = [pytest.mark.kernel, pytest.mark.backend]

SLEEPS = 60
SLEEP_NS = 2_000_000


def test_syscall_latency_reaches_victoria_metrics_with_its_buckets(tmp_path, bpf_build, victoria_metrics,
                                                                   run_id, pin_dir):
    programs = tmp_path / "conf.d"
    programs.mkdir()
    with PythonChild() as child:
        child.run("import ctypes\nlibc = ctypes.CDLL(None)\nresult = None")
        text = (CONF_D / "syscall-latency.toml").read_text()
        (programs / "syscall-latency.toml").write_text(text.replace("target_tgid = 0", f"target_tgid = {child.pid}"))
        config = write_agent_config(tmp_path, endpoint=victoria_metrics.otlp_http_endpoint,
                                    programs=["syscall-latency"], programs_dir=programs, pin_dir=pin_dir)
        with AgentProcess(config, env={"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"}) as agent:
            agent.wait_event("agent started")
            # usleep(): each call blocks at least this long from its own start (time.sleep() sleeps
            # to a deadline taken before the call, so a preempted child may sleep less).
            child.run(f"for _ in range({SLEEPS}): libc.usleep({SLEEP_NS // 1000})")
            assert agent.stop() == 0

    sel = f'test_run="{run_id}",syscall="clock_nanosleep"'
    count = victoria_metrics.query(f"sum(syscall_duration_nanoseconds_count{{{sel}}})")
    assert [s.value for s in count] == [SLEEPS]
    buckets = victoria_metrics.query(f"syscall_duration_nanoseconds_bucket{{{sel}}}")
    assert buckets and sum(s.value for s in buckets) == SLEEPS
    for s in buckets:
        # Every sleep lasted at least 2 ms: no bucket below it holds anything.
        upper = float(s.labels["vmrange"].split("...")[1])
        assert upper >= SLEEP_NS, s.labels


def test_a_sampling_program_exports_its_rate_and_counts_scaled_back(tmp_path, bpf_build, victoria_metrics,
                                                                    run_id, pin_dir):
    """sample_every = 10: the kernel counts 1 call in 10 per CPU as 10 calls, and the agent says
    so in otelbpf.program.sample_every; programs without sampling have no such series."""
    programs = tmp_path / "conf.d"
    programs.mkdir()
    calls = 5000
    with PythonChild() as child:
        child.run("import ctypes\nlibc = ctypes.CDLL(None)\nresult = None")
        text = (CONF_D / "syscall-latency.toml").read_text()
        text = text.replace("target_tgid = 0", f"target_tgid = {child.pid}")
        (programs / "syscall-latency.toml").write_text(text.replace("sample_every = 1", "sample_every = 10"))
        (programs / "cpu-switches.toml").write_text((CONF_D / "cpu-switches.toml").read_text())
        config = write_agent_config(tmp_path, endpoint=victoria_metrics.otlp_http_endpoint,
                                    programs=["syscall-latency", "cpu-switches"], programs_dir=programs,
                                    pin_dir=pin_dir)
        with AgentProcess(config, env={"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"}) as agent:
            agent.wait_event("agent started")
            child.run(f"for _ in range({calls}): libc.syscall({SYS_GETPID})")
            assert agent.stop() == 0

    rate = victoria_metrics.query(f'otelbpf_program_sample_every{{test_run="{run_id}"}}')
    assert {s.labels["otelbpf_program"]: s.value for s in rate} == {"syscall-latency": 10}
    count = victoria_metrics.query(
        f'sum(syscall_duration_nanoseconds_count{{test_run="{run_id}",syscall="getpid"}})')
    counted = count[0].value
    assert counted % 10 == 0
    # Each CPU's tick starts anywhere in its cycle of 10.
    assert abs(counted - calls) <= 10 * 2 * os.cpu_count()
