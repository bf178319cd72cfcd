"""The running agent holds exactly the capabilities docs/security.md lists, read from /proc/PID/status."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agentproc import REPO, AgentProcess, programs_dir, write_agent_config

from otelbpf.agent.privileges import process_capabilities, run_time_needs
from otelbpf.config.program import parse_program_config

pytestmark = pytest.mark.kernel
RUN_TIME = frozenset({"CAP_BPF", "CAP_PERFMON"})


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0 or "CAP_SYS_ADMIN" not in process_capabilities()["CapEff"]:
        pytest.skip("needs root with CAP_SYS_ADMIN, to see the agent drop it")


def prog_ids_held(pid: int) -> set[int]:
    """Ids of the BPF programs process ``pid`` holds fds of (from /proc/PID/fdinfo)."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        ids |= {int(m) for m in re.findall(r"^prog_id:\s+(\d+)$", text, re.M)}
    return ids


def wait_run_counts(agent: AgentProcess, program: str, n: int, timeout: float = 20.0) -> list[int]:
    """Run counts the console exporter printed for the agent's own ``program`` (other processes
    on the host may run programs of the same name), once there are ``n`` of them."""
    pattern = re.compile(r"bpf\.program\.runs\{bpf\.program\.id=(\d+),bpf\.program\.name="
                         + program + r",.* (\d+) ")
    mine = prog_ids_held(agent.proc.pid)
    deadline = time.monotonic() + timeout
    while True:
        counts = [int(m.group(2)) for line in list(agent.stdout_lines)
                  if (m := pattern.search(line)) and int(m.group(1)) in mine]
        if len(counts) >= n or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def test_agent_drops_everything_but_bpf_and_perfmon(tmp_path: Path, bpf_build: Path) -> None:
    """Steady state without CAP_SYS_ADMIN, in every thread, with both health sources still working:
    run-time statistics were switched on before the drop, programs are listed by iter/bpf_prog."""
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                programs_dir=programs_dir(tmp_path, os.getpid()), builtins=True)
    with AgentProcess(config, log_level="info") as agent:
        agent.wait_event("agent started")
        counts = wait_run_counts(agent, "count_syscall", 2)
        threads = agent.capabilities()
        assert agent.stop() == 0
    assert len(threads) >= 2  # the stream drainer started after the drop, and holds no more
    for caps in threads:
        assert caps["CapEff"] == RUN_TIME
        assert caps["CapPrm"] == RUN_TIME
        assert caps["CapBnd"] == RUN_TIME
        assert caps["CapInh"] == frozenset() and caps["CapAmb"] == frozenset()
    assert [e["kept"] for e in agent.logs if e.get("event") == "capabilities dropped"] == [sorted(RUN_TIME)]
    assert len(counts) >= 2 and counts[-1] > counts[0], counts  # the program runs and is counted
    # The one expected warning: the console exporter writes to a pipe here, not a terminal.
    assert not [e for e in agent.logs if e.get("level") in ("error", "warning")
                and "not a terminal" not in e.get("event", "")]


def test_keep_capabilities_is_the_exact_set(tmp_path: Path, bpf_build: Path) -> None:
    keep = {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN"}
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                programs_dir=programs_dir(tmp_path, os.getpid()),
                                extra='[security]\nkeep_capabilities = ["CAP_BPF", "perfmon", "CAP_SYS_ADMIN"]\n')
    with AgentProcess(config, log_level="info") as agent:
        agent.wait_event("agent started")
        caps = process_capabilities(agent.proc.pid)
        assert agent.stop() == 0
    assert caps["CapEff"] == caps["CapBnd"] == keep


def test_reload_that_needs_a_dropped_capability_says_which(tmp_path: Path, bpf_build: Path) -> None:
    """program_stats off at start: CAP_SYS_ADMIN is gone, so switching it on by reload cannot work
    and the agent says so in one line naming the capability (and keeps running)."""
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                programs_dir=programs_dir(tmp_path, os.getpid()))
    with AgentProcess(config, log_level="info") as agent:
        agent.wait_event("agent started")
        config.write_text(config.read_text().replace(
            "[builtin.program_stats]\nenabled = false", "[builtin.program_stats]\nenabled = true"))
        agent.signal(signal.SIGHUP)
        agent.wait_event("config reloaded")
        assert agent.stop() == 0
    lines = [e for e in agent.logs if e.get("event") == "reload needs a capability the agent dropped after start"]
    assert [(e["capability"], e["level"]) for e in lines] == [("CAP_SYS_ADMIN", "error")]
    assert "keep_capabilities" in lines[0]["fix"]


def test_kallsyms_decoders_keep_cap_syslog(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "conf/conf.d/syscalls.toml").read_text()
    plain = parse_program_config(text, tmp_path / "syscalls.toml", tmp_path)
    with_ksym = parse_program_config(
        text.replace('{ name = "uint" }, { name = "syscall" }', '{ name = "ksym" }'),
        tmp_path / "syscalls.toml", tmp_path)
    assert run_time_needs([plain]) == RUN_TIME
    assert run_time_needs([plain, with_ksym]) == RUN_TIME | {"CAP_SYSLOG"}


def test_uprobe_programs_keep_cap_sys_admin(tmp_path: Path, bpf_build: Path) -> None:
    """Attaching a uprobe needs CAP_SYS_ADMIN here (tests/security/test_capability_table.py), and
    a reload attaches again: the default keeps it only when a loaded program has a uprobe."""
    text = (Path(__file__).resolve().parents[2] / "conf/conf.d/syscalls.toml").read_text()
    raw_tp = parse_program_config(text, tmp_path / "syscalls.toml", bpf_build)
    uprobe = parse_program_config(text.replace("[parameters]", 'object = "tests/kernel_uprobe.bpf.o"\n[parameters]'),
                                  tmp_path / "syscalls.toml", bpf_build)
    assert uprobe.object.name == "kernel_uprobe.bpf.o"
    assert run_time_needs([raw_tp], uid=0) == RUN_TIME
    assert run_time_needs([raw_tp, uprobe], uid=0) == RUN_TIME | {"CAP_SYS_ADMIN"}


def test_tracepoint_programs_of_a_non_root_agent_keep_dac_read_search(tmp_path: Path, bpf_build: Path) -> None:
    """The systemd unit's user: classic tracepoints read their ids from root-only tracefs."""
    conf_d = Path(__file__).resolve().parents[2] / "conf" / "conf.d"
    execsnoop = parse_program_config((conf_d / "execsnoop.toml").read_text(), conf_d / "execsnoop.toml", bpf_build)
    syscalls = parse_program_config((conf_d / "syscalls.toml").read_text(), conf_d / "syscalls.toml", bpf_build)
    assert run_time_needs([execsnoop, syscalls], uid=0) == RUN_TIME
    assert run_time_needs([syscalls], uid=997) == RUN_TIME
    assert run_time_needs([execsnoop, syscalls], uid=997) == RUN_TIME | {"CAP_DAC_READ_SEARCH"}


def test_check_says_what_run_would_keep(tmp_path: Path, bpf_build: Path) -> None:
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                programs_dir=programs_dir(tmp_path, os.getpid()))
    out = subprocess.run([sys.executable, "-m", "otelbpf", "check", "--config", str(config)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "ok   capabilities after start: CAP_BPF, CAP_PERFMON\n" in out.stdout, out.stdout
