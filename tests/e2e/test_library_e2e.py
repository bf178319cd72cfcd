"""A library program with kernel-computed exponential buckets, end to end: syscall-latency in the
real agent, exported over OTLP/HTTP into VictoriaMetrics, counted exactly there."""

from __future__ import annotations

import pytest
from agentproc import CONF_D, AgentProcess, write_agent_config
from workloads import PythonChild

pytestmark = [pytest.mark.kernel, pytest.mark.backend]

SLEEPS = 60
SLEEP_NS = 2_000_000


def test_syscall_latency_reaches_victoria_metrics_with_its_buckets(tmp_path, bpf_build, victoria_metrics,
                                                                   run_id, pin_dir):
    programs = tmp_path / "conf.d"
    programs.mkdir()
    with PythonChild() as child:
        child.run("import time\nresult = None")
        text = (CONF_D / "syscall-latency.toml").read_text()
        (programs / "syscall-latency.toml").write_text(text.replace("target_tgid = 0", f"target_tgid = {child.pid}"))
        config = write_agent_config(tmp_path, endpoint=victoria_metrics.otlp_http_endpoint,
                                    programs=["syscall-latency"], programs_dir=programs, pin_dir=pin_dir)
        with AgentProcess(config, env={"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"}) as agent:
            agent.wait_event("agent started")
            child.run(f"for _ in range({SLEEPS}): time.sleep({SLEEP_NS / 1e9})")
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
