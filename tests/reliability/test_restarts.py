"""Agent restarts without resets: pinned aggregate maps and persisted start times outlive a kill -9.

A changed layout (the config reads the map's bytes differently, or the object's map changed) must
not inherit old counts: it gets a fresh map, a new start time and a log line that says why.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from agentproc import CONF_D, REPO, AgentProcess, grpc_points, programs_dir, syscalls_toml, write_agent_config
from reliability_harness import no_traceback, wait_flushes
from workloads import SYS_GETPGID, SYS_GETPID, GetpidChild, SyscallChild

from otelbpf.agent.state import AgentState
from otelbpf.errors import ConfigError
from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.links import BpfLink
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
        AgentState(pin_dir, tmp_path / "state").claim_pin_dir(config)  # pin_dir is the agent's
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


def keep_attached(config) -> None:
    config.write_text(config.read_text().replace("[state]\n", "[state]\nkeep_attached = true\n"))


def link_ids(pin_dir, program: str = "syscalls") -> dict[str, int]:
    """{BPF program: link id} of the links pinned for ``program``."""
    ids = {}
    for path in sorted((pin_dir / program / "@links").iterdir()):
        link = BpfLink.open_pinned(path, path.name)
        try:
            ids[path.name] = link_info_id(link.fd)
        finally:
            link.close()
    return ids


def link_info_id(fd: int) -> int:
    info = (ctypes.c_uint32 * 16)()  # struct bpf_link_info starts: u32 type, u32 id
    size = ctypes.c_uint32(ctypes.sizeof(info))
    assert lb.bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)) == 0
    return info[1]


def link_alive(link_id: int) -> bool:
    fd = lb.bpf_link_get_fd_by_id(link_id)
    if fd < 0:
        return False
    os.close(fd)
    return True


def links_gone(ids, timeout: float = 5.0) -> bool:
    """The kernel frees an unpinned link from a work queue: give it a moment."""
    deadline = time.monotonic() + timeout
    while any(link_alive(i) for i in ids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_keep_attached_counts_while_the_agent_is_down(tmp_path, bpf_build, victoria_metrics,
                                                      run_id, pin_dir):
    """Events made while the agent is stopped (SIGTERM), killed (-9) or replaced by one with a
    changed program are in the totals after the restart, exactly; `otelbpf detach` ends it."""
    vm = victoria_metrics
    sel = f'syscall="getpid",test_run="{run_id}"'
    env = {"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"}
    with GetpidChild() as child:
        programs = programs_dir(tmp_path, child.pid)
        config = write_agent_config(tmp_path, endpoint=vm.otlp_http_endpoint, programs=["syscalls"],
                                    programs_dir=programs, pin_dir=pin_dir)
        keep_attached(config)
        with AgentProcess(config, env=env) as agent:
            wait_flushes(agent, ok=True)
            child.getpid(100)
            assert agent.stop() == 0  # SIGTERM
        first = link_ids(pin_dir)
        assert first  # still attached, through the pins
        child.getpid(40)  # nobody is running: only the kernel counts

        with AgentProcess(config, env=env) as agent:
            adopted = agent.wait_event("program adopted: still attached since the previous agent")
            child.getpid(5)
            wait_flushes(agent, ok=True)
            assert vm.value(f"syscalls_total{{{sel}}}") == 145
            agent.kill()  # kill -9: nothing runs at exit
        assert link_ids(pin_dir) == first  # the same links, never detached
        child.getpid(30)

        # A changed program (new help text): its new version replaces the pinned one at start.
        text = (programs / "syscalls.toml").read_text()
        (programs / "syscalls.toml").write_text(text.replace(
            'help = "System calls entered, by system call"', 'help = "System calls (v2)"'))
        with AgentProcess(config, env=env) as agent:
            loaded = agent.wait_event("program loaded", program="syscalls")
            child.getpid(1)
            assert agent.stop() == 0
        assert agent.count_events("program adopted: still attached since the previous agent") == 0
        assert set(link_ids(pin_dir)) == set(first) and not set(link_ids(pin_dir).values()) & set(first.values())
        child.getpid(9)
        with AgentProcess(config, env=env) as agent:
            agent.wait_event("program adopted: still attached since the previous agent")
            wait_flushes(agent, ok=True)
            assert agent.stop() == 0
        no_traceback(agent)
        assert vm.value(f"syscalls_total{{{sel}}}") == 185
        assert vm.value(f"resets(syscalls_total{{{sel}}}[1h])") == 0

        last = link_ids(pin_dir)
        done = subprocess.run([sys.executable, "-m", "otelbpf", "detach", "--config", str(config)],
                              capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, done.stderr
        assert "detached syscalls" in done.stdout
        assert not (pin_dir / "syscalls").exists()
        assert links_gone(last.values())  # detached: the kernel dropped them
    assert adopted["attached"] == sorted(first)
    assert loaded["attached"] == sorted(first)


def test_changed_parameters_start_the_maps_fresh(tmp_path, bpf_build, grpc_receiver, pin_dir):
    """A [parameters] value is part of what a count means: a new value gets a fresh map and a
    new start time (with a log line); the same value again keeps counting."""
    with GetpidChild() as child, GetpidChild() as other:
        programs = programs_dir(tmp_path, child.pid)
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    programs=["syscalls"], programs_dir=programs, pin_dir=pin_dir)
        run_then_kill(config, child, 50)
        (programs / "syscalls.toml").write_text(syscalls_toml(other.pid))
        before = len(grpc_receiver.received)
        with AgentProcess(config) as agent:
            line = agent.wait_event("series start", program="syscalls")
            wait_flushes(agent, ok=True)
            other.getpid(6)
            wait_flushes(agent, ok=True)
            agent.kill()
        middle = len(grpc_receiver.received)
        with AgentProcess(config) as agent:  # same parameters: the counts go on
            wait_flushes(agent, ok=True)
            other.getpid(4)
            assert agent.stop() == 0
        no_traceback(agent)
    assert line["map"] == "syscall_counts" and line["reason"] == "replaced: parameters changed"
    assert not [e for e in agent.logs if e.get("event") == "series start"]
    old = grpc_points(grpc_receiver.received[:before], "syscalls", syscall="getpid")
    new = grpc_points(grpc_receiver.received[before:middle], "syscalls", syscall="getpid")
    last = grpc_points(grpc_receiver.received[middle:], "syscalls", syscall="getpid")
    assert old[-1].as_int == 50 and new[-1].as_int == 6 and last[-1].as_int == 10
    assert new[-1].start_time_unix_nano > old[-1].time_unix_nano
    assert last[-1].start_time_unix_nano == new[-1].start_time_unix_nano


def test_pin_without_a_saved_start_time_starts_fresh(tmp_path, bpf_build, grpc_receiver, pin_dir):
    """Old counts are never reported with start = now: without its start time a pin is replaced."""
    with GetpidChild() as child:
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    programs=["syscalls"],
                                    programs_dir=programs_dir(tmp_path, child.pid), pin_dir=pin_dir)
        run_then_kill(config, child, 50)
        (tmp_path / "state" / "start_times.json").unlink()
        before = len(grpc_receiver.received)
        with AgentProcess(config) as agent:
            line = agent.wait_event("series start", program="syscalls")
            wait_flushes(agent, ok=True)
            child.getpid(3)
            assert agent.stop() == 0
        no_traceback(agent)
    assert line["reason"] == "replaced: pinned map without a saved start time"
    new = grpc_points(grpc_receiver.received[before:], "syscalls", syscall="getpid")
    assert new[-1].as_int == 3


def refused_start(tmp_path, pin_dir, state_dir=None) -> str:
    """Start the agent with this [state]; it must exit 2 with one line on stderr, which is returned."""
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                programs_dir=programs_dir(tmp_path, os.getpid()), pin_dir=pin_dir,
                                state_dir=state_dir)
    done = subprocess.run([sys.executable, "-m", "otelbpf", "run", "--config", str(config)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("otelbpf: ")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_unwritable_state_dir_refuses_to_start(tmp_path, bpf_build, pin_dir):
    (tmp_path / "a-file").write_text("")
    line = refused_start(tmp_path, pin_dir, tmp_path / "a-file" / "state")
    assert "state: state_dir: cannot write" in line and "fix: make it writable" in line, line
    assert not pin_dir.exists()  # refused before anything was pinned


def test_pin_dir_must_be_ours_alone(tmp_path, bpf_build, bpffs, pin_dir):
    line = refused_start(tmp_path, bpffs)
    assert f"pin_dir: {bpffs} is the root of a BPF filesystem" in line, line
    # A directory with someone else's pin: refused, and their pin is left alone.
    pin_dir.mkdir()
    with BpfMap.create(2, 4, 4, 1, name="not_ours") as theirs:
        assert lb.bpf_obj_pin(theirs.fd, os.fsencode(pin_dir / "their_map")) == 0
    line = refused_start(tmp_path, pin_dir)
    assert "holds pins otelbpf did not create (their_map)" in line, line
    assert (pin_dir / "their_map").exists()
    (pin_dir / "their_map").unlink()
    # An empty directory is taken (and marked); the agent then runs.
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                programs_dir=programs_dir(tmp_path, os.getpid()), pin_dir=pin_dir)
    assert subprocess.run([sys.executable, "-m", "otelbpf", "run", "--config", str(config),
                           "--once"], capture_output=True, cwd=REPO,
                          timeout=60).returncode == 0
    assert (pin_dir / "@otelbpf").exists() and (pin_dir / "syscalls" / "syscall_counts").exists()


def test_pin_dir_of_an_agent_older_than_the_marker_is_accepted(tmp_path, bpffs, pin_dir):
    """Upgrades: a pin_dir without the marker whose every entry is a program state_dir knows."""
    (pin_dir / "syscalls").mkdir(parents=True)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "start_times.json").write_text(json.dumps(
        {"syscalls/syscall_counts": {"start_ns": 1, "config_layout": "x"}}))
    AgentState(pin_dir, state_dir).claim_pin_dir("otelbpf.toml")
    assert (pin_dir / "@otelbpf").exists()
    (pin_dir / "@otelbpf").unlink()
    (pin_dir / "other").mkdir()  # unknown to this state_dir: not provably ours
    with pytest.raises(ConfigError, match=r"holds pins otelbpf did not create \(other\)"):
        AgentState(pin_dir, state_dir).claim_pin_dir("otelbpf.toml")


def test_program_removed_while_down_is_detached_at_start(tmp_path, bpf_build, pin_dir):
    with GetpidChild() as child:
        programs = programs_dir(tmp_path, child.pid, biolatency=True)
        config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                    programs_dir=programs, pin_dir=pin_dir)
        keep_attached(config)
        with AgentProcess(config) as agent:
            agent.wait_event("agent started")
            assert agent.stop() == 0
        left = link_ids(pin_dir)
        assert left and all(link_alive(i) for i in left.values())
        config.write_text(config.read_text().replace('programs = ["syscalls"]',
                                                     'programs = ["biolatency"]'))
        with AgentProcess(config) as agent:
            agent.wait_event("program removed: detaching and unpinning what an earlier agent left",
                             program="syscalls")
            agent.wait_event("agent started")
            assert agent.stop() == 0
        no_traceback(agent)
    assert not (pin_dir / "syscalls").exists() and (pin_dir / "biolatency").exists()
    assert links_gone(left.values())


def test_keep_attached_stream_records_written_while_down_are_read_after(tmp_path, bpf_build,
                                                                        grpc_receiver, pin_dir):
    """With keep_attached the ring buffer is pinned too: execs while the agent is down wait in it
    and the next agent, adopting the still-attached program, reads them."""
    name = f"otb{uuid.uuid4().hex[:12]}"
    path = tmp_path / name
    shutil.copy("/bin/true", path)
    programs = tmp_path / "conf.d"
    programs.mkdir()
    shutil.copy(CONF_D / "execsnoop.toml", programs / "execsnoop.toml")
    config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                programs=["execsnoop"], programs_dir=programs, pin_dir=pin_dir)
    keep_attached(config)
    with AgentProcess(config) as agent:
        wait_flushes(agent, ok=True)
        for _ in range(3):
            subprocess.run([path], check=True)
        assert agent.stop() == 0
    before = len(grpc_receiver.received)
    for _ in range(4):
        subprocess.run([path], check=True)  # nobody reads: the records wait in the pinned ring
    with AgentProcess(config) as agent:
        agent.wait_event("program adopted: still attached since the previous agent")
        wait_flushes(agent, ok=True)
        subprocess.run([path], check=True)
        assert agent.stop() == 0
    no_traceback(agent)
    by_name = {"process.executable.name": name}
    first = grpc_points(grpc_receiver.received[:before], "execsnoop.execs", **by_name)
    second = grpc_points(grpc_receiver.received[before:], "execsnoop.execs", **by_name)
    assert first[-1].as_int == 3 and second[-1].as_int == 5
    lost = grpc_points(grpc_receiver.received, "otelbpf.stream.lost")
    assert lost and sum(p.as_int for p in lost) == 0


def test_detach_named_programs(tmp_path, bpf_build, pin_dir):
    """`otelbpf detach NAME` removes that program only; an unknown name exits 1 and says which
    programs are pinned; without names every program goes."""
    programs = programs_dir(tmp_path, os.getpid(), biolatency=True)
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls", "biolatency"],
                                programs_dir=programs, pin_dir=pin_dir)
    keep_attached(config)
    with AgentProcess(config) as agent:
        agent.wait_event("agent started")
        assert agent.stop() == 0
    left = link_ids(pin_dir)

    def detach(*names):
        return subprocess.run([sys.executable, "-m", "otelbpf", "detach", "--config", str(config),
                               *names], capture_output=True, text=True, cwd=REPO, timeout=60)

    done = detach("biolatency", "nosuch")
    assert done.returncode == 1
    assert "not pinned under" in done.stderr and "nosuch" in done.stderr, done.stderr
    assert "pinned: biolatency, syscalls" in done.stderr, done.stderr
    assert not (pin_dir / "biolatency").exists() and link_ids(pin_dir) == left
    done = detach()
    assert done.returncode == 0 and "detached syscalls" in done.stdout, done
    assert not (pin_dir / "syscalls").exists() and links_gone(left.values())
    assert (pin_dir / "@otelbpf").exists()  # pin_dir stays marked as otelbpf's


def test_pin_dir_off_bpffs_runs_unpinned_and_says_so(tmp_path, bpf_build):
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                programs_dir=programs_dir(tmp_path, os.getpid()),
                                pin_dir=tmp_path / "not-bpffs")
    with AgentProcess(config) as agent:
        line = agent.wait_event("pinning disabled: counters start from zero whenever the agent "
                                "starts")
        agent.wait_event("program loaded", program="syscalls")
        assert agent.stop() == 0
    no_traceback(agent)
    assert "cannot pin in" in line["reason"] and "mount -t bpf" in line["fix"]
    assert list((tmp_path / "not-bpffs").iterdir()) == []


def swap_program(obj: str, tgid: int, help_text: str = "calls") -> str:
    return (f'object = "tests/{obj}"\n[parameters]\ntarget_tgid = {tgid}\n'
            f'[[counters]]\nname = "swap.calls"\nhelp = "{help_text}"\nmap = "calls"\n'
            'labels = [{ name = "key", size = 4, decoders = [{ name = "uint" }] }]\n')


def pinned_calls(pin_dir) -> int:
    with BpfMap.from_pin(pin_dir / "swap" / "calls") as m:
        raw = m.lookup((0).to_bytes(4, "little"))
    return 0 if raw is None else int.from_bytes(raw, "little")


def swap_left_attached(tmp_path, pin_dir, child, endpoint=None, env=None):
    """Run the `swap` program once with [state] keep_attached while `child` makes 10 getpid
    calls, then stop the agent: the program stays attached. Returns (swap.toml, agent config)."""
    programs = tmp_path / "conf.d"
    programs.mkdir()
    swap = programs / "swap.toml"
    swap.write_text(swap_program("kernel_swap.bpf.o", child.pid))
    config = write_agent_config(tmp_path, endpoint=endpoint, programs=["swap"],
                                programs_dir=programs, pin_dir=pin_dir)
    keep_attached(config)
    with AgentProcess(config, env=env) as agent:
        if endpoint:
            wait_flushes(agent, ok=True)
        else:
            agent.wait_event("agent started")
        child.getpid(10)
        if endpoint:
            wait_flushes(agent, ok=True)
        assert agent.stop() == 0
    return swap, config


def test_keep_attached_changed_program_failing_at_start_keeps_the_previous_version(
        tmp_path, bpf_build, victoria_metrics, run_id, pin_dir):
    """A version changed while the agent was down shares the pinned map and fails to attach at
    start (a missing tracepoint): the version left attached is detached first (never both
    counting), then attached again by program fd and pinned, and keeps counting exactly; the
    failure is one `program not loaded` line and `otelbpf.program.loaded` 0. Fixed, a good new
    version takes over from the pinned map without a reset."""
    vm = victoria_metrics
    sel = f'key="0",test_run="{run_id}"'
    env = {"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"}
    with GetpidChild() as child:
        swap, config = swap_left_attached(tmp_path, pin_dir, child, vm.otlp_http_endpoint, env)
        links = pin_dir / "swap" / "@links"
        with BpfMap.from_pin(pin_dir / "swap" / "calls") as m:
            map_id = m.id
        child.getpid(5)  # down: only the kernel counts

        swap.write_text(swap_program("kernel_swap_unattachable.bpf.o", child.pid))
        with AgentProcess(config, env=env) as agent:
            failed = agent.wait_event("program not loaded", program="swap")
            kept = agent.wait_event("program kept: the previous agent's version is attached again")
            child.getpid(7)
            assert pinned_calls(pin_dir) == 22  # counting again, into the same pinned map
            wait_flushes(agent, ok=True)
            assert vm.value(f'otelbpf_program_loaded{{otelbpf_program="swap",test_run="{run_id}"}}') == 0
            assert agent.stop() == 0
        no_traceback(agent)
        assert agent.count_events("program not loaded") == 1
        assert agent.count_events("program swapped") == 0
        assert sorted(p.name for p in links.iterdir()) == ["count_getpid"]  # pinned again
        child.getpid(3)  # down again: the kept version still counts
        assert pinned_calls(pin_dir) == 25

        # Rejected before anything is attached (the verifier): the old version is not touched.
        swap.write_text('object = "tests/kernel_bad_only.bpf.o"\n[[counters]]\nname = "bad.count"\n'
                        'map = "values"\n'
                        'labels = [{ name = "key", size = 4, decoders = [{ name = "uint" }] }]\n')
        with AgentProcess(config, env=env) as agent:
            rejected = agent.wait_event("program not loaded", program="swap")
            child.getpid(2)
            assert agent.stop() == 0
        no_traceback(agent)
        assert agent.count_events("program kept: the previous agent's version is attached again") == 0
        assert pinned_calls(pin_dir) == 27

        swap.write_text(swap_program("kernel_swap.bpf.o", child.pid, help_text="calls (v2)"))
        with AgentProcess(config, env=env) as agent:
            swapped = agent.wait_event("program swapped", program="swap")
            agent.wait_event("program loaded", program="swap")
            child.getpid(4)
            wait_flushes(agent, ok=True)
            assert agent.stop() == 0
        no_traceback(agent)
        assert agent.count_events("series start") == 0  # the pinned map and its start time go on
        with BpfMap.from_pin(pin_dir / "swap" / "calls") as m:
            assert m.id == map_id
    assert str(swap) in failed["error"] or "swap.toml" in failed["config"]
    assert "on_missing" in failed["error"] and "sys_enter_otelbpf_missing" in failed["error"]
    assert failed["still_attached"] == ["count_getpid"] and "otelbpf detach swap" in failed["fix"]
    assert kept["attached"] == ["count_getpid"] and kept["uncounted_ms"] >= 0
    assert swapped["uncounted_ms"] > 0  # shared map: the previous version went first
    assert "the verifier rejected the program" in rejected["error"]
    assert rejected["still_attached"] == ["count_getpid"]
    assert vm.value(f"swap_calls_total{{{sel}}}") == 31
    assert vm.value(f"resets(swap_calls_total{{{sel}}}[1h])") == 0


def test_keep_attached_changed_program_sharing_no_map_never_detaches_the_previous_version(
        tmp_path, bpf_build, pin_dir):
    """A new version whose map starts fresh (its key now read as two labels) shares no map with
    the version left attached: it attaches beside it first, and failing (a missing tracepoint)
    it is refused without the old version ever being detached: the same link, the same pin."""
    two_labels = ('labels = [{ name = "lo", size = 2, decoders = [{ name = "uint" }] },\n'
                  '          { name = "hi", size = 2, decoders = [{ name = "uint" }] }]\n')
    with GetpidChild() as child:
        swap, config = swap_left_attached(tmp_path, pin_dir, child)
        links = link_ids(pin_dir, "swap")
        with BpfMap.from_pin(pin_dir / "swap" / "calls") as m:
            map_id = m.id

        new = swap_program("kernel_swap_unattachable.bpf.o", child.pid)
        swap.write_text(re.sub(r"labels = \[.*\]\n", lambda _: two_labels, new))
        with AgentProcess(config) as agent:
            failed = agent.wait_event("program not loaded", program="swap")
            child.getpid(7)
            assert agent.stop() == 0
        no_traceback(agent)
        child.getpid(3)
        assert pinned_calls(pin_dir) == 20
        assert link_ids(pin_dir, "swap") == links  # the same link: never detached
        with BpfMap.from_pin(pin_dir / "swap" / "calls") as m:
            assert m.id == map_id
    assert "on_missing" in failed["error"] and failed["still_attached"] == ["count_getpid"]
    assert agent.count_events("program kept: the previous agent's version is attached again") == 0


def test_keep_attached_version_that_cannot_be_attached_again_is_not_replaced_at_start(
        tmp_path, bpf_build, pin_dir):
    """Links left by an agent that did not pin their programs (older than `@programs`): the agent,
    without CAP_SYS_ADMIN, could not attach them again, so a new version sharing their map is
    refused rather than detaching them: the old version keeps counting through the same link."""
    with GetpidChild() as child:
        swap, config = swap_left_attached(tmp_path, pin_dir, child)
        links = link_ids(pin_dir, "swap")
        shutil.rmtree(pin_dir / "swap" / "@programs")  # as an older agent left it
        swap.write_text(swap_program("kernel_swap.bpf.o", child.pid, help_text="calls (v2)"))
        with AgentProcess(config) as agent:
            failed = agent.wait_event("program not loaded", program="swap")
            child.getpid(7)
            assert agent.stop() == 0
        no_traceback(agent)
        assert pinned_calls(pin_dir) == 17
        assert link_ids(pin_dir, "swap") == links
    assert "could not be attached again" in failed["error"], failed
    assert "count_getpid: its program is not pinned" in failed["error"], failed
    assert "`otelbpf detach swap` then a start installs this version" in failed["error"], failed


def test_counts_by_slot_restart_with_the_table_that_names_the_slots(tmp_path, bpf_build, grpc_receiver,
                                                                    pin_dir):
    """timers counts per slot and names slots in timer_functions (decoder "lookup"): the agent
    pins both, keeps both across a kill -9, and starts the counts afresh when the table is gone."""
    config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                programs=["timers"], programs_dir=CONF_D, pin_dir=pin_dir)
    agent = AgentProcess(config)
    wait_flushes(agent, ok=True)
    agent.kill()
    table, counts = pin_dir / "timers" / "timer_functions", pin_dir / "timers" / "timer_expirations"
    assert table.exists() and counts.exists()
    with BpfMap.from_pin(table) as m:
        first_table = m.id
    with AgentProcess(config) as agent:
        wait_flushes(agent, ok=True)
        assert agent.stop() == 0
    no_traceback(agent)
    assert agent.count_events("series start") == 0, "the pinned counts were not kept"
    with BpfMap.from_pin(table) as m:
        assert m.id == first_table
    kept = grpc_points(grpc_receiver.received, "timer.expirations")
    os.unlink(table)
    before = len(grpc_receiver.received)
    with AgentProcess(config) as agent:
        line = agent.wait_event("series start", program="timers")
        wait_flushes(agent, ok=True)
        assert agent.stop() == 0
    no_traceback(agent)
    assert line["map"] == "timer_expirations"
    assert line["reason"] == 'replaced: map "timer_functions" it is read with starts empty', line
    fresh = grpc_points(grpc_receiver.received[before:], "timer.expirations")
    assert kept and fresh
    assert min(p.start_time_unix_nano for p in fresh) > max(p.time_unix_nano for p in kept)


ALTERNATIVES = ["count_fentry", "count_kprobe", "count_tracepoint", "count_tracepoint_again"]


def alternatives_toml(target_tgid: int, help_text: str = "getpgid calls") -> str:
    """bpf/tests/kernel_alternatives.bpf.c: one process's getpgid calls counted four ways, which
    the config makes alternatives (see tests/kernel/test_alternatives.py)."""
    return (f'object = "kernel_alternatives.bpf.o"\nalternatives = [{json.dumps(ALTERNATIVES)}]\n'
            f"[parameters]\ntarget_tgid = {target_tgid}\n"
            f'[[counters]]\nname = "getpgid.calls"\nhelp = "{help_text}"\nmap = "calls"\n')


def test_keep_attached_keeps_one_alternative_across_restarts(tmp_path, bpf_build, grpc_receiver, pin_dir):
    """The alternative that runs is the one pinned, adopted after a restart, and replaced by a
    changed version's own choice; never one beside another of its group: each call counts once."""
    programs = tmp_path / "conf.d"
    programs.mkdir()
    with SyscallChild() as child:
        (programs / "alternatives.toml").write_text(alternatives_toml(child.pid))
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    programs=["alternatives"], programs_dir=programs,
                                    objects_dir=bpf_build / "tests", pin_dir=pin_dir)
        keep_attached(config)
        with AgentProcess(config) as agent:
            loaded = agent.wait_event("program loaded", program="alternatives")
            child.call(SYS_GETPGID, 0, 100)
            assert agent.stop() == 0
        first = link_ids(pin_dir, "alternatives")
        assert list(first) == loaded["attached"] and len(first) == 1 and set(first) <= set(ALTERNATIVES)
        child.call(SYS_GETPGID, 0, 40)  # the agent is down: the kernel counts
        with AgentProcess(config) as agent:
            adopted = agent.wait_event("program adopted: still attached since the previous agent")
            agent.kill()
        assert adopted["attached"] == loaded["attached"]
        assert link_ids(pin_dir, "alternatives") == first
        (programs / "alternatives.toml").write_text(alternatives_toml(child.pid, "getpgid calls (v2)"))
        before = len(grpc_receiver.received)
        with AgentProcess(config) as agent:
            replaced = agent.wait_event("program loaded", program="alternatives")
            child.call(SYS_GETPGID, 0, 5)
            wait_flushes(agent, ok=True)
            assert agent.stop() == 0
        no_traceback(agent)
        assert replaced["attached"] == loaded["attached"]
        assert set(link_ids(pin_dir, "alternatives")) == set(first)
        subprocess.run([sys.executable, "-m", "otelbpf", "detach", "--config", str(config)],
                       capture_output=True, text=True, cwd=REPO, check=True)
    points = grpc_points(grpc_receiver.received[before:], "getpgid.calls")
    assert points and points[-1].as_int == 145
