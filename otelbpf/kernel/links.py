"""BPF links: an attached program. Closing the link detaches it (unless it is pinned)."""

from __future__ import annotations

import enum
import os

from otelbpf.kernel import libbpf as lb


class LinkType(enum.IntEnum):
    """enum bpf_link_type (include/uapi/linux/bpf.h): what ``bpf_link_info.type`` reports."""

    RAW_TRACEPOINT = 1
    TRACING = 2
    CGROUP = 3
    ITER = 4
    NETNS = 5
    XDP = 6
    PERF_EVENT = 7
    KPROBE_MULTI = 8
    STRUCT_OPS = 9
    NETFILTER = 10
    TCX = 11
    UPROBE_MULTI = 12
    NETKIT = 13


class BpfLink:
    """Owns a libbpf ``struct bpf_link *``; ``close()`` calls bpf_link__destroy.

    For perf-event links libbpf also owns the perf event fd and closes it on destroy
    (libbpf.c bpf_link_perf_detach).
    """

    def __init__(self, ptr: int, program: str, *, target: str = ""):
        self._ptr = ptr
        self.program = program
        self.target = target

    @classmethod
    def open_pinned(cls, path: os.PathLike | str, program: str) -> BpfLink:
        """A link pinned by an earlier process (still attached): adopt it, or unpin it to detach."""
        ptr = lb.check_ptr(lb.bpf_link__open(os.fsencode(path)), f"bpf_link__open({os.fspath(path)})")
        link = cls(ptr, program, target=os.fspath(path))
        link.pinned = True
        return link

    pinned = False

    @property
    def fd(self) -> int:
        if not self._ptr:
            return -1
        return lb.bpf_link__fd(self._ptr)

    @property
    def closed(self) -> bool:
        return not self._ptr

    def pin(self, path: os.PathLike | str) -> None:
        """Pin to bpffs: the program stays attached after this process exits, until unlinked."""
        if not self._ptr:
            raise ValueError(f"link of program '{self.program}' is closed")
        lb.check(lb.bpf_link__pin(self._ptr, os.fsencode(path)), f"bpf_link__pin({os.fspath(path)})")
        self.pinned = True

    def unpin(self) -> None:
        if self._ptr and self.pinned:
            lb.check(lb.bpf_link__unpin(self._ptr), f"bpf_link__unpin(program '{self.program}')")
            self.pinned = False

    def close(self) -> None:
        """Detach (a pinned link stays attached: the pin holds its own reference)."""
        if self._ptr:
            ptr, self._ptr = self._ptr, 0
            lb.bpf_link__destroy(ptr)

    def __enter__(self) -> BpfLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BpfLink(program={self.program!r}, target={self.target!r}, fd={self.fd})"


__all__ = ["BpfLink"]
