"""One small program per feature, run under a chosen capability set to measure what it needs.

Each probe is Python source run in a fresh interpreter (``python -c``): it exits 0 when the
feature worked and non-zero (with the error on stderr) when it did not. docs/security.md's table
is checked against these by tests/security/test_capability_table.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "bpf" / "build"

def _cgroups_seen_here() -> int:
    from otelbpf.decoders.cgroup import cgroup2_mount, index_cgroups

    root = cgroup2_mount()
    return len(index_cgroups(root)) if root is not None else 0


_ATTACH = """
from otelbpf.kernel import BpfObject
obj = BpfObject.open({path!r}, parameters={params})
obj.load()
obj.attach({prog!r})
"""

PROBES: dict[str, str] = {
    "load and attach raw_tp": _ATTACH.format(path=str(BUILD / "tests/kernel_attach.bpf.o"),
                                             params={}, prog="on_raw_tp"),
    "load and attach tp_btf": _ATTACH.format(path=str(BUILD / "tests/kernel_attach.bpf.o"),
                                             params={}, prog="on_tp_btf"),
    "load and attach tracepoint": _ATTACH.format(path=str(BUILD / "tests/kernel_attach.bpf.o"),
                                                 params={}, prog="on_tracepoint"),
    "load and attach uprobe": _ATTACH.format(path=str(BUILD / "tests/kernel_uprobe.bpf.o"),
                                             params={}, prog="on_getpgid"),
    "software perf event program": f"""
from otelbpf.kernel import BpfObject
obj = BpfObject.open({str(BUILD / "tests/kernel_attach.bpf.o")!r})
obj.load()
obj.attach_perf_event("on_perf_event", 1, 0, sample_freq=99, cpus=[0])  # PERF_TYPE_SOFTWARE, CPU_CLOCK
""",
    "ring buffer map (create, mmap)": """
import mmap
from otelbpf.kernel import BpfMap, MapType
m = BpfMap.create(MapType.RINGBUF, 0, 0, 4096 * 4)
mmap.mmap(m.fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
""",
    "perf buffer (open BPF output event)": """
from otelbpf.streams.perfbuf import open_bpf_output
open_bpf_output(0, wakeup_events=1, wakeup_bytes=None)
""",
    "list programs with iter/bpf_prog": f"""
from pathlib import Path
from otelbpf.kernel.prog_iter import ProgIterator
assert any(p.name == "prog_iter" for p in ProgIterator(Path({str(BUILD / "prog_iter.bpf.o")!r})).read())
""",
    "list maps with iter/bpf_map": f"""
from pathlib import Path
from otelbpf.health.map_iter import MapIterator
assert len(MapIterator(Path({str(BUILD / "map_pressure.bpf.o")!r})).read()) > 0
""",
    "switch on run-time stats (BPF_ENABLE_STATS)": """
from otelbpf.kernel import info
info.enable_stats()
""",
    "open programs/maps by id": """
import os
from otelbpf.kernel import BpfMap, MapType, info
m = BpfMap.create(MapType.ARRAY, 4, 4, 1)
os.close(info.map_fd_by_id(m.id))
""",
    # Compared with what this (root) test process sees.
    "cgroup ids to paths (cgroup decoder)": f"""
from otelbpf.decoders.cgroup import cgroup2_mount, index_cgroups
seen = len(index_cgroups(cgroup2_mount()))
assert seen == {_cgroups_seen_here()}, f"{{seen}} cgroups seen, root sees {_cgroups_seen_here()}"
""",
    "real addresses in /proc/kallsyms": """
with open("/proc/kallsyms") as f:
    assert any(int(line.split()[0], 16) for line in f), "every address reads as 0"
""",
}


def run_probe(name: str, caps: set[str] | frozenset[str], *, user: str | None = None) -> subprocess.CompletedProcess:
    """Run probe ``name`` holding exactly ``caps`` (names like "CAP_BPF").

    As root (``user`` None): the caps leave the bounding set before exec, and an exec'ing root
    process gets exactly its bounding set. As another user: the caps are passed as ambient.
    """
    lower = ",".join(f"+{c[4:].lower()}" for c in sorted(caps))
    if user is None:
        cmd = ["setpriv", "--bounding-set=-all" + ("," + lower if lower else ""), "--inh-caps=-all"]
    else:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
               "--inh-caps=-all" + ("," + lower if lower else ""),
               "--ambient-caps=-all" + ("," + lower if lower else "")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*cmd, sys.executable, "-c", PROBES[name]], cwd="/", env=env,
                          capture_output=True, text=True, timeout=60)
