"""``otelbpf top --once --json``: one interval measured, against a known workload and a known map."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from otelbpf.kernel import info
from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.object import BpfObject
from agentproc import REPO, AgentProcess, programs_dir, write_agent_config
from .conftest import MAP_KEYS

pytestmark = pytest.mark.kernel


def run_top_json(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "otelbpf", "top", "--once", "--json", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_rate_and_map_of_a_known_program(known_program):
    doc = run_top_json("--interval", "1")
    assert doc["run_time_stats"] in ("bpf_enable_stats", "sysctl")
    prog = next(p for p in doc["programs"] if p["id"] == known_program.prog_id)
    assert prog["name"] == "health_tp" and prog["type"] == "tracepoint"
    # Paced at 2,000 calls/s and nothing else calls sched_get_priority_max.
    assert known_program.rate / 2 < prog["runs_per_s"] < known_program.rate * 2
    assert 0 < prog["avg_ns"] < 1e6
    assert prog["cpu_percent"] == pytest.approx(prog["runs_per_s"] * prog["avg_ns"] / 1e9 * 100, rel=1e-6)
    assert prog["attached"] == ["tracepoint:sys_enter_sched_get_priority_max"]
    assert any(o.startswith("python") for o in prog["owners"])

    m = next(m for m in doc["maps"] if m["id"] == known_program.map_id)
    assert (m["name"], m["type"], m["count_method"]) == (known_program.map_name, "hash", "kfunc")
    assert (m["entries"], m["max_entries"]) == (MAP_KEYS, 1024)
    assert m["utilization"] == pytest.approx(MAP_KEYS / 1024)
    assert m["pressure"] == "ok" and m["memory"] > 0


def test_pressure_thresholds_come_from_the_agent_config(known_program, tmp_path):
    # 37/1024 = 3.6 %: a warning at 3 % and critical at 50 % make it "warning".
    config = write_agent_config(tmp_path, endpoint=None, programs=[], programs_dir=tmp_path,
                                extra="")
    text = config.read_text().replace("[builtin.map_pressure]\n",
                                      "[builtin.map_pressure]\nwarning = 0.03\ncritical = 0.5\n")
    config.write_text(text)
    doc = run_top_json("--interval", "0.2", "--config", str(config), "--filter", known_program.map_name)
    assert [(m["id"], m["pressure"]) for m in doc["maps"]] == [(known_program.map_id, "warning")]


def test_marks_what_the_agent_loaded_with_its_metrics(bpf_build, tmp_path, known_program):
    pin_dir = Path("/sys/fs/bpf") / f"otelbpf-test-{uuid.uuid4().hex[:8]}"
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                programs_dir=programs_dir(tmp_path, 0), pin_dir=pin_dir)
    with AgentProcess(config) as agent:
        agent.wait_event("program loaded", program="syscalls")
        fd = lb.check(lb.bpf_obj_get(str(pin_dir / "syscalls" / "syscall_counts").encode()), "bpf_obj_get")
        try:
            pinned_id = info.map_info(fd).id
        finally:
            os.close(fd)
        doc = run_top_json("--interval", "0.2", "--config", str(config))
        agent.stop()
    maps = {m["id"]: m for m in doc["maps"]}
    assert maps[pinned_id]["otelbpf"] == "syscalls: syscalls"
    users = [p for p in doc["programs"] if pinned_id in p["map_ids"]]
    assert [(p["name"], p["otelbpf"]) for p in users] == [("count_syscall", "syscalls: syscalls")]
    # The same object loaded by this test and not by an agent: not marked.
    test_copies = [p for p in doc["programs"] if p["name"] == "count_syscall" and p["owners"]
                   and all(o.endswith(f"({os.getpid()})") for o in p["owners"])]
    assert test_copies and all(p["otelbpf"] is None for p in test_copies)


def test_without_privileges_one_line_naming_the_capability():
    out = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--reuid=65534", "--regid=65534",
                          "--clear-groups", sys.executable, "-m", "otelbpf", "top", "--once", "--json"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing CAP_SYS_ADMIN" in lines[0]


def test_once_without_json_prints_both_tables(known_program):
    out = subprocess.run([sys.executable, "-m", "otelbpf", "top", "--once", "--interval", "0.3"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("programs:\n") and "\nmaps:\n" in out.stdout
    assert re.search(rf"(?m)^ *{known_program.prog_id} +tracepoint +health_tp +\S+", out.stdout)
    assert re.search(rf"(?m)^ *{known_program.map_id} +hash +{known_program.map_name} +{MAP_KEYS} ", out.stdout)


@pytest.mark.parametrize("interval", ["0", "-1"])
def test_bad_interval_is_one_line(interval):
    out = subprocess.run([sys.executable, "-m", "otelbpf", "top", "--json", "--interval", interval], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"otelbpf top: --interval {float(interval)}: must be above 0 seconds, e.g. --interval 1"]


def test_attach_targets_as_the_kernel_reports_them(bpf_build):
    """raw_tp and tp_btf programs attach through raw tracepoint links; top's own map iterator is an
    iter link. (kprobe and fentry do not load on the test kernel: their decoding is not tested.)"""
    syscalls = BpfObject.open(bpf_build / "syscalls.bpf.o")
    biolatency = BpfObject.open(bpf_build / "biolatency.bpf.o")
    try:
        syscalls.load()
        biolatency.load()
        links = [syscalls.attach("count_syscall"), biolatency.attach("biolat_issue")]
        doc = run_top_json("--interval", "0.2")
        for link in links:
            link.close()
    finally:
        syscalls.close()
        biolatency.close()
    by_id = {p["id"]: p for p in doc["programs"]}
    assert by_id[syscalls.programs["count_syscall"].id]["attached"] == ["raw_tp:sys_enter"]
    issue = by_id[biolatency.programs["biolat_issue"].id]
    assert (issue["type"], issue["attached"]) == ("tracing", ["raw_tp:block_rq_issue"])
    assert by_id[biolatency.programs["biolat_complete"].id]["attached"] == []  # loaded, not attached
    own = [p for p in doc["programs"] if p["name"] == "map_pressure" and p["attached"] == ["iter:bpf_map"]]
    assert own, "top's own iter/bpf_map program"


def test_live_view_without_a_terminal_is_one_line():
    out = subprocess.run([sys.executable, "-m", "otelbpf", "top"], cwd=REPO, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "otelbpf top: the live view needs a terminal on stdin and stdout; for scripts use --json (or --once for text)"]


def test_marks_an_agents_programs_without_pins_by_ownership(bpf_build, tmp_path):
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                programs_dir=programs_dir(tmp_path, 0))
    text = re.sub(r'(?m)^pin_dir = .*$', 'pin_dir = ""', config.read_text())
    config.write_text(text)
    with AgentProcess(config) as agent:
        agent.wait_event("program loaded", program="syscalls")
        doc = run_top_json("--interval", "0.2", "--config", str(config))
        agent_pid = agent.proc.pid
        agent.stop()
    held = [p for p in doc["programs"] if any(o.endswith(f"({agent_pid})") for o in p["owners"])]
    assert [(p["name"], p["otelbpf"]) for p in held] == [("count_syscall", "syscalls: syscalls")]
    counts = [m for m in doc["maps"] if m["id"] in held[0]["map_ids"] and m["name"] == "syscall_counts"]
    assert [m["otelbpf"] for m in counts] == ["syscalls: syscalls"]
