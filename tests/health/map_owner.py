"""Test helper run as its own process: creates BPF maps with known fill, prints their ids, waits.

The agent under test did not create these maps and holds no fd to them, exactly like maps of any
other process on a host. Killing this process frees every map it created.

Usage: python map_owner.py BPF_BUILD_DIR   (prints one JSON line, then blocks until stdin closes)
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import struct
import sys
from pathlib import Path

from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.maps import BPF_F_NO_PREALLOC, BpfMap, MapType
from otelbpf.kernel.object import BpfObject

BPF_F_NO_COMMON_LRU = 2


def u32(i: int) -> bytes:
    return struct.pack("=I", i)


def fill(m: BpfMap, n: int) -> BpfMap:
    value = bytes(m.value_buffer_size)
    for i in range(n):
        m.update(u32(i), value)
    return m


def main() -> None:
    build = Path(sys.argv[1])
    keep: list[object] = []
    maps: dict[str, BpfMap] = {}

    def create(label: str, *args, **kwargs) -> BpfMap:
        m = BpfMap.create(*args, name=f"hq_{label}", **kwargs)
        maps[label] = m
        return m

    # LRU maps keep free entries in per-CPU lists: a fill that moved between CPUs would leave
    # some of them there, and far fewer keys in the map than one CPU's inserts keep.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    fill(create("hash", MapType.HASH, 4, 8, 1000), 900)
    fill(create("hash_nopre", MapType.HASH, 4, 8, 1000, flags=BPF_F_NO_PREALLOC), 750)
    fill(create("lru", MapType.LRU_HASH, 4, 8, 128), 400)  # 272+ evictions
    fill(create("lru_nocommon", MapType.LRU_HASH, 4, 8, 128, flags=BPF_F_NO_COMMON_LRU), 400)
    fill(create("pc_hash", MapType.PERCPU_HASH, 4, 8, 1000), 300)
    fill(create("pc_hash_np", MapType.PERCPU_HASH, 4, 8, 1000, flags=BPF_F_NO_PREALLOC), 500)
    fill(create("lru_pc_hash", MapType.LRU_PERCPU_HASH, 4, 8, 256), 100)
    fill(create("array", MapType.ARRAY, 4, 8, 64), 10)
    fill(create("pc_array", MapType.PERCPU_ARRAY, 4, 8, 16), 0)
    lpm = create("lpm", MapType.LPM_TRIE, 8, 8, 100, flags=BPF_F_NO_PREALLOC)
    for i in range(5):
        lpm.update(struct.pack("=I4s", 32, bytes([10, 0, 0, i])), bytes(8))
    create("queue", MapType.QUEUE, 0, 8, 16)
    create("prog_array", MapType.PROG_ARRAY, 4, 4, 8)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    keep.append(sock)
    create("sockhash", MapType.SOCKHASH, 4, 8, 16).update(u32(7), struct.pack("=Q", sock.fileno()))
    create("devmap_hash", MapType.DEVMAP_HASH, 4, 4, 8).update(u32(1), u32(socket.if_nametoindex("lo")))

    # A hash of maps holding 3 inner maps (BpfMap.create has no inner_map_fd option).
    inner = [BpfMap.create(MapType.ARRAY, 4, 4, 1, name="hq_inner") for _ in range(3)]
    keep.extend(inner)
    opts = lb.BpfMapCreateOpts(sz=ctypes.sizeof(lb.BpfMapCreateOpts), inner_map_fd=inner[0].fd)
    fd = lb.check(
        lb.bpf_map_create(int(MapType.HASH_OF_MAPS), b"hq_hash_of_maps", 4, 4, 10, ctypes.byref(opts)),
        "bpf_map_create(hash_of_maps)",
    )
    maps["hash_of_maps"] = hom = BpfMap.from_fd(fd)
    for i, m in enumerate(inner):
        hom.update(u32(i), u32(m.fd))

    # A ring buffer left 12 KiB full by a BPF program (records are never consumed).
    obj = BpfObject.open(build / "tests" / "health_ringbuf.bpf.o")
    obj.load()
    keep.append(obj)
    obj.programs["fill_ringbuf"].test_run()
    ids = {label: m.id for label, m in maps.items()}
    ids["ringbuf"] = obj.maps["health_rb"].id

    print(
        json.dumps(
            {
                "ids": ids,
                # Ground truth for LRU maps, whose count after evictions depends on per-CPU free lists.
                "keys": {label: len(maps[label].keys()) for label in ("lru", "lru_nocommon", "lru_pc_hash")},
            }
        ),
        flush=True,
    )
    sys.stdin.read()


if __name__ == "__main__":
    main()
