"""MapPressure against the real kernel, on maps owned by another process."""

from __future__ import annotations

import time

import pytest

from otelbpf.health.map_pressure import MapPressure
from otelbpf.health.pressure import pressure_level
from otelbpf.kernel.features import probe

from .conftest import map_pressure_config, points_by

pytestmark = pytest.mark.kernel

# Hash tables are counted by the kfunc where the kernel has it (6.6+), else by walking their keys.
HTAB = "kfunc" if probe().kfunc_map_sum_elem_count and probe().iter_bpf_map else "iteration"
EXPECTED_METHOD = {
    "hash": HTAB,
    "hash_nopre": HTAB,
    "lru": HTAB,
    "lru_nocommon": HTAB,
    "pc_hash": HTAB,
    "pc_hash_np": HTAB,
    "lru_pc_hash": HTAB,
    "hash_of_maps": HTAB,
    "array": "max_entries",
    "pc_array": "max_entries",
    "ringbuf": "ringbuf",
    "sockhash": "iteration",
    "devmap_hash": "iteration",
    "lpm": "none",
    "queue": "none",
    "prog_array": "none",
}
# label: (entries, max_entries, pressure level) for warning=0.7, critical=0.9
EXPECTED_FILL = {
    "hash": (900, 1000, 2),
    "hash_nopre": (750, 1000, 1),
    "pc_hash": (300, 1000, 0),
    "pc_hash_np": (500, 1000, 0),
    "array": (64, 64, 0),  # full by construction, never a pressure
    "pc_array": (16, 16, 0),
    "hash_of_maps": (3, 10, 0),
    "sockhash": (1, 16, 0),
    "devmap_hash": (1, 8, 0),
}


def attrs(point) -> dict:
    return dict(point.attributes)


@pytest.fixture
def source(bpf_build):
    mp = MapPressure(map_pressure_config(), bpf_build)
    yield mp
    mp.close()


def test_iterator_is_used(source):
    if not probe().iter_bpf_map:
        pytest.skip(f"no iter/bpf_map on this kernel: {probe().reasons['iter_bpf_map']}")
    assert source.method == "iterator", source.fallback_reason


def test_every_map_type_measured_exactly(source, map_owner):
    by = points_by(source.collect(time.time_ns()), "bpf.map.id")
    ids = map_owner.ids
    limits = {**by["bpf.map.entry.limit"], **by["bpf.ringbuf.limit"]}  # ring buffers: bytes, their own metric
    assert not set(by["bpf.map.entry.limit"]) & set(by["bpf.ringbuf.limit"])
    for label, method in EXPECTED_METHOD.items():
        point = limits[ids[label]]
        assert attrs(point)["bpf.map.count_method"] == method, label
        assert attrs(point)["bpf.map.name"] == ("health_rb" if label == "ringbuf" else f"hq_{label}")
    for label, (entries, max_entries, level) in EXPECTED_FILL.items():
        map_id = ids[label]
        assert by["bpf.map.entry.usage"][map_id].value == entries, label
        assert by["bpf.map.entry.limit"][map_id].value == max_entries, label
        assert by["bpf.map.entry.utilization"][map_id].value == entries / max_entries, label
        assert by["bpf.map.pressure.level"][map_id].value == level, label
        assert attrs(by["bpf.map.entry.usage"][map_id])["bpf.map.prealloc_full"] is (label in ("array", "pc_array"))
    # LRU maps after evictions: the kernel evicts in batches from per-CPU free lists, so the exact
    # count is whatever the owner's own key walk saw; the maps are quiet, so both must agree.
    for label, max_entries in (("lru", 128), ("lru_nocommon", 128), ("lru_pc_hash", 256)):
        map_id = ids[label]
        entries = map_owner.keys[label]
        assert 0 < entries <= max_entries
        assert by["bpf.map.entry.usage"][map_id].value == entries, label
        assert by["bpf.map.entry.utilization"][map_id].value == entries / max_entries, label
        assert by["bpf.map.pressure.level"][map_id].value == pressure_level(entries / max_entries, 0.7, 0.9)
    assert map_owner.keys["lru"] > 0.7 * 128  # 400 inserts keep it under pressure


