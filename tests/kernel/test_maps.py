"""BpfMap against the real kernel: element access and read_all (batch and iteration) for each map type."""

from __future__ import annotations

import ctypes
import errno
import struct

import numpy as np
import pytest

from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.maps import (
    BPF_F_NO_PREALLOC,
    BPF_NOEXIST,
    BpfMap,
    MapSnapshot,
    MapType,
)

pytestmark = pytest.mark.kernel

NCPU = lb.num_possible_cpus()
COUNT_TYPES = [MapType.HASH, MapType.ARRAY, MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_HASH,
               MapType.LRU_PERCPU_HASH]


def sorted_entries(snap: MapSnapshot) -> list[tuple[bytes, bytes]]:
    return sorted((snap.keys[i].tobytes(), snap.values[i].tobytes()) for i in range(len(snap)))


def fill(m: BpfMap, keys: range) -> None:
    for k in keys:
        if m.percpu:
            m.update(struct.pack("I", k), [struct.pack("Q", k * 1000 + cpu) for cpu in range(m.ncpu)])
        else:
            m.update(struct.pack("I", k), struct.pack("Q", k * 1000))


@pytest.mark.parametrize("map_type", COUNT_TYPES, ids=lambda t: t.name)
def test_read_all_batch_and_iterate_agree(map_type: MapType) -> None:
    with BpfMap.create(map_type, 4, 8, 128, name="t_rw") as m:
        fill(m, range(0, 100, 3))
        batch = m.read_all()
        iterate = m.read_all(method="iterate")
        assert batch.method == "batch" and iterate.method == "iterate"
        assert batch.keys.shape[1] == 4 and batch.values.shape[1:] == (m.ncpu, 8)
        assert sorted_entries(batch) == sorted_entries(iterate)
        expected_n = 128 if map_type in (MapType.ARRAY, MapType.PERCPU_ARRAY) else len(range(0, 100, 3))
        assert len(batch) == expected_n
        by_key = dict(zip(batch.keys.view(np.uint32).ravel().tolist(), batch.u64().tolist()))
        for k in range(0, 100, 3):
            want = [k * 1000 + cpu for cpu in range(NCPU)] if m.percpu else [k * 1000]
            assert by_key[k] == want
        if map_type in (MapType.ARRAY, MapType.PERCPU_ARRAY):
            assert by_key[1] == [0] * m.ncpu  # array maps return every index, unset ones as zero


def test_percpu_ncpu_is_possible_cpus() -> None:
    with BpfMap.create(MapType.PERCPU_HASH, 4, 8, 4) as m:
        assert m.ncpu == NCPU == len(range(*_possible_range()))
        m.update(b"\0" * 4, b"\1" * m.value_buffer_size)
        assert m.read_all().values.shape == (1, NCPU, 8)


def _possible_range() -> tuple[int, int]:
    text = open("/sys/devices/system/cpu/possible").read().strip()
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo) + 1


def test_percpu_padding_is_stripped() -> None:
    # 12-byte values sit 16 bytes apart in the kernel's per-CPU buffer.
    with BpfMap.create(MapType.PERCPU_HASH, 4, 12, 8) as m:
        assert m.value_stride == 16 and m.value_buffer_size == 16 * NCPU
        per_cpu = [struct.pack("III", cpu, 7, 9) for cpu in range(NCPU)]
        m.update(struct.pack("I", 5), per_cpu)
        for method in ("batch", "iterate"):
            snap = m.read_all(method=method)
            assert snap.values.shape == (1, NCPU, 12)
            assert [snap.values[0, cpu].tobytes() for cpu in range(NCPU)] == per_cpu
        assert m.lookup_percpu(struct.pack("I", 5)) == per_cpu


def test_hash_larger_than_one_batch() -> None:
    n = 20_000  # > 2 batches of 8192
    with BpfMap.create(MapType.HASH, 8, 8, 32_768) as m:
        keys = np.arange(n, dtype=np.uint64)
        vals = keys * 3
        count = ctypes.c_uint32(n)
        lb.check(lb.bpf_map_update_batch(m.fd, keys.ctypes.data, vals.ctypes.data, ctypes.byref(count), None),
                 "update_batch")
        snap = m.read_all()
        assert snap.method == "batch" and len(snap) == n
        got_keys = snap.keys.view(np.uint64).ravel()
        order = np.argsort(got_keys)
        assert np.array_equal(got_keys[order], keys)
        assert np.array_equal(snap.u64()[order, 0], vals)


