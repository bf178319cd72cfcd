"""BPF maps: element access and whole-map snapshots (``read_all``) as numpy arrays.

``read_all`` uses BPF_MAP_LOOKUP_BATCH (one syscall per chunk of entries, ~25x faster than one
lookup per key from Python) and falls back to get_next_key + lookup where the kernel refuses
batching for the map type.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Sequence
from ctypes import byref, c_uint32
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.info import MapInfo, map_info


class MapType(IntEnum):
    """enum bpf_map_type (include/uapi/linux/bpf.h)."""

    UNSPEC = 0
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    STACK_TRACE = 7
    CGROUP_ARRAY = 8
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    DEVMAP = 14
    SOCKMAP = 15
    CPUMAP = 16
    XSKMAP = 17
    SOCKHASH = 18
    CGROUP_STORAGE = 19
    REUSEPORT_SOCKARRAY = 20
    PERCPU_CGROUP_STORAGE = 21
    QUEUE = 22
    STACK = 23
    SK_STORAGE = 24
    DEVMAP_HASH = 25
    STRUCT_OPS = 26
    RINGBUF = 27
    INODE_STORAGE = 28
    TASK_STORAGE = 29
    BLOOM_FILTER = 30
    USER_RINGBUF = 31
    CGRP_STORAGE = 32
    ARENA = 33

    @classmethod
    def coerce(cls, value: int) -> MapType | int:
        """The enum member, or the plain int for types newer than this table."""
        try:
            return cls(value)
        except ValueError:
            return value


PERCPU_TYPES = frozenset(
    {MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE}
)
ARRAY_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})

# Map update flags (include/uapi/linux/bpf.h).
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
BPF_F_NO_PREALLOC = 1

DEFAULT_BATCH = 8192
_INITIAL_RESERVATION = 256 << 20  # bytes of keys + values reserved up front by read_all
# Errors on the FIRST batch call that mean "this kernel/map type cannot batch": map types without
# map_lookup_batch get ENOTSUPP (BPF_DO_BATCH); kernels before 5.6 reject the command with EINVAL.
_BATCH_REFUSED = frozenset({errno.EINVAL, lb.ENOTSUPP, errno.EOPNOTSUPP})


def _round8(n: int) -> int:
    return (n + 7) & ~7


@dataclass(frozen=True)
class MapSnapshot:
    """Every entry of a map at one moment (entries changing during the read may or may not appear).

    ``keys``: (n, key_size) uint8. ``values``: (n, ncpu, value_size) uint8 with the kernel's per-CPU
    8-byte slot padding removed; ncpu is the number of possible CPUs for per-CPU maps, else 1.
    Entry order is the kernel's traversal order, not sorted.
    """

    keys: np.ndarray
    values: np.ndarray
    method: str

    def __len__(self) -> int:
        return self.keys.shape[0]

    @property
    def ncpu(self) -> int:
        return self.values.shape[1]

    def u64(self, offset: int = 0) -> np.ndarray:
        """The native-endian uint64 at byte ``offset`` of each value, shape (n, ncpu); for values
        that are a u64 or a struct of u64s (a multiple of 8 bytes)."""
        size = self.values.shape[2]
        if size % 8 or offset % 8 or offset + 8 > size:
            raise ValueError(f"cannot read a u64 at byte {offset} of this map's {size}-byte values")
        words = np.ascontiguousarray(self.values).view(np.uint64)  # (n, ncpu, size / 8)
        return words[:, :, offset // 8]


class BpfMap:
    """One kernel map, referenced by an fd.

    For per-CPU maps, ``lookup``/``update`` use the kernel's buffer layout: ``ncpu`` slots of
    ``round_up(value_size, 8)`` bytes (``value_buffer_size``); see ``lookup_percpu`` for a split view.
    """

    def __init__(
        self,
        fd: int,
        *,
        name: str,
        type: MapType | int,
        key_size: int,
        value_size: int,
        max_entries: int,
        flags: int,
        id: int,
        owned: bool = True,
    ):
        self.fd = fd
        self.name = name
        self.type = MapType.coerce(type)
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.id = id
        self._owned = owned
        self.percpu = self.type in PERCPU_TYPES
        self.ncpu = lb.num_possible_cpus() if self.percpu else 1
        # Per-CPU values are copied to/from user space in 8-byte aligned slots
        # (kernel/bpf/hashtab.c, arraymap.c: round_up(value_size, 8)).
        self.value_stride = _round8(value_size) if self.percpu else value_size
        self.value_buffer_size = self.value_stride * self.ncpu

    # --- construction -----------------------------------------------------------------------------

    @classmethod
    def from_info(cls, fd: int, info: MapInfo, *, owned: bool = True, name: str | None = None) -> BpfMap:
        return cls(
            fd,
            name=name if name is not None else info.name,
            type=info.type,
            key_size=info.key_size,
            value_size=info.value_size,
            max_entries=info.max_entries,
            flags=info.map_flags,
            id=info.id,
            owned=owned,
        )

    @classmethod
    def from_fd(cls, fd: int, owned: bool = True) -> BpfMap:
        """Wrap an existing map fd; with ``owned`` the fd is closed by ``close()``."""
        return cls.from_info(fd, map_info(fd), owned=owned)

    @classmethod
    def from_id(cls, map_id: int) -> BpfMap:
        return cls._adopt(lb.check(lb.bpf_map_get_fd_by_id(map_id), f"bpf_map_get_fd_by_id({map_id})"))

    @classmethod
    def from_pin(cls, path: os.PathLike | str) -> BpfMap:
        return cls._adopt(lb.check(lb.bpf_obj_get(os.fsencode(path)), f"bpf_obj_get({os.fspath(path)})"))

    @classmethod
    def _adopt(cls, fd: int) -> BpfMap:
        """A map around a freshly opened fd we own; the fd is closed if it isn't a usable map."""
        try:
            return cls.from_fd(fd, owned=True)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def create(
        cls,
        type: MapType | int,
        key_size: int,
        value_size: int,
        max_entries: int,
        name: str = "",
        flags: int = 0,
    ) -> BpfMap:
        """Create a new map owned by this process (tests, benchmarks, scratch maps)."""
        opts = lb.BpfMapCreateOpts(sz=ctypes.sizeof(lb.BpfMapCreateOpts), map_flags=flags)
        fd = lb.check(
            lb.bpf_map_create(int(type), name.encode() or None, key_size, value_size, max_entries, byref(opts)),
            f"bpf_map_create({MapType.coerce(type)!r}, key_size={key_size}, value_size={value_size}, "
            f"max_entries={max_entries}, flags={flags:#x})",
        )
        try:
            return cls.from_fd(fd, owned=True)
        except BaseException:
            os.close(fd)
            raise

    # --- lifecycle ----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def close(self) -> None:
        if self.fd >= 0 and self._owned:
            os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> BpfMap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        t = self.type.name if isinstance(self.type, MapType) else self.type
        return (
            f"BpfMap(name={self.name!r}, type={t}, key_size={self.key_size}, value_size={self.value_size}, "
            f"max_entries={self.max_entries}, id={self.id}, fd={self.fd})"
        )

    def _what(self, op: str) -> str:
        return f"{op} on map '{self.name}' (id {self.id})"

    def _check_fd(self) -> None:
        if self.fd < 0:
            raise ValueError(f"map '{self.name}' has no fd: it is closed, or its object is not loaded yet")

    def _key(self, key: bytes) -> bytes:
        if len(key) != self.key_size:
            raise ValueError(f"map '{self.name}': key is {len(key)} bytes, the map needs {self.key_size}")
        return bytes(key)

    # --- element access -------------------------------------------------------------------------------

    def lookup(self, key: bytes) -> bytes | None:
        """The value at ``key`` (per-CPU maps: the whole kernel buffer), or None if absent."""
        self._check_fd()
        k = self._key(key)
        buf = ctypes.create_string_buffer(self.value_buffer_size)
        ret = lb.bpf_map_lookup_elem(self.fd, k, buf)
        if ret == -errno.ENOENT:
            return None
        lb.check(ret, self._what("lookup"))
        return buf.raw

    def lookup_percpu(self, key: bytes) -> list[bytes] | None:
        """Per-CPU maps: one value per possible CPU, padding removed."""
        raw = self.lookup(key)
        if raw is None:
            return None
        return [raw[i * self.value_stride : i * self.value_stride + self.value_size] for i in range(self.ncpu)]

    def update(self, key: bytes, value: bytes | Sequence[bytes], flags: int = BPF_ANY) -> None:
        """Set ``key`` to ``value``. Per-CPU maps take the kernel buffer or a sequence of per-CPU values."""
        self._check_fd()
        k = self._key(key)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            if not self.percpu:
                raise TypeError(f"map '{self.name}' is not per-CPU: value must be bytes")
            parts = list(value)
            if len(parts) != self.ncpu:
                raise ValueError(f"map '{self.name}': {len(parts)} per-CPU values given, {self.ncpu} CPUs possible")
            value = b"".join(bytes(p).ljust(self.value_stride, b"\0") for p in parts)
        v = bytes(value)
        if len(v) != self.value_buffer_size:
            raise ValueError(
                f"map '{self.name}': value is {len(v)} bytes, the map needs {self.value_buffer_size}"
                + (f" ({self.ncpu} CPUs x {self.value_stride})" if self.percpu else "")
            )
        lb.check(lb.bpf_map_update_elem(self.fd, k, v, flags), self._what("update"))

    def delete(self, key: bytes) -> bool:
        """Delete ``key``; False if it was not there."""
        self._check_fd()
        ret = lb.bpf_map_delete_elem(self.fd, self._key(key))
        if ret == -errno.ENOENT:
            return False
        lb.check(ret, self._what("delete"))
        return True

    def keys(self) -> list[bytes]:
        """Every key, by get_next_key (one syscall per key: prefer ``read_all`` for large maps)."""
        self._check_fd()
        out: list[bytes] = []
        seen: set[bytes] = set()
        cur = None
        nxt = ctypes.create_string_buffer(self.key_size)
        # A key deleted under us makes get_next_key restart from the first key
        # (kernel/bpf/hashtab.c htab_map_get_next_key), so stop when keys repeat.
        while True:
            ret = lb.bpf_map_get_next_key(self.fd, cur, nxt)
            if ret == -errno.ENOENT:
                return out
            lb.check(ret, self._what("get_next_key"))
            k = nxt.raw
            if k in seen:
                return out
            seen.add(k)
            out.append(k)
            cur = k

    # --- snapshots ----------------------------------------------------------------------------------------

    def read_all(self, method: str = "auto", batch_size: int = DEFAULT_BATCH) -> MapSnapshot:
        """Every entry as numpy arrays.

        ``method``: "auto" (batch, falling back to iteration where the kernel refuses batching),
        "batch" (no fallback: raises if refused) or "iterate" (get_next_key + lookup per key).
        """
        self._check_fd()
        if method not in ("auto", "batch", "iterate"):
            raise ValueError(f"read_all method must be 'auto', 'batch' or 'iterate', not {method!r}")
        if method != "iterate":
            snap = self._read_batch(batch_size, fallback=method == "auto")
            if snap is not None:
                return snap
        return self._read_iterate()

    def _snapshot(self, keys: np.ndarray, raw_values: np.ndarray, n: int, method: str) -> MapSnapshot:
        keys = keys[:n]
        values = raw_values[:n].reshape(n, self.ncpu, self.value_stride)
        if self.value_stride != self.value_size:
            values = np.ascontiguousarray(values[:, :, : self.value_size])
        return MapSnapshot(keys=keys, values=values, method=method)

    def _read_batch(self, batch_size: int, fallback: bool) -> MapSnapshot | None:
        ks, vb = self.key_size, self.value_buffer_size
        # Batches are written straight into the result arrays. Start at max_entries (a hash never
        # holds more; np.empty pages are only touched as the kernel fills them) but bound the first
        # reservation so huge sparse maps don't reserve gigabytes; grow by doubling past it.
        chunk = max(1, min(batch_size, self.max_entries or 1))
        cap = max(chunk, min(self.max_entries, _INITIAL_RESERVATION // (ks + vb)))
        keys = np.empty((cap, ks), np.uint8)
        vals = np.empty((cap, vb), np.uint8)
        # The batch position token is the bucket/index number (u32), not a key: size it for both.
        tok_size = max(ks, 8)
        in_tok = ctypes.create_string_buffer(tok_size)
        out_tok = ctypes.create_string_buffer(tok_size)
        count = c_uint32()
        n = 0
        first = True
        while True:
            if n + chunk > cap:
                cap = max(cap * 2, n + chunk)
                keys = np.concatenate([keys[:n], np.empty((cap - n, ks), np.uint8)])
                vals = np.concatenate([vals[:n], np.empty((cap - n, vb), np.uint8)])
            count.value = chunk
            ret = lb.bpf_map_lookup_batch(
                self.fd,
                None if first else in_tok,
                out_tok,
                keys.ctypes.data + n * ks,
                vals.ctypes.data + n * vb,
                byref(count),
                None,
            )
            err = lb.libbpf_errno(ret)
            if err == errno.ENOSPC and count.value == 0:
                # A hash bucket holds more entries than `chunk` (htab batch copies whole buckets).
                chunk *= 2
                continue
            if err and err != errno.ENOENT:
                if first and err in _BATCH_REFUSED and fallback:
                    return None
                raise lb.LibbpfError(err, self._what("lookup_batch"))
            n += count.value
            if err == errno.ENOENT:  # end of map; this call may still have returned entries
                return self._snapshot(keys, vals, n, "batch")
            ctypes.memmove(in_tok, out_tok, tok_size)
            first = False

    def _read_iterate(self) -> MapSnapshot:
        key_list = self.keys()
        keys = np.empty((len(key_list), self.key_size), np.uint8)
        vals = np.empty((len(key_list), self.value_buffer_size), np.uint8)
        n = 0
        for k in key_list:
            ret = lb.bpf_map_lookup_elem(self.fd, k, vals.ctypes.data + n * self.value_buffer_size)
            if ret == -errno.ENOENT:  # deleted since get_next_key
                continue
            lb.check(ret, self._what("lookup"))
            keys[n] = np.frombuffer(k, np.uint8)
            n += 1
        return self._snapshot(keys, vals, n, "iterate")


__all__ = ["MapType", "BpfMap", "MapSnapshot", "PERCPU_TYPES", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "BPF_F_NO_PREALLOC"]