def test_ring_buffer_fill(source, map_owner):
    by = points_by(source.collect(time.time_ns()), "bpf.map.id")
    rb = map_owner.ids["ringbuf"]
    assert by["bpf.ringbuf.usage"][rb].value == 12 * 1024
    assert by["bpf.ringbuf.limit"][rb].value == 64 * 1024
    assert by["bpf.ringbuf.utilization"][rb].value == 12 / 64
    assert by["bpf.map.pressure.level"][rb].value == 0
    assert rb not in by.get("bpf.map.entry.usage", {})
    # The program that writes it is known as an owner.
    assert "fill_ringbuf" in attrs(by["bpf.ringbuf.usage"][rb])["bpf.map.programs"]


def test_unmeasurable_types_report_no_count(source, map_owner):
    by = points_by(source.collect(time.time_ns()), "bpf.map.id")
    for label in ("lpm", "queue", "prog_array"):
        map_id = map_owner.ids[label]
        assert map_id in by["bpf.map.entry.limit"]
        for name in ("bpf.map.entry.usage", "bpf.map.entry.utilization", "bpf.map.pressure.level", "bpf.ringbuf.usage",
                     "bpf.ringbuf.utilization"):
            assert map_id not in by.get(name, {}), (label, name)


def test_memory_from_kernel_accounting(source, map_owner):
    by = points_by(source.collect(time.time_ns()), "bpf.map.id")
    memory = {label: by["bpf.map.memory.usage"][map_id].value for label, map_id in map_owner.ids.items()}
    # A 1000-entry preallocated hash holds at least its 1000 elements of key + value.
    assert memory["hash"] >= 1000 * (4 + 8)
    assert memory["ringbuf"] >= 64 * 1024
    assert memory["pc_array"] >= 16 * 8


def test_freed_maps_stop_being_exported(source, map_owner):
    ids = set(map_owner.ids.values())
    exported = {attrs(p)["bpf.map.id"] for m in source.collect(time.time_ns()) for p in m.points}
    assert ids <= exported
    map_owner.kill()
    # The kernel frees maps from a workqueue after the last reference goes away.
    deadline = time.monotonic() + 10
    while True:
        exported = {attrs(p)["bpf.map.id"] for m in source.collect(time.time_ns()) for p in m.points}
        if not ids & exported or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not ids & exported


def test_include_exclude(bpf_build, map_owner):
    mp = MapPressure(map_pressure_config(include=("hq_*",), exclude=("hq_lru*",)), bpf_build)
    try:
        names = {attrs(p)["bpf.map.name"] for m in mp.collect(time.time_ns()) for p in m.points}
    finally:
        mp.close()
    assert "hq_hash" in names and "hq_array" in names
    assert not {n for n in names if n.startswith("hq_lru")}
    assert "health_rb" not in names
    assert all(n.startswith("hq_") for n in names)


def test_thresholds_are_configurable(bpf_build, map_owner):
    mp = MapPressure(map_pressure_config(warning=0.2, critical=0.95), bpf_build)
    try:
        by = points_by(mp.collect(time.time_ns()), "bpf.map.id")
    finally:
        mp.close()
    assert by["bpf.map.pressure.level"][map_owner.ids["hash"]].value == 1
    assert by["bpf.map.pressure.level"][map_owner.ids["pc_hash"]].value == 1
    assert by["bpf.map.pressure.level"][map_owner.ids["array"]].value == 0


def test_without_iterator_hash_maps_are_counted_by_iteration(tmp_path, map_owner):
    """The path for kernels without iter/bpf_map or the kfunc (< 6.6): enumerate by id, walk keys."""
    mp = MapPressure(map_pressure_config(), build_dir=tmp_path)  # no map_pressure.bpf.o there
    try:
        assert mp.method == "syscalls" and "map_pressure.bpf.o" in mp.fallback_reason
        by = points_by(mp.collect(time.time_ns()), "bpf.map.id")
    finally:
        mp.close()
    for label in ("hash", "hash_nopre", "pc_hash", "pc_hash_np"):
        point = by["bpf.map.entry.usage"][map_owner.ids[label]]
        assert point.value == EXPECTED_FILL[label][0]
        assert attrs(point)["bpf.map.count_method"] == "iteration"
    for label in ("lru", "lru_nocommon", "lru_pc_hash"):
        assert by["bpf.map.entry.usage"][map_owner.ids[label]].value == map_owner.keys[label]
    assert by["bpf.ringbuf.usage"][map_owner.ids["ringbuf"]].value == 12 * 1024
