"""``otelbpf top --once --json``: one interval measured, against a known workload and a known map."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from otelbpf.decoders.cgroup import cgroup2_mount
from otelbpf.kernel import info, perf
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


def test_marks_what_the_agent_loaded_with_its_metrics(bpf_build, tmp_path, known_program, pin_dir):
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
    iter link. The other link kinds checked against the kernel: a tracepoint (a perf event link) in
    test_rate_and_map_of_a_known_program, uprobe and uretprobe, XDP, tcx and cgroup in the tests
    below. kprobe, kretprobe, fentry, fexit and LSM programs do not load on the test kernel: their
    decoding follows the uapi layout but is not tested."""
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


# enum bpf_attach_type (include/uapi/linux/bpf.h)
BPF_CGROUP_INET_INGRESS, BPF_XDP, BPF_PERF_EVENT, BPF_TCX_INGRESS = 0, 37, 41, 46
UPROBE_PMU = Path("/sys/bus/event_source/devices/uprobe")
# An attach failing with one of these: the test kernel cannot attach this kind (a skip, with why).
_CANNOT_ATTACH_HERE = (errno.EOPNOTSUPP, lb.ENOTSUPP, errno.ENOENT, errno.ENODEV)


@pytest.fixture
def top_attach(bpf_build):
    """bpf/tests/top_attach.bpf.c loaded: one do-nothing program per link kind, none attached."""
    with BpfObject.open(bpf_build / "tests" / "top_attach.bpf.o") as obj:
        obj.load()
        yield obj


@pytest.fixture
def links():
    """Link fds a test creates; closing them detaches the programs."""
    fds: list[int] = []
    yield fds
    for fd in fds:
        os.close(fd)


def create_link(links: list[int], prog_fd: int, target_fd: int, attach_type: int, what: str) -> None:
    fd = lb.bpf_link_create(prog_fd, target_fd, attach_type, None)
    if -fd in _CANNOT_ATTACH_HERE:
        pytest.skip(f"{what}: {lb.errno_name(-fd)}")
    links.append(lb.check(fd, what))


def open_uprobe(path: Path, offset: int, retprobe: bool) -> int:
    """A perf event of the uprobe PMU on ``path`` at file offset ``offset``, for every process
    (as libbpf opens one); returns its fd."""
    name = ctypes.create_string_buffer(os.fsencode(path))  # the kernel copies it during the call
    attr = perf.PerfEventAttr(type=int((UPROBE_PMU / "type").read_text()), config1=ctypes.addressof(name),
                              config2=offset)
    if retprobe:  # format/retprobe reads "config:0": the bit of config that asks for a return probe
        attr.config = 1 << int((UPROBE_PMU / "format" / "retprobe").read_text().strip().partition(":")[2])
    what = f"{'uretprobe' if retprobe else 'uprobe'} on {path}+{offset:#x}"
    try:
        return perf.open_attr(attr, 0, what)
    except OSError as exc:
        if exc.errno in _CANNOT_ATTACH_HERE:
            pytest.skip(f"{what}: {exc.strerror}")
        raise


def top_programs() -> dict[int, dict]:
    """id -> program, as ``otelbpf top --once --json`` reports it."""
    return {p["id"]: p for p in run_top_json("--interval", "0.2")["programs"]}


def test_uprobe_targets_are_the_file_and_offset_attached(top_attach, links, tmp_path):
    """uprobe and uretprobe: perf event links; top shows the file and the offset in it that the
    test gave the kernel."""
    if not UPROBE_PMU.is_dir():
        pytest.skip(f"no uprobe PMU at {UPROBE_PMU}: uprobes attach only through tracefs here")
    # A copy of a real binary that nothing runs: the probes are registered but never written into
    # a process, so any offset inside the file will do. Two offsets tell the two links apart. Its
    # path is over 600 bytes long: top must read any path (up to PATH_MAX) the kernel holds.
    directory = tmp_path.resolve().joinpath(*["d" * 200] * 3)
    directory.mkdir(parents=True)
    binary = directory / "probed"
    shutil.copy("/bin/true", binary)
    expected = {}
    for name, retprobe, offset in (("top_uprobe", False, 0x1040), ("top_uretprobe", True, 0x1080)):
        event_fd = open_uprobe(binary, offset, retprobe)
        try:  # the link takes its own reference to the event
            create_link(links, top_attach.programs[name].fd, event_fd, BPF_PERF_EVENT, f"link {name}")
        finally:
            os.close(event_fd)
        kind = "uretprobe" if retprobe else "uprobe"
        expected[top_attach.programs[name].id] = [f"{kind}:{binary}+{offset:#x}"]
    by_id = top_programs()
    assert {prog_id: by_id[prog_id]["attached"] for prog_id in expected} == expected


@pytest.fixture
def veth():
    """A veth pair of our own (its first end's name); deleted afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2's ip is not installed")
    name = f"otb{uuid.uuid4().hex[:8]}"  # at most 15 characters (IFNAMSIZ), with the peer's "p"
    out = subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"],
                         capture_output=True, text=True)
    if out.returncode:
        pytest.skip(f"cannot create a veth pair: {out.stderr.strip()}")
    yield name
    subprocess.run(["ip", "link", "del", name], capture_output=True)  # deletes the peer too


@pytest.mark.parametrize("program, attach_type, kind", [("top_xdp", BPF_XDP, "xdp"),
                                                        ("top_tcx", BPF_TCX_INGRESS, "tcx")])
def test_interface_targets_are_the_interface_attached(top_attach, veth, links, program, attach_type, kind):
    """XDP and tcx links (created the way bpf_program__attach_xdp / _attach_tcx create them): top
    names the interface the test created and attached to."""
    create_link(links, top_attach.programs[program].fd, socket.if_nametoindex(veth), attach_type,
                f"{kind} link of {program} on {veth}")
    assert top_programs()[top_attach.programs[program].id]["attached"] == [f"{kind}:{veth}"]


@pytest.fixture
def own_cgroup():
    """A cgroup of our own right below the cgroup2 root; removed afterwards."""
    root = cgroup2_mount()
    if root is None:
        pytest.skip("no cgroup2 filesystem mounted")
    path = root / f"otelbpf-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path
    path.rmdir()


def test_cgroup_target_is_the_cgroup_attached(top_attach, own_cgroup, links):
    """A cgroup link (cgroup_skb/ingress, as bpf_program__attach_cgroup creates it): top names the
    cgroup by its path below the cgroup2 mount, as /proc/PID/cgroup does, not by its id."""
    cgroup_fd = os.open(own_cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:  # the link holds the cgroup itself
        create_link(links, top_attach.programs["top_cgroup_skb"].fd, cgroup_fd, BPF_CGROUP_INET_INGRESS,
                    f"cgroup_skb/ingress link on {own_cgroup}")
    finally:
        os.close(cgroup_fd)
    prog = top_programs()[top_attach.programs["top_cgroup_skb"].id]
    assert prog["attached"] == [f"cgroup:/{own_cgroup.name}"]


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
