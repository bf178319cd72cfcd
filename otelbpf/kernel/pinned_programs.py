"""A BPF program an earlier agent process left attached, known only through its pinned link.

Replacing such a program at start with a new version that shares its maps means detaching it
first (two versions must never count into the same maps). If the new version then fails, the old
one must count again — but its libbpf object died with the process that loaded it. So before its
link goes, a program fd is taken (the kernel keeps a program while an fd holds it) and the link's
target is read from ``bpf_link_info``; attaching again creates a new link for that fd and pins it
at the same path. Only link kinds whose ``bpf_link_info`` says everything needed are attached
again: raw tracepoints (``raw_tp``, ``tp_btf``) and classic tracepoints (a perf event link).
"""

from __future__ import annotations

import os
from pathlib import Path

from otelbpf.kernel import features, info, perf
from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.link_targets import BtfNames, describe_link
from otelbpf.kernel.links import BpfLink

BPF_PROG_TYPE_TRACING = 26  # tp_btf: its tracepoint is fixed at load (attach_btf_id), not named
BPF_PERF_EVENT = 41  # enum bpf_attach_type
PERF_TYPE_TRACEPOINT = 2
PERF_SAMPLE_RAW = 1 << 10


class PinnedProgram:
    """One BPF program attached through the link pinned at ``path``; ``close()`` releases the
    program fd (the program then lives on only while a link, pinned or not, holds it)."""

    def __init__(self, path: Path, link: BpfLink, prog_fd: int, target: str, prog_type: int,
                 map_ids: tuple[int, ...] | None):
        self.path = path
        self.name = link.program
        self.target = target  # "raw_tp:sys_enter", "tracepoint:sys_enter_getpid", …
        self.map_ids = map_ids  # None: unknown (the program could not be opened)
        self._link = link
        self._prog_fd = prog_fd
        self._prog_type = prog_type
        self._tracepoint_id = _tracepoint_id(target.partition(":")[2]) \
            if target.startswith("tracepoint:") else None

    @classmethod
    def open(cls, path: Path, program_pin: Path) -> PinnedProgram:
        """The link pinned at ``path``; its program from ``program_pin`` (pinned beside it by the
        agent that attached it: getting a program by id needs CAP_SYS_ADMIN, which the agent
        has dropped) or, without that pin, by id if this process may."""
        link = BpfLink.open_pinned(path, path.name)
        prog_fd = -1
        try:
            btf = BtfNames()
            try:
                prog_id, target = describe_link(link.fd, btf)
            finally:
                btf.close()
            if program_pin.exists():
                prog_fd = lb.check(lb.bpf_obj_get(os.fsencode(program_pin)),
                                   f"bpf_obj_get({program_pin})")
            else:
                try:
                    prog_fd = info.prog_fd_by_id(prog_id)
                except lb.LibbpfError:  # EPERM: the link stays, but cannot be attached again
                    return cls(path, link, -1, target, 0, None)
            prog = info.prog_info(prog_fd)
            if prog.id != prog_id:  # a stale program pin: not this link's program
                os.close(prog_fd)
                return cls(path, link, -1, target, 0, None)
        except BaseException:
            if prog_fd >= 0:
                os.close(prog_fd)
            link.close()
            raise
        return cls(path, link, prog_fd, target, prog.type, prog.map_ids)

    @property
    def why_not_reattachable(self) -> str | None:
        """Why this program could not be attached again once detached (None: it can)."""
        if self._prog_fd < 0:
            return ("its program is not pinned (left by an older agent) and cannot be opened by "
                    "id without CAP_SYS_ADMIN")
        if self.target.startswith("raw_tp:"):
            return None
        if self.target.startswith("tracepoint:"):
            if self._tracepoint_id is None:
                return f"no single tracefs event named {self.target.partition(':')[2]!r}"
            return None
        return f"a {self.target.partition(':')[0]} link cannot be attached again by program fd"

    def detach(self) -> None:
        """Unpin and close the link: the kernel stops running the program (still held by fd)."""
        self._link.unpin()
        self._link.close()

    def attach_again(self) -> None:
        """A new link for the same program and target, pinned where the old one was."""
        link_fd = self._attach()
        try:
            lb.check(lb.bpf_obj_pin(link_fd, os.fsencode(self.path)), f"bpf_obj_pin({self.path})")
        finally:
            os.close(link_fd)  # the pin holds the link now

    def _attach(self) -> int:
        what = f"attach program '{self.name}' again to {self.target}"
        if self.target.startswith("raw_tp:"):
            # A tp_btf program carries its tracepoint; the kernel refuses a name for it (EINVAL).
            name = None if self._prog_type == BPF_PROG_TYPE_TRACING \
                else self.target.partition(":")[2].encode()
            return lb.check(lb.bpf_raw_tracepoint_open(name, self._prog_fd), what)
        if self._tracepoint_id is None:
            raise lb.LibbpfError(95, what)  # EOPNOTSUPP: why_not_reattachable says why
        # As libbpf opens a tracepoint event: every process, one event (cpu 0), each hit a sample.
        attr = perf.PerfEventAttr(type=PERF_TYPE_TRACEPOINT, config=self._tracepoint_id,
                                  sample_period_or_freq=1, sample_type=PERF_SAMPLE_RAW,
                                  wakeup_events=1)
        event_fd = perf.open_attr(attr, 0, what)
        try:
            # The link takes its own reference to the perf event (kernel bpf_perf_link_attach).
            return lb.check(lb.bpf_link_create(self._prog_fd, event_fd, BPF_PERF_EVENT, None), what)
        finally:
            os.close(event_fd)

    def close(self) -> None:
        self._link.close()
        if self._prog_fd >= 0:
            os.close(self._prog_fd)
            self._prog_fd = -1


def _tracepoint_id(event: str) -> int | None:
    """The id of the tracefs event ``event`` (bpf_link_info names it without its system)."""
    root = features.tracefs_root()
    if root is None or not event or "/" in event:
        return None
    ids = list((root / "events").glob(f"*/{event}/id"))
    if len(ids) != 1:
        return None
    return int(ids[0].read_text())


__all__ = ["PinnedProgram"]
