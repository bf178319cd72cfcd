"""Event streams through the real agent: exact counts with delta temporality (each series sent once
per export, failed exports merged), and a record layout larger than the records the program writes
(skipped, counted, reported once; other programs unaffected)."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from agentproc import CONF_D, AgentProcess, grpc_points, programs_dir, write_agent_config
from reliability_harness import no_traceback, wait_flushes
from workloads import GetpidChild

pytestmark = [pytest.mark.kernel, pytest.mark.backend, pytest.mark.slow]


def unique_command(tmp_path) -> tuple[str, str]:
    """A copy of /bin/true under a name no other process on the host has (comm: 15 chars)."""
    name = f"otb{uuid.uuid4().hex[:12]}"
    path = tmp_path / name
    shutil.copy("/bin/true", path)
    return name, str(path)


def series_keys(export) -> list[tuple]:
    out = []
    for rm in export.request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                data = getattr(m, m.WhichOneof("data"))
                for dp in data.data_points:
                    attrs = tuple(sorted((a.key, str(a.value)) for a in dp.attributes))
                    out.append((sm.scope.name, m.name, attrs))
    return out


def test_exec_counts_exact_with_delta_across_an_outage(tmp_path, bpf_build, grpc_receiver, pin_dir):
    name, path = unique_command(tmp_path)
    with GetpidChild() as child:
        programs = programs_dir(tmp_path, child.pid)
        shutil.copy(CONF_D / "execsnoop.toml", programs / "execsnoop.toml")
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    temporality="delta", programs=["syscalls", "execsnoop"],
                                    programs_dir=programs, pin_dir=pin_dir)
        with AgentProcess(config) as agent:
            wait_flushes(agent, ok=True)
            for _ in range(7):
                subprocess.run([path], check=True)
            wait_flushes(agent, ok=True)
            grpc_receiver.fail_next(4)
            for _ in range(5):
                subprocess.run([path], check=True)
            child.getpid(10)
            wait_flushes(agent, 2, ok=False)
            wait_flushes(agent, ok=True, timeout=60)
            subprocess.run([path], check=True)
            assert agent.stop() == 0
        no_traceback(agent)
    for export in grpc_receiver.received:
        keys = series_keys(export)
        assert len(keys) == len(set(keys)), "a series was sent twice in one request"
    execs = grpc_points(grpc_receiver.received, "execsnoop.execs", **{"process.executable.name": name})
    assert sum(p.as_int for p in execs) == 13
    assert sum(p.as_int for p in grpc_points(grpc_receiver.received, "syscalls",
                                             syscall="getpid")) == 10
    lost = grpc_points(grpc_receiver.received, "otelbpf.stream.lost")
    assert lost and sum(p.as_int for p in lost) == 0


def test_stream_layout_larger_than_the_records(tmp_path, bpf_build, grpc_receiver, pin_dir):
    _name, path = unique_command(tmp_path)
    with GetpidChild() as child:
        programs = programs_dir(tmp_path, child.pid)
        text = (CONF_D / "execsnoop.toml").read_text()
        bigger = text.replace('    { name = "pcomm", type = "char[16]" },\n',
                              '    { name = "pcomm", type = "char[16]" },\n'
                              '    { name = "extra", type = "u64" },\n')
        assert bigger != text
        (programs / "execsnoop.toml").write_text(bigger)
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    programs=["syscalls", "execsnoop"], programs_dir=programs,
                                    pin_dir=pin_dir)
        with AgentProcess(config) as agent:
            wait_flushes(agent, ok=True)
            for _ in range(3):
                subprocess.run([path], check=True)
            child.getpid(33)
            line = agent.wait_log(lambda e: "are shorter than the" in str(e.get("event")))
            subprocess.run([path], check=True)
            assert agent.stop() == 0
        no_traceback(agent)
    assert "exec_events" in line["event"] and "otelbpf.stream.skipped" in line["event"]
    assert sum("are shorter than the" in str(e.get("event")) for e in agent.logs) == 1
    last = grpc_receiver.received[-1:]
    skipped = grpc_points(last, "otelbpf.stream.skipped")
    events = grpc_points(last, "otelbpf.stream.events")
    assert skipped[0].as_int >= 4 and skipped[0].as_int == events[0].as_int
    assert grpc_points(grpc_receiver.received, "execsnoop.execs") == []
    assert grpc_points(last, "syscalls", syscall="getpid")[0].as_int == 33