def test_tiny_batch_grows_on_enospc() -> None:
    # With batch_size=1, any hash bucket holding 2+ entries makes the kernel answer ENOSPC
    # (it copies whole buckets); read_all must grow the chunk and still return every entry once.
    with BpfMap.create(MapType.HASH, 4, 8, 64) as m:
        fill(m, range(64))
        snap = m.read_all(method="batch", batch_size=1)
        assert sorted(snap.keys.view(np.uint32).ravel().tolist()) == list(range(64))
        assert sorted_entries(snap) == sorted_entries(m.read_all(method="iterate"))


def test_lru_hash_and_lpm_trie() -> None:
    with BpfMap.create(MapType.LPM_TRIE, 8, 8, 16, flags=BPF_F_NO_PREALLOC) as m:
        for plen, addr, v in ((8, 10, 1), (16, 10 | 1 << 8, 2), (32, 0x0100007F, 3)):
            m.update(struct.pack("<I", plen) + struct.pack("<I", addr), struct.pack("Q", v))
        snap = m.read_all()
        assert sorted(snap.u64()[:, 0].tolist()) == [1, 2, 3]
        assert sorted_entries(snap) == sorted_entries(m.read_all(method="iterate"))


def test_fallback_to_iteration_where_batching_is_refused() -> None:
    # Stack trace maps have no batch ops (the kernel answers ENOTSUPP): auto falls back, "batch" raises.
    with BpfMap.create(MapType.STACK_TRACE, 4, 8 * 4, 16) as m:
        snap = m.read_all()
        assert snap.method == "iterate" and len(snap) == 0
        with pytest.raises(lb.LibbpfError) as info:
            m.read_all(method="batch")
        assert info.value.errno in (lb.ENOTSUPP, errno.EOPNOTSUPP, errno.EINVAL)
        assert "t_stack" in str(info.value) or "lookup_batch" in str(info.value)


def test_element_access() -> None:
    with BpfMap.create(MapType.HASH, 4, 8, 4, name="t_elems") as m:
        k = struct.pack("I", 1)
        assert m.lookup(k) is None
        m.update(k, struct.pack("Q", 42))
        assert m.lookup(k) == struct.pack("Q", 42)
        with pytest.raises(lb.LibbpfError) as info:
            m.update(k, struct.pack("Q", 43), flags=BPF_NOEXIST)
        assert info.value.errno == errno.EEXIST and "t_elems" in str(info.value)
        assert m.keys() == [k]
        assert m.delete(k) is True and m.delete(k) is False
        with pytest.raises(ValueError, match="key is 2 bytes, the map needs 4"):
            m.lookup(b"ab")
        with pytest.raises(ValueError, match="value is 4 bytes, the map needs 8"):
            m.update(k, b"abcd")
        with pytest.raises(ValueError, match="at byte 0 of this map's 4-byte values"):
            BpfMap.create(MapType.HASH, 4, 4, 1).read_all().u64()


def test_from_id_and_from_fd_describe_the_same_map() -> None:
    with BpfMap.create(MapType.LRU_PERCPU_HASH, 16, 24, 77, name="t_describe") as m:
        assert m.id > 0 and m.name == "t_describe" and m.type is MapType.LRU_PERCPU_HASH
        with BpfMap.from_id(m.id) as same:
            assert (same.fd != m.fd and same.id == m.id and same.key_size == 16 and same.value_size == 24
                    and same.max_entries == 77 and same.type is MapType.LRU_PERCPU_HASH)
            same.update(b"k" * 16, [b"v" * 24] * NCPU)
        assert m.lookup_percpu(b"k" * 16) == [b"v" * 24] * NCPU


def test_closed_map_is_refused_and_errors_carry_context() -> None:
    m = BpfMap.create(MapType.HASH, 4, 4, 1)
    m.close()
    assert m.closed
    m.close()  # idempotent
    with pytest.raises(ValueError, match="it is closed"):
        m.read_all()
    with pytest.raises(lb.LibbpfError) as info:
        BpfMap.create(MapType.HASH, 0, 4, 1)
    assert info.value.errno == errno.EINVAL and "key_size=0" in str(info.value)
    with pytest.raises(lb.LibbpfError) as info:
        BpfMap.from_id(0xFFFFFFF0)
    assert info.value.errno == errno.ENOENT


def test_result_arrays_grow_past_the_initial_reservation(monkeypatch: pytest.MonkeyPatch) -> None:
    from otelbpf.kernel import maps

    monkeypatch.setattr(maps, "_INITIAL_RESERVATION", 1)  # start with room for one batch only
    with BpfMap.create(MapType.PERCPU_HASH, 4, 8, 1024) as m:
        fill(m, range(1000))
        snap = m.read_all(method="batch", batch_size=16)
        assert snap.method == "batch"
        assert sorted_entries(snap) == sorted_entries(m.read_all(method="iterate"))
        assert len(snap) == 1000
