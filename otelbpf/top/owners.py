"""Which processes hold each BPF program: ``prog_id`` in ``/proc/PID/fdinfo/FD`` of their fds.

A process keeps a program alive through a program fd or a link fd; both fdinfo files carry a
``prog_id:`` line (kernel/bpf/syscall.c bpf_prog_show_fdinfo, bpf_link_show_fdinfo). Programs
held only by a pin or by the kernel itself (an attachment without a link) have no owner here.
Only fds whose link says ``anon_inode:bpf-prog`` or ``anon_inode:bpf_link`` are read, so a
process holding a thousand maps costs a thousand readlinks and no file reads.
"""

from __future__ import annotations

import os
from typing import NamedTuple


class Owner(NamedTuple):
    pid: int
    comm: str

    def __str__(self) -> str:
        return f"{self.comm}({self.pid})"

_PROG_INODES = ("anon_inode:bpf-prog", "anon_inode:bpf_link")


def _prog_id(fdinfo_path: str) -> int | None:
    try:
        with open(fdinfo_path, "rb") as f:
            text = f.read()
    except OSError:
        return None  # closed since listed
    start = text.find(b"\nprog_id:")
    if start < 0:
        return None
    end = text.find(b"\n", start + 1)
    return int(text[start + 9 : end if end >= 0 else None])


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip().decode("utf-8", "replace")
    except OSError:
        return "?"


def program_owners() -> dict[int, tuple[Owner, ...]]:
    """program id -> every process holding it, by pid; processes we cannot read are skipped."""
    owners: dict[int, set[Owner]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # exited, or not ours to read
        owner = None
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target not in _PROG_INODES:
                continue
            prog_id = _prog_id(f"/proc/{pid}/fdinfo/{fd}")
            if prog_id is None:
                continue
            if owner is None:
                owner = Owner(int(pid), _comm(pid))
            owners.setdefault(prog_id, set()).add(owner)
    return {prog_id: tuple(sorted(found)) for prog_id, found in owners.items()}
