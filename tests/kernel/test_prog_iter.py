"""iter/bpf_prog lists every program with the fields BPF_OBJ_GET_INFO_BY_FD gives, without CAP_SYS_ADMIN."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kernel_triggers import getpgid_calls, on_cpu

from otelbpf.kernel import BpfObject, info
from otelbpf.kernel.prog_iter import ProgIterator

pytestmark = pytest.mark.kernel
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def attached(objects: Path):
    obj = BpfObject.open(objects / "kernel_attach.bpf.o", parameters={"target_tgid": os.getpid()})
    obj.load()
    obj.attach("on_tracepoint")
    yield obj
    obj.close()


@pytest.fixture
def iterator(bpf_build: Path):
    it = ProgIterator(bpf_build / "prog_iter.bpf.o")
    yield it
    it.close()


def test_iterator_agrees_with_prog_info_by_id(attached: BpfObject, iterator: ProgIterator) -> None:
    prog = attached.programs["on_tracepoint"]
    stats_fd = info.enable_stats()
    try:
        # Runs on both CPUs, so the per-CPU sum is exercised, not just one slot.
        for cpu in sorted(os.sched_getaffinity(0))[:2]:
            with on_cpu(cpu):
                getpgid_calls(0, 50)
        fd = info.prog_fd_by_id(prog.id)
        try:
            before = info.prog_info(fd)
            listed = {pi.id: pi for pi in info.prog_infos(iterator)}
            after = info.prog_info(fd)
        finally:
            os.close(fd)
    finally:
        os.close(stats_fd)
    mine = listed[prog.id]
    assert before.run_cnt >= 100
    # Other processes may call getpgid between the reads: the iterator sees a value in between.
    assert before.run_cnt <= mine.run_cnt <= after.run_cnt
    assert before.run_time_ns <= mine.run_time_ns <= after.run_time_ns
    same = ("type", "id", "tag", "name", "load_time", "created_by_uid", "verified_insns",
            "map_ids", "btf_id", "gpl_compatible", "recursion_misses")
    assert {f: getattr(mine, f) for f in same} == {f: getattr(before, f) for f in same}
    # Other helpers load and unload programs meanwhile: compare only what is ours.
    assert "prog_iter" in {pi.name for pi in listed.values()}


def test_iterator_works_without_cap_sys_admin(attached: BpfObject, bpf_build: Path) -> None:
    """The point of the iterator: a process without CAP_SYS_ADMIN (dropped from the bounding set
    before exec, so root gets no CAP_SYS_ADMIN) lists programs, where listing by id is refused."""
    prog_id = attached.programs["on_tracepoint"].id
    script = textwrap.dedent(f"""
        import errno
        from pathlib import Path
        from otelbpf.kernel import info, libbpf
        from otelbpf.kernel.prog_iter import ProgIterator
        try:
            next(info.prog_ids())
            print("by-id: allowed")
        except libbpf.LibbpfError as exc:
            print("by-id:", errno.errorcode[exc.errno])
        it = ProgIterator(Path({str(bpf_build / "prog_iter.bpf.o")!r}))
        print("listed:", {prog_id} in {{pi.id for pi in it.read()}})
    """)
    out = subprocess.run(["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-all", sys.executable,
                          "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["by-id: EPERM", "listed: True"]
