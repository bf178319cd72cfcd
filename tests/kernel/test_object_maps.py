"""A loaded object's maps of every type, filled by a tracepoint program, read by batch and by iteration."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from kernel_triggers import getpgid_calls, on_cpu

from otelbpf.kernel import BpfObject, MapType
from otelbpf.kernel import libbpf as lb

pytestmark = pytest.mark.kernel

NCPU = lb.num_possible_cpus()
COUNT_MAPS = {
    "hash_counts": MapType.HASH,
    "array_counts": MapType.ARRAY,
    "percpu_hash_counts": MapType.PERCPU_HASH,
    "percpu_array_counts": MapType.PERCPU_ARRAY,
    "lru_hash_counts": MapType.LRU_HASH,
    "lru_percpu_hash_counts": MapType.LRU_PERCPU_HASH,
}
# key -> (calls on CPU 0, calls on CPU 1)
CALLS = {3: (5, 2), 17: (1, 9), 40: (4, 0)}


@pytest.fixture(scope="module")
def filled(objects: Path):
    if NCPU < 2 or not {0, 1} <= os.sched_getaffinity(0):
        pytest.skip("needs CPUs 0 and 1")
    obj = BpfObject.open(objects / "kernel_maps.bpf.o", parameters={"target_tgid": os.getpid()})
    obj.load()
    link = obj.attach("fill_maps")
    for key, (cpu0, cpu1) in CALLS.items():
        with on_cpu(0):
            getpgid_calls(key, cpu0)
        with on_cpu(1):
            getpgid_calls(key, cpu1)
    link.close()  # nothing changes the maps while the tests read them
    yield obj
    obj.close()


def test_object_lists_user_maps_only(filled: BpfObject) -> None:
    assert set(filled.maps) == set(COUNT_MAPS) | {"percpu_triples"}  # no .rodata / .bss
    for name, map_type in COUNT_MAPS.items():
        m = filled.maps[name]
        assert m.type is map_type and m.key_size == 4 and m.value_size == 8 and m.max_entries == 64
        assert m.fd >= 0 and m.id > 0


@pytest.mark.parametrize("name", COUNT_MAPS)
def test_counts_by_batch_and_iteration(filled: BpfObject, name: str) -> None:
    m = filled.maps[name]
    batch, iterate = m.read_all(), m.read_all(method="iterate")
    assert batch.method == "batch" and iterate.method == "iterate"
    for snap in (batch, iterate):
        keys = snap.keys.view(np.uint32).ravel()
        counts = snap.u64()
        got = {int(k): counts[i].tolist() for i, k in enumerate(keys) if counts[i].any()}
        if m.percpu:
            want = {k: [c0, c1] + [0] * (NCPU - 2) for k, (c0, c1) in CALLS.items()}
        else:
            want = {k: [c0 + c1] for k, (c0, c1) in CALLS.items()}
        assert got == want
        assert len(snap) == (64 if m.type in (MapType.ARRAY, MapType.PERCPU_ARRAY) else len(CALLS))
    order_b, order_i = np.argsort(batch.keys.view(np.uint32).ravel()), np.argsort(iterate.keys.view(np.uint32).ravel())
    assert np.array_equal(batch.values[order_b], iterate.values[order_i])


def test_percpu_struct_values_per_cpu(filled: BpfObject) -> None:
    # struct triple {u32 cpu, key, count}: 12 bytes, padded to 16 per CPU in the kernel buffer.
    snap = filled.maps["percpu_triples"].read_all()
    assert snap.values.shape == (len(CALLS), NCPU, 12)
    for i, key in enumerate(snap.keys.view(np.uint32).ravel().tolist()):
        triples = snap.values[i].copy().view(np.uint32)  # (ncpu, 3)
        for cpu, calls in enumerate(CALLS[key]):
            if calls:
                assert triples[cpu].tolist() == [cpu, key, calls]
            else:
                assert triples[cpu].tolist() == [0, 0, 0]
