"""features.probe() agrees with what the kernel really does when asked.

Each probe is compared with the real operation it predicts (attach a kprobe, load an fentry
program, create a ring buffer, batch-read a map, attach an iterator, run the kfunc, enable run-time
stats). No test states what this machine lacks: the suite must pass the same on a kernel with
kprobes and fentry (Debian 12's 6.1, say) as on one without.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from otelbpf.errors import OtelbpfError
from otelbpf.kernel import BpfLink, BpfObject, features
from otelbpf.kernel.maps import BpfMap, MapType

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def probed() -> features.KernelFeatures:
    return features.probe()


@pytest.fixture
def attach_obj(objects: Path):
    obj = BpfObject.open(objects / "kernel_attach.bpf.o", parameters={"target_tgid": os.getpid()})
    obj.load()
    yield obj
    obj.close()


def _attaches(obj: BpfObject, program: str) -> bool:
    try:
        link = obj.attach(program)
    except OtelbpfError:
        return False
    assert isinstance(link, BpfLink)
    link.close()
    return True


def test_every_missing_feature_has_a_reason(probed):
    d = probed.as_dict()
    assert list(d) == ["kprobe", "fentry", "ringbuf", "batch_ops", "iter_bpf_map", "kfunc_map_sum_elem_count",
                       "enable_stats"]
    for name, (present, reason) in d.items():
        assert present == (reason == ""), name


def test_kprobe_probe_matches_a_real_attach(probed, attach_obj):
    assert _attaches(attach_obj, "on_kprobe") == probed.kprobe, probed.reasons.get("kprobe")
    if not probed.kprobe:
        assert "kprobes are not supported" in probed.reasons["kprobe"]


def test_fentry_probe_matches_a_real_load_and_attach(probed, attach_obj):
    loaded = "on_fentry" not in attach_obj.program_errors
    assert loaded == probed.fentry, attach_obj.program_errors.get("on_fentry")
    assert _attaches(attach_obj, "on_fentry") == probed.fentry
    if not probed.fentry:
        assert "fentry/fexit are not supported by this kernel" in probed.reasons["fentry"]


def test_ringbuf_probe_matches_creating_one(probed):
    try:
        BpfMap.create(MapType.RINGBUF, 0, 0, 4096, name="t_probe_rb").close()
        created = True
    except OSError:
        created = False
    assert created == probed.ringbuf


def test_batch_ops_probe_matches_a_batch_read(probed):
    with BpfMap.create(MapType.HASH, 4, 8, 8, name="t_probe_batch") as m:
        m.update(struct.pack("<I", 1), struct.pack("<Q", 2))
        try:
            snapshot = m.read_all(method="batch")
            batched = snapshot.method == "batch" and len(snapshot.keys) == 1
        except OSError:
            batched = False
    assert batched == probed.batch_ops


def test_iter_bpf_map_probe_matches_attaching_an_iterator(probed, attach_obj):
    assert _attaches(attach_obj, "dump_maps") == probed.iter_bpf_map


def test_kfunc_probe_matches_the_count_the_map_iterator_reads(probed, bpf_build):
    """The map-pressure iterator counts hash maps with the kfunc exactly when the probe says so."""
    import time

    from otelbpf.health.map_pressure import MapPressure
    from tests.health.conftest import map_pressure_config

    if not probed.iter_bpf_map:
        pytest.skip(f"the kfunc is only called from the iter/bpf_map program: {probed.reasons['iter_bpf_map']}")
    with BpfMap.create(MapType.HASH, 4, 8, 16, name="t_probe_kfunc") as m:
        m.update(struct.pack("<I", 1), struct.pack("<Q", 1))
        source = MapPressure(map_pressure_config(), bpf_build)
        try:
            points = [p for metric in source.collect(time.time_ns()) if metric.name == "bpf.map.max_entries"
                      for p in metric.points if dict(p.attributes)["bpf.map.id"] == m.id]
        finally:
            source.close()
    (point,) = points
    method = dict(point.attributes)["bpf.map.count_method"]
    assert (method == "kfunc") == probed.kfunc_map_sum_elem_count, method


def test_enable_stats_probe_matches_the_stats_source(probed):
    from otelbpf.health.run_stats import RunTimeStats

    stats = RunTimeStats()
    try:
        assert (stats.method == "bpf_enable_stats") == probed.enable_stats
    finally:
        stats.close()
