"""What each program is attached to, as the kernel reports it in ``struct bpf_link_info``.

Every BPF link names its program and a per-type target: a raw tracepoint name (raw_tp and tp_btf
programs), a BTF function (fentry, fexit, LSM), a perf event (tracepoint, kprobe or uprobe: a file
and the offset in it), a cgroup, an interface, an iterator. Layout from include/uapi/linux/bpf.h
(6.x): the union starts at offset 16 (it holds 8-byte aligned pointers); name strings are copied
out by the kernel into a buffer we pass on a second call. Programs attached without a link
(legacy perf-event ioctl, netlink XDP) have no entry: the kernel does not say.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
from collections.abc import Callable
from ctypes import byref, c_uint32, c_uint8, sizeof

from otelbpf.kernel import info
from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.links import LinkType

# enum bpf_perf_event_type
PERF_UPROBE, PERF_URETPROBE, PERF_KPROBE, PERF_KRETPROBE, PERF_TRACEPOINT, PERF_EVENT_EVENT = 1, 2, 3, 4, 5, 6
# enum bpf_attach_type of tracing links (tp_btf programs attach through a raw tracepoint link)
_TRACING_KIND = {24: "fentry", 25: "fexit", 26: "fmod_ret", 27: "lsm"}
_LINK_KIND = {LinkType.KPROBE_MULTI: "kprobe_multi", LinkType.STRUCT_OPS: "struct_ops",
              LinkType.NETFILTER: "netfilter", LinkType.UPROBE_MULTI: "uprobe_multi",
              LinkType.NETNS: "netns"}
_IFINDEX_KIND = {LinkType.XDP: "xdp", LinkType.TCX: "tcx", LinkType.NETKIT: "netkit"}
_NAME_MAX = 4096  # PATH_MAX: a uprobe's file name; a shorter buffer makes the kernel fail (ENOSPC)


class _LinkInfo(ctypes.Structure):
    _fields_ = [("type", c_uint32), ("id", c_uint32), ("prog_id", c_uint32), ("_pad", c_uint32),
                ("union", c_uint8 * 64)]


def _query(fd: int, raw: _LinkInfo) -> None:
    size = c_uint32(sizeof(raw))
    lb.check(lb.bpf_obj_get_info_by_fd(fd, byref(raw), byref(size)), f"bpf_obj_get_info_by_fd(link fd {fd})")


def _u32(raw: _LinkInfo, offset: int) -> int:
    return struct.unpack_from("=I", bytes(raw.union), offset)[0]


def _name(fd: int, link_type: int, ptr_offset: int, len_offset: int, head: bytes = b"") -> str:
    """Second query with a buffer at ``ptr_offset`` of the union; returns the NUL-terminated string."""
    buf = ctypes.create_string_buffer(_NAME_MAX)
    raw = _LinkInfo()
    union = bytearray(64)
    union[: len(head)] = head
    struct.pack_into("=Q", union, ptr_offset, ctypes.addressof(buf))
    struct.pack_into("=I", union, len_offset, _NAME_MAX)
    ctypes.memmove(raw.union, bytes(union), 64)
    _query(fd, raw)
    if raw.type != link_type:  # the id was reused by another link between the two calls
        return ""
    return buf.value.decode("utf-8", "replace")


class BtfNames:
    """Names of kernel BTF types by (BTF object id, type id), each BTF object loaded once."""

    def __init__(self) -> None:
        self._btfs: dict[int, int] = {}  # object id -> struct btf *
        self._vmlinux = 0

    def name(self, obj_id: int, type_id: int) -> str:
        btf = self._btfs.get(obj_id)
        if btf is None:
            btf = self._load(obj_id)
            self._btfs[obj_id] = btf
        if not btf:
            return ""
        t = lb.btf__type_by_id(btf, type_id)
        if not t:
            return ""
        name_off = c_uint32.from_address(t).value  # struct btf_type starts with name_off
        return (lb.btf__name_by_offset(btf, name_off) or b"").decode("utf-8", "replace")

    def _load(self, obj_id: int) -> int:
        btf = lb.btf__load_from_kernel_by_id(obj_id)
        if btf:
            return btf
        # Module BTF is split: its type ids continue vmlinux's.
        if not self._vmlinux:
            self._vmlinux = lb.btf__load_vmlinux_btf() or 0
        return (lb.btf__load_from_kernel_by_id_split(obj_id, self._vmlinux) or 0) if self._vmlinux else 0

    def close(self) -> None:
        for btf in self._btfs.values():
            if btf:
                lb.btf__free(btf)
        if self._vmlinux:
            lb.btf__free(self._vmlinux)
        self._btfs, self._vmlinux = {}, 0


def describe_link(fd: int, btf: BtfNames,
                  cgroup_path: Callable[[int], str] | None = None) -> tuple[int, str]:
    """(program id, target) of the link behind ``fd``, e.g. (42, "raw_tp:sys_enter"),
    (43, "uprobe:/lib/x86_64-linux-gnu/libc.so.6+0xd5710"); ``cgroup_path`` names a cgroup by its
    id (without it, the id)."""
    raw = _LinkInfo()
    _query(fd, raw)
    kind, prog_id = raw.type, raw.prog_id
    if kind == LinkType.RAW_TRACEPOINT:
        return prog_id, "raw_tp:" + _name(fd, kind, 0, 8)
    if kind == LinkType.TRACING:
        attach_type, obj_id, btf_id = _u32(raw, 0), _u32(raw, 4), _u32(raw, 8)
        name = btf.name(obj_id, btf_id).removeprefix("btf_trace_")
        return prog_id, f"{_TRACING_KIND.get(attach_type, 'tracing')}:{name or f'btf#{btf_id}'}"
    if kind == LinkType.PERF_EVENT:
        event = _u32(raw, 0)
        head = bytes(raw.union[:8])
        if event == PERF_TRACEPOINT:
            return prog_id, "tracepoint:" + _name(fd, kind, 8, 16, head)
        # kprobe and uprobe: the name at 8, its length at 16, the offset from the name at 20.
        if event in (PERF_KPROBE, PERF_KRETPROBE):
            prefix = "kprobe:" if event == PERF_KPROBE else "kretprobe:"
            offset = _u32(raw, 20)
            return prog_id, prefix + _name(fd, kind, 8, 16, head) + (f"+{offset:#x}" if offset else "")
        if event in (PERF_UPROBE, PERF_URETPROBE):
            # A file offset, not a symbol: one file can hold many probes, told apart only by it.
            prefix = "uprobe:" if event == PERF_UPROBE else "uretprobe:"
            return prog_id, f"{prefix}{_name(fd, kind, 8, 16, head)}+{_u32(raw, 20):#x}"
        return prog_id, "perf_event"
    if kind == LinkType.ITER:
        return prog_id, "iter:" + _name(fd, kind, 0, 8)
    if kind == LinkType.CGROUP:
        cgroup_id = struct.unpack_from("=Q", bytes(raw.union), 0)[0]
        return prog_id, "cgroup:" + (cgroup_path(cgroup_id) if cgroup_path else str(cgroup_id))
    if kind in _IFINDEX_KIND:  # xdp, tcx and netkit all start with the ifindex
        ifindex = _u32(raw, 0)
        try:
            ifname = socket.if_indextoname(ifindex)
        except OSError:
            ifname = str(ifindex)
        return prog_id, f"{_IFINDEX_KIND[kind]}:{ifname}"
    return prog_id, _LINK_KIND.get(kind, f"link type {kind}")


def attach_targets(btf: BtfNames,
                   cgroup_path: Callable[[int], str] | None = None) -> dict[int, tuple[str, ...]]:
    """program id -> what its links attach it to, for every link on the host."""
    targets: dict[int, list[str]] = {}
    for link_id in info.link_ids():
        try:
            fd = info.link_fd_by_id(link_id)
        except lb.LibbpfError:
            continue  # released since listed
        try:
            prog_id, target = describe_link(fd, btf, cgroup_path)
        except lb.LibbpfError:
            continue
        finally:
            os.close(fd)
        targets.setdefault(prog_id, []).append(target)
    return {prog_id: tuple(sorted(set(t))) for prog_id, t in targets.items()}
