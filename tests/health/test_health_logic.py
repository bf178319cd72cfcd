"""Pure logic of host BPF health: per-type count rules, levels, metric building, record parsing."""

from __future__ import annotations

import numpy as np
import pytest

from otelbpf.health.map_iter import MAP_RECORD, parse_records
from otelbpf.health.map_types import CountMethod, count_method
from otelbpf.health.name_filter import NameFilter
from otelbpf.health.pressure import (
    MapObservation,
    map_metrics,
    owners_by_map,
    pressure_level,
)
from otelbpf.kernel.maps import MapType
from otelbpf.metrics.model import MetricKind


@pytest.mark.parametrize(
    "map_type, have_kfunc, expected",
    [
        (MapType.HASH, True, CountMethod.KFUNC),
        (MapType.LRU_PERCPU_HASH, True, CountMethod.KFUNC),
        (MapType.HASH_OF_MAPS, True, CountMethod.KFUNC),
        (MapType.HASH, False, CountMethod.ITERATION),
        (MapType.PERCPU_HASH, False, CountMethod.ITERATION),
        (MapType.SOCKHASH, True, CountMethod.ITERATION),  # kfunc reads 0 outside hashtab.c
        (MapType.DEVMAP_HASH, True, CountMethod.ITERATION),
        (MapType.ARRAY, True, CountMethod.MAX_ENTRIES),
        (MapType.PERCPU_ARRAY, False, CountMethod.MAX_ENTRIES),
        (MapType.RINGBUF, True, CountMethod.RINGBUF),
        (MapType.USER_RINGBUF, True, CountMethod.RINGBUF),
        (MapType.LPM_TRIE, True, CountMethod.NONE),
        (MapType.PROG_ARRAY, True, CountMethod.NONE),
        (MapType.STACK_TRACE, True, CountMethod.NONE),
        (MapType.QUEUE, True, CountMethod.NONE),
        (999, True, CountMethod.NONE),  # a type newer than this code
    ],
)
def test_count_method(map_type, have_kfunc, expected):
    assert count_method(map_type, have_kfunc) is expected


@pytest.mark.parametrize(
    "utilization, level", [(0.0, 0), (0.69, 0), (0.7, 1), (0.89, 1), (0.9, 2), (1.0, 2)]
)
def test_pressure_level_thresholds_are_inclusive(utilization, level):
    assert pressure_level(utilization, 0.7, 0.9) == level


def by_name(metrics):
    return {m.name: m for m in metrics}


def test_unmeasurable_map_has_no_count_points():
    obs = MapObservation(id=7, name="lpm", type="lpm_trie", max_entries=100, count_method=CountMethod.NONE, memory=0)
    metrics = by_name(map_metrics([obs], 0.7, 0.9, 123))
    assert set(metrics) == {"bpf.map.entry.limit", "bpf.map.memory.usage"}
    assert metrics["bpf.map.memory.usage"].points[0].value == 0  # the kernel's own number, even 0
    assert all(m.kind is MetricKind.GAUGE for m in metrics.values())


def test_prealloc_array_is_full_but_never_under_pressure():
    obs = MapObservation(
        id=1, name="a", type="array", max_entries=8, count_method=CountMethod.MAX_ENTRIES, entries=8
    )
    metrics = by_name(map_metrics([obs], 0.7, 0.9, 1))
    assert metrics["bpf.map.entry.utilization"].points[0].value == 1.0
    assert metrics["bpf.map.pressure.level"].points[0].value == 0
    assert ("bpf.map.prealloc_full", True) in metrics["bpf.map.entry.usage"].points[0].attributes


def test_ringbuf_observation():
    obs = MapObservation(
        id=3, name="rb", type="ringbuf", max_entries=4096, count_method=CountMethod.RINGBUF, ringbuf_used=3900
    )
    metrics = by_name(map_metrics([obs], 0.7, 0.9, 1))
    assert "bpf.map.entry.usage" not in metrics
    assert metrics["bpf.ringbuf.usage"].points[0].value == 3900
    assert metrics["bpf.ringbuf.limit"].points[0].value == 4096
    assert metrics["bpf.map.pressure.level"].points[0].value == 2
    assert metrics["bpf.ringbuf.usage"].unit == "By"


def test_racy_kfunc_sum_is_clamped_in_utilization():
    obs = MapObservation(id=1, name="h", type="hash", max_entries=10, count_method=CountMethod.KFUNC, entries=-1)
    assert obs.utilization == 0.0
    obs = MapObservation(id=1, name="h", type="hash", max_entries=10, count_method=CountMethod.KFUNC, entries=11)
    assert obs.utilization == 1.0


def test_attributes_and_owners():
    owners = owners_by_map([("b_prog", (1, 2)), ("a_prog", (2,)), ("a_prog", (2,))])
    assert owners == {1: ("b_prog",), 2: ("a_prog", "b_prog")}
    obs = MapObservation(
        id=2, name="h", type="hash", max_entries=10, count_method=CountMethod.KFUNC, entries=1, programs=owners[2]
    )
    assert dict(obs.attributes()) == {
        "bpf.map.id": 2,
        "bpf.map.name": "h",
        "bpf.map.type": "hash",
        "bpf.map.count_method": "kfunc",
        "bpf.map.prealloc_full": False,
        "bpf.map.programs": ("a_prog", "b_prog"),  # an array attribute, not a joined string
    }


def test_parse_records():
    recs = np.zeros(2, MAP_RECORD)
    recs["id"] = (5, 6)
    recs["name"] = (b"one", b"fifteen_chars__")
    parsed = parse_records(recs.tobytes())
    assert parsed["id"].tolist() == [5, 6]
    assert parsed["name"].tolist() == [b"one", b"fifteen_chars__"]
    with pytest.raises(ValueError, match="multiple of the 56-byte record"):
        parse_records(recs.tobytes()[:-1])


def test_name_filter():
    assert NameFilter()("anything")
    f = NameFilter(include=("tcp_*", "udp_*"), exclude=("tcp_debug*",))
    assert f("tcp_conn") and f("udp_x")
    assert not f("tcp_debug_map") and not f("other")
