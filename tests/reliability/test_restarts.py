"""Agent restarts without resets: pinned aggregate maps and persisted start times outlive a kill -9.

A changed layout (the config reads the map's bytes differently, or the object's map changed) must
not inherit old counts: it gets a fresh map, a new start time and a log line that says why.
"""

from __future__ import annotations

import itertools
import json
import os
import re

import pytest
from agentproc import AgentProcess, grpc_points, programs_dir, syscalls_toml, write_agent_config
from reliability_harness import no_traceback, wait_flushes
from workloads import SYS_GETPID, GetpidChild

from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.maps import BpfMap

pytestmark = [pytest.mark.kernel, pytest.mark.backend, pytest.mark.slow]


def run_then_kill(config, child, n, env=None) -> AgentProcess:
    agent = AgentProcess(config, env=env)
    wait_flushes(agent, ok=True)
    child.getpid(n)
    wait_flushes(agent, ok=True)  # exported at least once after the work
    agent.kill()  # SIGKILL: no detach, no final flush, no cleanup
    return agent


def test_kill_9_restart_continues_the_cumulative_series_in_victoria_metrics(
        tmp_path, bpf_build, victoria_metrics, run_id, pin_dir):
    vm = victoria_metrics
    sel = f'syscall="getpid",test_run="{run_id}"'
    env = {"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"}
    with GetpidChild() as child:
        config = write_agent_config(tmp_path, endpoint=vm.otlp_http_endpoint, programs=["syscalls"],
                                    programs_dir=programs_dir(tmp_path, child.pid), pin_dir=pin_dir)
        first = run_then_kill(config, child, 600, env)
        assert first.proc.returncode == -9
        assert vm.value(f"syscalls_total{{{sel}}}") == 600
        with AgentProcess(config, env=env) as agent:
            started = agent.wait_event("program loaded", program="syscalls")
            child.getpid(45)
            assert agent.stop() == 0
        no_traceback(agent)
    assert started  # loaded from the pinned map: no "series start" line for a reused pin
    assert not [e for e in agent.logs if e.get("event") == "series start"]
    # One series (stable service.instance.id), the exact total, and no counter reset in between.
    assert vm.value(f"syscalls_total{{{sel}}}") == 645
    assert vm.value(f"resets(syscalls_total{{{sel}}}[1h])") == 0
    assert len(vm.query(f"count_over_time(syscalls_total{{{sel}}}[1h])")) == 1


def test_kill_9_restart_keeps_start_time_over_grpc(tmp_path, bpf_build, grpc_receiver, pin_dir):
    with GetpidChild() as child:
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    programs=["syscalls"],
                                    programs_dir=programs_dir(tmp_path, child.pid), pin_dir=pin_dir)
        run_then_kill(config, child, 300)
        before = len(grpc_receiver.received)
        with AgentProcess(config) as agent:
            wait_flushes(agent, ok=True)
            child.getpid(12)
            assert agent.stop() == 0
        no_traceback(agent)
    points = grpc_points(grpc_receiver.received, "syscalls", syscall="getpid")
    old = grpc_points(grpc_receiver.received[:before], "syscalls", syscall="getpid")
    new = grpc_points(grpc_receiver.received[before:], "syscalls", syscall="getpid")
    assert old and new
    assert {p.start_time_unix_nano for p in points} == {old[0].start_time_unix_nano}
    assert new[-1].as_int == 312
    assert [p.as_int for p in points] == sorted(p.as_int for p in points)  # never goes down


def split_label_config(target_tgid: int) -> str:
    """syscalls.toml with its 4-byte key read as two 2-byte labels: same map, new meaning."""

    text = syscalls_toml(target_tgid)
    new, n = re.subn(
        r'\{ name = "syscall", size = 4,.*\},',
        '{ name = "syscall", size = 2, decoders = [{ name = "uint" }] },\n'
        '    { name = "high", size = 2, decoders = [{ name = "uint" }] },', text)
    assert n == 1, text
    return new


def test_changed_key_layout_gets_a_fresh_map_and_start_time(tmp_path, bpf_build, grpc_receiver,
                                                            pin_dir):
    with GetpidChild() as child:
        programs = programs_dir(tmp_path, child.pid)
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    programs=["syscalls"], programs_dir=programs, pin_dir=pin_dir)
        run_then_kill(config, child, 100)
        old = grpc_points(grpc_receiver.received, "syscalls", syscall="getpid")
        (programs / "syscalls.toml").write_text(split_label_config(child.pid))
        before = len(grpc_receiver.received)
        with AgentProcess(config) as agent:
            line = agent.wait_event("series start", program="syscalls")
            wait_flushes(agent, ok=True)
            child.getpid(7)
            assert agent.stop() == 0
        no_traceback(agent)
    assert line["map"] == "syscall_counts"
    assert "layout changed" in line["reason"], line
    new = grpc_points(grpc_receiver.received[before:], "syscalls",
                      syscall=str(SYS_GETPID), high="0")
    # Only what happened after the change: the old 100 calls are not read with the new layout.
    assert new[-1].as_int == 7
    assert new[-1].start_time_unix_nano > old[-1].time_unix_nano
    state = json.loads((tmp_path / "state" / "start_times.json").read_text())
    assert state["syscalls/syscall_counts"]["start_ns"] == new[-1].start_time_unix_nano


def test_pinned_map_with_another_layout_is_replaced(tmp_path, bpf_build, grpc_receiver, pin_dir):
    """Another object's map sits at the pin path (different value size): a fresh map replaces it."""
    with GetpidChild() as child:
        programs = programs_dir(tmp_path, child.pid)
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    programs=["syscalls"], programs_dir=programs, pin_dir=pin_dir)
        (pin_dir / "syscalls").mkdir(parents=True)
        with BpfMap.create(1, 4, 16, 8, name="stale_counts") as stale:  # HASH, 16-byte values
            stale.update(SYS_GETPID.to_bytes(4, "little"), (99).to_bytes(16, "little"))
            path = pin_dir / "syscalls" / "syscall_counts"
            assert lb.bpf_obj_pin(stale.fd, os.fsencode(path)) == 0
        with AgentProcess(config) as agent:
            line = agent.wait_event("series start", program="syscalls")
            wait_flushes(agent, ok=True)
            child.getpid(5)
            assert agent.stop() == 0
        no_traceback(agent)
    assert line["reason"] == "replaced: type HASH -> PERCPU_HASH", line
    points = grpc_points(grpc_receiver.received, "syscalls", syscall="getpid")
    assert points[-1].as_int == 5


def test_kill_9_restart_with_delta_sends_each_count_once(tmp_path, bpf_build, grpc_receiver, pin_dir):
    with GetpidChild() as child:
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    temporality="delta", programs=["syscalls"],
                                    programs_dir=programs_dir(tmp_path, child.pid), pin_dir=pin_dir)
        run_then_kill(config, child, 300)
        with AgentProcess(config) as agent:
            wait_flushes(agent, ok=True)
            child.getpid(12)
            assert agent.stop() == 0
        no_traceback(agent)
    points = grpc_points(grpc_receiver.received, "syscalls", syscall="getpid")
    # The baseline persisted in state_dir: the restarted agent continues the chain of intervals
    # where the killed one left it, instead of re-sending everything since the series start.
    assert sum(p.as_int for p in points) == 312
    for prev, cur in itertools.pairwise(points):
        assert cur.start_time_unix_nano == prev.time_unix_nano, (prev, cur)
