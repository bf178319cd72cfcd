"""Event streams and host BPF health through the real agent into VictoriaMetrics.

Known workloads: exactly N execs of a uniquely named binary (ring buffer, execsnoop) and exactly M
signals to a uniquely named process (perf buffer, signals). The health builtins must report the
agent's own maps and programs under the documented names."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid

import pytest
from agentproc import REPO, AgentProcess, write_agent_config

pytestmark = [pytest.mark.kernel, pytest.mark.backend]

EXECS = 17
SIGNALS = 23


def wait_comm(pid: int, name: str, timeout: float = 5.0) -> None:
    """exec renames the process a little after Popen returns; signals before that carry the old name."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() == name:
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never became {name}")


def test_streams_and_health_reach_victoria_metrics(tmp_path, bpf_build, victoria_metrics, run_id, pin_dir):
    exec_name = f"otx{uuid.uuid4().hex[:10]}"   # comm holds 15 characters
    sig_name = f"ots{uuid.uuid4().hex[:10]}"
    true_copy, sleep_copy = tmp_path / exec_name, tmp_path / sig_name
    shutil.copy("/bin/true", true_copy)
    shutil.copy("/bin/sleep", sleep_copy)

    config = write_agent_config(
        tmp_path, endpoint=victoria_metrics.otlp_http_endpoint, programs=["execsnoop", "signals"],
        programs_dir=REPO / "conf" / "conf.d", pin_dir=pin_dir, builtins=True)
    with AgentProcess(config, env={"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"}) as agent:
        agent.wait_log(lambda e: e.get("event") == "flushed" and e.get("ok"))
        for _ in range(EXECS):
            subprocess.run([str(true_copy)], check=True)
        sleeper = subprocess.Popen([str(sleep_copy), "30"])
        try:
            wait_comm(sleeper.pid, sig_name)
            for _ in range(SIGNALS):
                sleeper.send_signal(signal.SIGWINCH)  # ignored by default: the process stays
        finally:
            sleeper.kill()
            sleeper.wait()
        assert agent.stop() == 0

    sel = f'test_run="{run_id}"'
    execs = victoria_metrics.query(f'execsnoop_execs_total{{process_executable_name="{exec_name}",{sel}}}')
    assert [s.value for s in execs] == [EXECS]
    with open("/proc/self/comm") as f:
        assert execs[0].labels["parent_command"] == f.read().strip()  # this test process ran them
    sigs = victoria_metrics.query(
        f'signals_generated_total{{process_executable_name="{sig_name}",signal="SIGWINCH",{sel}}}')
    assert [s.value for s in sigs] == [SIGNALS]
    # SIGKILL from the cleanup is one more signal to the same process, under its own label.
    assert victoria_metrics.query(
        f'signals_generated_total{{process_executable_name="{sig_name}",signal="SIGKILL",{sel}}}')[0].value == 1

    lost = victoria_metrics.query(f"otelbpf_stream_lost_total{{{sel}}}")
    assert lost and all(s.value == 0 for s in lost)
    events = victoria_metrics.query(f'otelbpf_stream_events_total{{otelbpf_stream="exec_events",{sel}}}')
    assert events and events[0].value >= EXECS
    up = victoria_metrics.query(f"otelbpf_stream_up{{{sel}}}")
    assert sorted((s.labels["otelbpf_stream"], s.value) for s in up) == [("exec_events", 1), ("signal_events", 1)]

    # Host BPF health covers our own maps and programs like any other.
    ring = victoria_metrics.query(f'bpf_ringbuf_limit_bytes{{bpf_map_name="exec_events",{sel}}}')
    assert ring and ring[0].value > 0
    hist = victoria_metrics.query(f'bpf_map_entry_limit{{bpf_map_name="signal_events",{sel}}}')
    assert hist, "perf event array missing from map pressure"
    runs = victoria_metrics.query(f'bpf_program_runs_total{{bpf_program_name="execsnoop",{sel}}}')
    assert runs and runs[0].value >= EXECS
    attached = victoria_metrics.query(f"otelbpf_program_attached{{{sel}}}")
    assert {s.labels["bpf_program_name"]: s.value for s in attached} == {"execsnoop": 1, "signals": 1}
