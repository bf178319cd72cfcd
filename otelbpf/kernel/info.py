"""bpf(2)-level queries: enumerate programs and maps by id, read their info, enable run-time stats.

Layouts of ``struct bpf_map_info`` / ``struct bpf_prog_info`` follow include/uapi/linux/bpf.h of
kernel 6.x. The kernel accepts a shorter or longer info struct than its own (it zero-fills or
ignores the difference, kernel/bpf/syscall.c bpf_check_uarg_tail_zero), so fields newer than the
running kernel simply read as 0.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from ctypes import Structure, byref, c_char, c_uint8, c_uint32, c_uint64, sizeof
from dataclasses import dataclass

from otelbpf.kernel import libbpf as lb

BPF_OBJ_NAME_LEN = 16
BPF_TAG_SIZE = 8
BPF_STATS_RUN_TIME = 0


class _BpfMapInfo(Structure):
    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("key_size", c_uint32),
        ("value_size", c_uint32),
        ("max_entries", c_uint32),
        ("map_flags", c_uint32),
        ("name", c_char * BPF_OBJ_NAME_LEN),
        ("ifindex", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32),
        ("netns_dev", c_uint64),
        ("netns_ino", c_uint64),
        ("btf_id", c_uint32),
        ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32),
        ("btf_vmlinux_id", c_uint32),
        ("map_extra", c_uint64),
    ]


class _BpfProgInfo(Structure):
    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("tag", c_uint8 * BPF_TAG_SIZE),
        ("jited_prog_len", c_uint32),
        ("xlated_prog_len", c_uint32),
        ("jited_prog_insns", c_uint64),
        ("xlated_prog_insns", c_uint64),
        ("load_time", c_uint64),
        ("created_by_uid", c_uint32),
        ("nr_map_ids", c_uint32),
        ("map_ids", c_uint64),
        ("name", c_char * BPF_OBJ_NAME_LEN),
        ("ifindex", c_uint32),
        ("gpl_compatible", c_uint32),  # bitfield :1 followed by 31 pad bits
        ("netns_dev", c_uint64),
        ("netns_ino", c_uint64),
        ("nr_jited_ksyms", c_uint32),
        ("nr_jited_func_lens", c_uint32),
        ("jited_ksyms", c_uint64),
        ("jited_func_lens", c_uint64),
        ("btf_id", c_uint32),
        ("func_info_rec_size", c_uint32),
        ("func_info", c_uint64),
        ("nr_func_info", c_uint32),
        ("nr_line_info", c_uint32),
        ("line_info", c_uint64),
        ("jited_line_info", c_uint64),
        ("nr_jited_line_info", c_uint32),
        ("line_info_rec_size", c_uint32),
        ("jited_line_info_rec_size", c_uint32),
        ("nr_prog_tags", c_uint32),
        ("prog_tags", c_uint64),
        ("run_time_ns", c_uint64),
        ("run_cnt", c_uint64),
        ("recursion_misses", c_uint64),
        ("verified_insns", c_uint32),
        ("attach_btf_obj_id", c_uint32),
        ("attach_btf_id", c_uint32),
        ("_pad", c_uint32),
    ]


class _BpfLinkInfo(Structure):
    # Only the common head; the per-type union is not decoded.
    _fields_ = [("type", c_uint32), ("id", c_uint32), ("prog_id", c_uint32), ("_union", c_uint8 * 76)]


@dataclass(frozen=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    btf_id: int
    map_extra: int


@dataclass(frozen=True)
class ProgInfo:
    type: int
    id: int
    tag: str
    name: str
    load_time: int
    created_by_uid: int
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    verified_insns: int
    map_ids: tuple[int, ...]
    btf_id: int
    gpl_compatible: bool


@dataclass(frozen=True)
class LinkInfo:
    type: int
    id: int
    prog_id: int


def _get_info(fd: int, info: Structure, what: str) -> None:
    size = c_uint32(sizeof(info))
    lb.check(lb.bpf_obj_get_info_by_fd(fd, byref(info), byref(size)), f"{what} (fd {fd})")


def fd_kind(fd: int) -> str:
    """"map", "prog", "link", "btf" or "" for a non-BPF fd.

    bpf_obj_get_info_by_fd answers for any BPF fd with that object's own info struct, so the kind
    must be checked first; the anon inode names come from kernel/bpf/syscall.c.
    """
    target = os.readlink(f"/proc/self/fd/{fd}")
    return {
        "anon_inode:bpf-map": "map",
        "anon_inode:bpf-prog": "prog",
        "anon_inode:bpf_link": "link",
        "anon_inode:btf": "btf",
    }.get(target, "")


def map_info(fd: int) -> MapInfo:
    if fd_kind(fd) != "map":
        raise lb.LibbpfError(errno.EINVAL, f"map_info(fd {fd}): not a BPF map")
    raw = _BpfMapInfo()
    _get_info(fd, raw, "bpf_obj_get_info_by_fd(map)")
    return MapInfo(
        type=raw.type,
        id=raw.id,
        key_size=raw.key_size,
        value_size=raw.value_size,
        max_entries=raw.max_entries,
        map_flags=raw.map_flags,
        name=raw.name.decode("utf-8", "replace"),
        btf_id=raw.btf_id,
        map_extra=raw.map_extra,
    )


def prog_info(fd: int) -> ProgInfo:
    raw = _BpfProgInfo()
    _get_info(fd, raw, "bpf_obj_get_info_by_fd(prog)")
    map_ids: tuple[int, ...] = ()
    if raw.nr_map_ids:
        # Second call with a buffer for the map ids; the kernel fills at most nr_map_ids of them.
        n = raw.nr_map_ids
        ids = (c_uint32 * n)()
        raw2 = _BpfProgInfo(nr_map_ids=n, map_ids=ctypes.addressof(ids))
        _get_info(fd, raw2, "bpf_obj_get_info_by_fd(prog map_ids)")
        map_ids = tuple(ids[: min(n, raw2.nr_map_ids)])
        raw = raw2
    return ProgInfo(
        type=raw.type,
        id=raw.id,
        tag=bytes(raw.tag).hex(),
        name=raw.name.decode("utf-8", "replace"),
        load_time=raw.load_time,
        created_by_uid=raw.created_by_uid,
        run_time_ns=raw.run_time_ns,
        run_cnt=raw.run_cnt,
        recursion_misses=raw.recursion_misses,
        verified_insns=raw.verified_insns,
        map_ids=map_ids,
        btf_id=raw.btf_id,
        gpl_compatible=bool(raw.gpl_compatible & 1),
    )


def link_info(fd: int) -> LinkInfo:
    raw = _BpfLinkInfo()
    _get_info(fd, raw, "bpf_obj_get_info_by_fd(link)")
    return LinkInfo(type=raw.type, id=raw.id, prog_id=raw.prog_id)


def _ids(next_id, what: str) -> Iterator[int]:
    current = c_uint32(0)
    nxt = c_uint32(0)
    while True:
        ret = next_id(current.value, byref(nxt))
        if ret == -errno.ENOENT:  # no id above current: done
            return
        lb.check(ret, what)
        current.value = nxt.value
        yield nxt.value


def map_ids() -> Iterator[int]:
    """Ids of every BPF map on the host, ascending. Ids may vanish before you open them."""
    return _ids(lb.bpf_map_get_next_id, "bpf_map_get_next_id")


def prog_ids() -> Iterator[int]:
    """Ids of every BPF program on the host, ascending. Ids may vanish before you open them."""
    return _ids(lb.bpf_prog_get_next_id, "bpf_prog_get_next_id")


def link_ids() -> Iterator[int]:
    return _ids(lb.bpf_link_get_next_id, "bpf_link_get_next_id")


def prog_fd_by_id(prog_id: int) -> int:
    """New fd for program ``prog_id`` (caller closes). ENOENT if it was unloaded meanwhile."""
    return lb.check(lb.bpf_prog_get_fd_by_id(prog_id), f"bpf_prog_get_fd_by_id({prog_id})")


def map_fd_by_id(map_id: int) -> int:
    """New fd for map ``map_id`` (caller closes). ENOENT if it was freed meanwhile."""
    return lb.check(lb.bpf_map_get_fd_by_id(map_id), f"bpf_map_get_fd_by_id({map_id})")


def link_fd_by_id(link_id: int) -> int:
    return lb.check(lb.bpf_link_get_fd_by_id(link_id), f"bpf_link_get_fd_by_id({link_id})")


def enable_stats() -> int:
    """Turn on run_cnt/run_time_ns accounting for every program while the returned fd is open.

    Stats stay on host-wide until the last such fd closes (kernel/bpf/syscall.c
    bpf_enable_runtime_stats), so close it when done.
    """
    return lb.check(lb.bpf_enable_stats(BPF_STATS_RUN_TIME), "bpf_enable_stats(BPF_STATS_RUN_TIME)")


def iter_create(link) -> int:
    """Open a new read fd on a BPF iterator link (``BpfLink`` or raw link fd); each read runs the iterator."""
    link_fd = link if isinstance(link, int) else link.fd
    return lb.check(lb.bpf_iter_create(link_fd), f"bpf_iter_create(link fd {link_fd})")


def iter_read(link) -> bytes:
    """Run an iterator once and return everything it wrote."""
    fd = iter_create(link)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


__all__ = [
    "MapInfo",
    "ProgInfo",
    "LinkInfo",
    "fd_kind",
    "map_info",
    "prog_info",
    "link_info",
    "map_ids",
    "prog_ids",
    "link_ids",
    "prog_fd_by_id",
    "map_fd_by_id",
    "link_fd_by_id",
    "enable_stats",
    "iter_create",
    "iter_read",
]


def prog_infos(iterator=None) -> Iterator[ProgInfo]:
    """ProgInfo of every program on the host; programs unloaded while we walk are skipped.

    With ``iterator`` (a ``prog_iter.ProgIterator``) one run of the iter/bpf_prog program lists
    them, which needs no CAP_SYS_ADMIN; without it, programs are opened by id, which does.
    """
    if iterator is not None:
        yield from iterator.read()
        return
    for prog_id in prog_ids():
        try:
            fd = prog_fd_by_id(prog_id)
        except lb.LibbpfError:
            continue  # unloaded since listed
        try:
            pi = prog_info(fd)
        except lb.LibbpfError:
            continue
        finally:
            os.close(fd)
        yield pi


def map_infos() -> Iterator[MapInfo]:
    """MapInfo of every map on the host; maps freed while we walk are skipped."""
    for map_id in map_ids():
        try:
            fd = map_fd_by_id(map_id)
        except lb.LibbpfError:
            continue  # freed since listed
        try:
            mi = map_info(fd)
        except lb.LibbpfError:
            continue
        finally:
            os.close(fd)
        yield mi
