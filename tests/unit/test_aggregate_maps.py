"""Map snapshots → counter and histogram metrics, without a kernel."""

from __future__ import annotations

import dataclasses
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from otelbpf.aggregate.buckets import BucketLayout
from otelbpf.aggregate.maps import OutOfRangeSlots, counter_metric, histogram_metric, sum_cpus
from otelbpf.config.program import (
    CounterConfig,
    DecoderConfig,
    HistogramConfig,
    LabelConfig,
)
from otelbpf.labels.keys import KeyDecoder
from otelbpf.kernel.maps import MapSnapshot
from otelbpf.metrics.model import (
    ExponentialHistogramPoint,
    HistogramPoint,
    MetricKind,
    Temporality,
)

UINT = (DecoderConfig("uint"),)


def snapshot(keys: list[bytes], values: list[list[int]]) -> MapSnapshot:
    k = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), -1)
    v = np.array(values, dtype=np.uint64).reshape(len(keys), len(values[0]), 1).view(np.uint8)
    return MapSnapshot(keys=k, values=v.reshape(len(keys), len(values[0]), 8), method="batch")


class DroppingDecoder:
    """Decodes the first byte as a label; drops keys whose first byte is 0xff; 1 and 2 both mean "one"."""

    names = ("kind",)

    def __init__(self):
        self.calls = 0

    def decode(self, key: bytes):
        self.calls += 1
        if key[0] == 0xFF:
            return None
        return ("one",) if key[0] in (1, 2) else (str(key[0]),)


COUNTER = CounterConfig(name="syscalls", help="Syscalls by id", unit="{call}", map="counts",
                        labels=(LabelConfig("id", 4),))


def test_counter_sums_cpus_and_keys_with_equal_labels():
    keys = [struct.pack("<I", i) for i in (1, 2, 3, 255)]
    snap = snapshot(keys, [[1, 2], [10, 20], [5, 0], [7, 7]])
    metric = counter_metric(COUNTER, snap, DroppingDecoder(), 100, 200)
    assert metric.kind is MetricKind.SUM and metric.monotonic and metric.temporality is Temporality.CUMULATIVE
    assert [(p.attributes, p.value, p.start_time_ns, p.time_ns) for p in metric.points] == [
        ((("kind", "3"),), 5, 100, 200),
        ((("kind", "one"),), 33, 100, 200),
    ]


def test_counter_multiplier_exports_another_unit():
    """Nanoseconds counted by the kernel, exported in seconds: each total times the multiplier,
    as a double (the integer counts stay exact up to 2^53 ns, about 104 days)."""
    in_seconds = dataclasses.replace(COUNTER, unit="s", multiplier=1e-9)
    keys = [struct.pack("<I", i) for i in (1, 2, 3)]
    snap = snapshot(keys, [[1_500_000_000, 0], [2, 0], [5, 5]])
    metric = counter_metric(in_seconds, snap, DroppingDecoder(), 0, 1)
    got = {p.attributes: p.value for p in metric.points}
    assert got == {(("kind", "3"),): 10 * 1e-9, (("kind", "one"),): 1_500_000_002 * 1e-9}
    assert all(isinstance(v, float) for v in got.values()) and metric.unit == "s"


def test_counter_cpu_label():
    keys = [struct.pack("<I", 3)]
    snap = snapshot(keys, [[4, 6]])
    metric = counter_metric(COUNTER, snap, DroppingDecoder(), 0, 1, cpu_label=True)
    assert [(p.attributes, p.value) for p in metric.points] == [
        ((("kind", "3"), ("cpu", "0")), 4), ((("kind", "3"), ("cpu", "1")), 6)]


def test_counter_with_real_key_decoder():
    decoder = KeyDecoder((LabelConfig("id", 4, decoders=UINT),), cache_size=16)
    snap = snapshot([struct.pack("<I", 42), struct.pack("<I", 7)], [[1], [2]])
    metric = counter_metric(COUNTER, snap, decoder, 0, 1)
    assert [(p.attributes, p.value) for p in metric.points] == [((("id", "42"),), 1), ((("id", "7"),), 2)]


def test_sum_cpus_never_wraps():
    big = np.array([[2**63, 2**63, 5]], dtype=np.uint64)
    assert sum_cpus(big).tolist() == [2**64 + 5]
    assert sum_cpus(np.array([[1, 2]], dtype=np.uint64)).tolist() == [3]


def hist_cfg(bucket_type="exp2", bucket_min=0, bucket_max=10, multiplier=1.0, keys=(), per_cpu="sum"):
    labels = (LabelConfig("dev", 4, decoders=UINT), LabelConfig("op", 1, padding=3, decoders=UINT),
              LabelConfig("bucket", 4))
    return HistogramConfig(name="io_latency", help="IO latency", unit="us", map="lat", labels=labels,
                           bucket_type=bucket_type, bucket_min=bucket_min, bucket_max=bucket_max,
                           bucket_keys=keys, bucket_multiplier=multiplier, per_cpu=per_cpu)


def hkey(dev: int, op: int, slot: int) -> bytes:
    return struct.pack("<IB3xI", dev, op, slot)


def test_histogram_exp2_groups_by_label_prefix():
    cfg = hist_cfg()
    layout = BucketLayout.from_config(cfg)
    entries = {
        hkey(8, 0, 0): 2, hkey(8, 0, 3): 5, hkey(8, 0, 11): 1234,   # slot 11 = sum
        hkey(8, 1, 1): 1, hkey(8, 1, 11): 2,
        hkey(9, 0, 10): 1, hkey(9, 0, 11): 1000,
        hkey(8, 0, 40): 99,  # above the sum slot: ignored
    }
    rng = np.random.default_rng(0)
    order = rng.permutation(len(entries))
    keys = [list(entries)[i] for i in order]
    snap = snapshot(keys, [[entries[k] // 2, entries[k] - entries[k] // 2] for k in keys])
    decoder = KeyDecoder(cfg.series_labels, cache_size=64)
    metric = histogram_metric(cfg, snap, decoder, layout, 10, 20)
    assert metric.kind is MetricKind.EXPONENTIAL_HISTOGRAM
    by_attrs = {p.attributes: p for p in metric.points}
    assert list(by_attrs) == [(("dev", "8"), ("op", "0")), (("dev", "8"), ("op", "1")), (("dev", "9"), ("op", "0"))]
    p = by_attrs[(("dev", "8"), ("op", "0"))]
    assert isinstance(p, ExponentialHistogramPoint)
    assert (p.count, p.sum, p.zero_count, p.zero_threshold, p.positive_offset, p.positive_counts) == (
        7, 1234, 2, 1.0, 2, (5,))
    assert by_attrs[(("dev", "9"), ("op", "0"))].positive_offset == 9


def test_histogram_merges_equal_labels_and_drops_none():
    cfg = hist_cfg(bucket_type="linear", bucket_max=3, multiplier=2.0)
    layout = BucketLayout.from_config(cfg)

    class Decoder:
        names = ("dev", "op")

        def __init__(self):
            self.seen = []

        def decode(self, prefix: bytes):
            self.seen.append(prefix)
            dev = struct.unpack_from("<I", prefix)[0]
            return None if dev == 0 else ("disk", "rw")

    keys = [hkey(1, 0, 1), hkey(2, 0, 1), hkey(2, 0, 3), hkey(1, 0, 4), hkey(2, 0, 4), hkey(0, 0, 1)]
    snap = snapshot(keys, [[1], [2], [3], [10], [20], [50]])
    decoder = Decoder()
    metric = histogram_metric(cfg, snap, decoder, layout, 0, 1)
    assert len(decoder.seen) == 3  # once per distinct label prefix
    (point,) = metric.points
    assert isinstance(point, HistogramPoint)
    assert point.bounds == (0.0, 2.0, 4.0, 6.0)
    assert point.bucket_counts == (0, 3, 0, 3, 0)
    assert point.count == 6 and point.sum == 60


def test_histogram_per_cpu_label_and_fixed():
    cfg = hist_cfg(bucket_type="fixed", keys=(10, 100), per_cpu="label")
    layout = BucketLayout.from_config(cfg)
    # fixed slots are keyed by bucket value: keys 10 and 100, the sum at 101; key 2 is not read
    snap = snapshot([hkey(1, 1, 10), hkey(1, 1, 100), hkey(1, 1, 101), hkey(1, 1, 2)],
                    [[1, 0], [0, 2], [5, 150], [40, 40]])
    metric = histogram_metric(cfg, snap, KeyDecoder(cfg.series_labels, 8), layout, 0, 1)
    assert [(p.attributes[-1], p.bucket_counts, p.sum) for p in metric.points] == [
        (("cpu", "0"), (1, 0, 0), 5), (("cpu", "1"), (0, 2, 0), 150)]


def test_histogram_without_series_labels():
    cfg = HistogramConfig(name="h", help="", unit="", map="m", labels=(LabelConfig("bucket", 2),),
                          bucket_type="exp2", bucket_min=0, bucket_max=4)
    layout = BucketLayout.from_config(cfg)
    snap = snapshot([struct.pack("<H", 2), struct.pack("<H", 5)], [[3], [9]])
    metric = histogram_metric(cfg, snap, KeyDecoder((), 8), layout, 0, 1)
    (point,) = metric.points
    assert point.attributes == () and point.count == 3 and point.sum == 9 and point.positive_offset == 1


@pytest.mark.parametrize("n_series", [1, 500])
def test_histogram_matches_per_key_reference(n_series):
    cfg = hist_cfg(bucket_max=20)
    layout = BucketLayout.from_config(cfg)
    rng = np.random.default_rng(n_series)
    keys, values, expect = [], [], {}
    for s in range(n_series):
        dev, op = int(rng.integers(0, 1000)), int(rng.integers(0, 3))
        for slot in rng.choice(22, size=int(rng.integers(1, 8)), replace=False).tolist():
            if hkey(dev, op, slot) in expect:
                continue
            count = int(rng.integers(1, 100))
            keys.append(hkey(dev, op, slot))
            values.append([count])
            expect[hkey(dev, op, slot)] = count
    snap = snapshot(keys, values)
    metric = histogram_metric(cfg, snap, KeyDecoder(cfg.series_labels, 4096), layout, 0, 1)
    reference: dict[tuple, dict[int, int]] = {}
    for key, count in expect.items():
        dev, op, slot = struct.unpack("<IB3xI", key)
        reference.setdefault((("dev", str(dev)), ("op", str(op))), {})[slot] = count
    got = {p.attributes: p for p in metric.points}
    for attrs, slots in reference.items():
        counts = {k: c for k, c in slots.items() if k <= 20}
        if not counts and 21 not in slots:
            continue
        row = np.zeros((1, layout.n_columns), dtype=np.int64)
        for slot, count in counts.items():
            row[0, slot] = count
        assert got[attrs] == layout.to_points(row, [slots.get(21, 0)], [attrs], 0, 1)[0]
    assert len(got) == sum(1 for s in reference.values() if any(k <= 21 for k in s))


def test_histogram_slots_outside_the_layout_are_counted_and_warned_once(caplog):
    """Slots below bucket_min and above the sum slot are counted in otelbpf.histogram.out_of_range
    (the map's cumulative events there, per CPU summed) with one warning naming the metric."""
    cfg = hist_cfg(bucket_min=2)
    layout = BucketLayout.from_config(cfg)
    keys = [hkey(8, 0, 3), hkey(8, 0, 11), hkey(8, 0, 1), hkey(8, 0, 40)]
    outside = OutOfRangeSlots("biolatency")
    with caplog.at_level("WARNING"):
        histogram_metric(cfg, snapshot(keys, [[5, 0], [9, 0], [2, 1], [99, 1]]), KeyDecoder(cfg.series_labels),
                         layout, 10, 20, out_of_range=outside)
        metric = histogram_metric(cfg, snapshot(keys, [[5, 0], [9, 0], [2, 2], [99, 2]]),
                                  KeyDecoder(cfg.series_labels), layout, 10, 30, out_of_range=outside)
    (point,) = metric.points
    assert point.count == 5 + 4  # the slot below bucket_min still counts in the lowest bucket
    report = outside.metric(10, 30)
    assert report.name == "otelbpf.histogram.out_of_range" and report.monotonic
    (counted,) = report.points
    assert counted.attributes == (("otelbpf.program", "biolatency"), ("otelbpf.metric", cfg.name))
    assert (counted.value, counted.start_time_ns, counted.time_ns) == (4 + 101, 10, 30)
    warnings = [r.getMessage() for r in caplog.records if "out_of_range" in r.getMessage()]
    assert len(warnings) == 1 and cfg.name in warnings[0] and "1, 40" in warnings[0]


@pytest.mark.parametrize("aggregation", ["explicit", "auto"])
def test_below_bucket_min_drop_leaves_those_slots_out_as_ebpf_exporter(aggregation):
    """ebpf_exporter sums slots bucket_min..bucket_max only: a slot below bucket_min is in
    neither a bucket nor the count (still reported in otelbpf.histogram.out_of_range)."""
    cfg = dataclasses.replace(hist_cfg(bucket_min=2), aggregation=aggregation)
    keys = [hkey(8, 0, 3), hkey(8, 0, 1), hkey(8, 0, 11)]
    values = [[5], [2], [70]]
    outside = OutOfRangeSlots("p")
    lowest = histogram_metric(cfg, snapshot(keys, values), KeyDecoder(cfg.series_labels),
                              BucketLayout.from_config(cfg), 0, 1)
    drop = dataclasses.replace(cfg, below_bucket_min="drop")
    dropped = histogram_metric(drop, snapshot(keys, values), KeyDecoder(drop.series_labels),
                               BucketLayout.from_config(drop), 0, 1, out_of_range=outside)
    assert [p.count for p in lowest.points] == [7] and [p.count for p in dropped.points] == [5]
    assert [p.sum for p in dropped.points] == [70]
    if aggregation == "explicit":
        assert dropped.points[0].bucket_counts[:2] == (0, 5)  # le=4 (slot 2), le=8 (slot 3)
    assert outside.metric(0, 1).points[0].value == 2


def test_histogram_without_out_of_range_slots_reports_nothing():
    cfg = hist_cfg()
    outside = OutOfRangeSlots("p")
    histogram_metric(cfg, snapshot([hkey(8, 0, 3)], [[1]]), KeyDecoder(cfg.series_labels),
                     BucketLayout.from_config(cfg), 0, 1, out_of_range=outside)
    assert outside.metric(0, 1) is None


def test_a_changed_counter_multiplier_is_a_new_series_layout():
    """Another unit for the same counts would read as a reset: the pin and start time go (the
    agent drops a pin whose config layout changed, tests/reliability)."""
    from otelbpf.agent.program import config_layout

    assert config_layout(COUNTER) != config_layout(dataclasses.replace(COUNTER, multiplier=1e-9))
    assert config_layout(COUNTER) == config_layout(dataclasses.replace(COUNTER, name="renamed"))


def test_a_label_read_from_other_bytes_is_a_new_series_layout():
    """offset moves a label's bytes; a layout without offsets hashes as before they existed, so
    upgrading keeps every pinned map whose config did not change."""
    from otelbpf.agent.program import config_layout

    first = COUNTER.labels[0]
    moved = dataclasses.replace(COUNTER, labels=(dataclasses.replace(first, offset=4),))
    assert config_layout(moved) != config_layout(COUNTER)
    assert config_layout(dataclasses.replace(COUNTER, labels=(dataclasses.replace(first, offset=None),))) \
        == config_layout(COUNTER)


def test_counters_of_one_struct_value_read_their_own_field():
    """A value of two u64s (time, runs) per key and CPU: each counter reads the field at its
    value_offset, summed over CPUs."""
    keys = [struct.pack("<I", 1), struct.pack("<I", 2)]
    # key 1: cpu0 (time 100, runs 1), cpu1 (time 300, runs 2); key 2: cpu0 (0, 0), cpu1 (50, 5)
    words = np.array([[[100, 1], [300, 2]], [[0, 0], [50, 5]]], dtype=np.uint64)
    snap = MapSnapshot(keys=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(2, 4),
                       values=words.view(np.uint8).reshape(2, 2, 16), method="batch")
    decoder = KeyDecoder(COUNTER.labels)
    time = counter_metric(COUNTER, snap, decoder, 1, 2)
    runs = counter_metric(dataclasses.replace(COUNTER, value_offset=8), snap, decoder, 1, 2)
    assert [p.value for p in time.points] == [400, 50]
    assert [p.value for p in runs.points] == [3, 5]
    with pytest.raises(ValueError, match="at byte 16"):
        snap.u64(16)


def test_a_counter_reading_another_field_is_a_new_series_layout():
    from otelbpf.agent.program import config_layout, map_layouts

    assert config_layout(dataclasses.replace(COUNTER, value_offset=8)) != config_layout(COUNTER)
    assert config_layout(dataclasses.replace(COUNTER, value_offset=0)) == config_layout(COUNTER)
    # Two counters of one map: one layout for the map, which changes when either changes.
    runs = dataclasses.replace(COUNTER, name="runs", value_offset=8)
    def program(*counters):
        return SimpleNamespace(counters=counters, histograms=())

    both = map_layouts(program(COUNTER, runs))[COUNTER.map]
    assert both not in (config_layout(COUNTER), config_layout(runs))
    assert map_layouts(program(COUNTER, dataclasses.replace(runs, value_offset=16)))[COUNTER.map] != both
    assert map_layouts(program(COUNTER)) == {COUNTER.map: config_layout(COUNTER)}


LABEL_LESS = CounterConfig(name="total", help="", unit="", map="total", labels=())


def test_label_less_counter_sums_every_key_unless_single_key():
    """Native label-less counters sum all keys; ebpf_exporter's (single_key) read the u32 key 0
    and fail the read when the map holds any other key, as ebpf_exporter fails that metric."""
    decoder = KeyDecoder(())
    only_zero = snapshot([bytes(4)], [[3, 4]])
    with_others = snapshot([bytes(4), struct.pack("<I", 1)], [[3, 4], [100, 0]])
    assert [p.value for p in counter_metric(LABEL_LESS, with_others, decoder, 1, 2).points] == [107]
    single = dataclasses.replace(LABEL_LESS, single_key=True)
    assert [(p.attributes, p.value) for p in counter_metric(single, only_zero, decoder, 1, 2).points] \
        == [((), 7)]
    per_cpu = counter_metric(single, only_zero, decoder, 1, 2, cpu_label=True).points
    assert [(p.attributes, p.value) for p in per_cpu] == [((("cpu", "0"),), 3), ((("cpu", "1"),), 4)]
    with pytest.raises(ValueError, match=r"holds key 0x01000000, but a counter without labels "
                                         r"reads the one u32 key 0"):
        counter_metric(single, with_others, decoder, 1, 2)
    wide_zero = snapshot([bytes(8)], [[1]])  # ebpf_exporter compares 4 bytes: an 8-byte 0 fails
    with pytest.raises(ValueError, match="0x0000000000000000"):
        counter_metric(single, wide_zero, decoder, 1, 2)


def test_skip_zero_leaves_out_keys_that_counted_nothing_on_every_cpu():
    """An array map holds every index: with skip_zero only the indexes counted on some CPU are
    series (per CPU with per_cpu = "label", zeros of a counted key included); without it, all."""
    cfg = dataclasses.replace(LABEL_LESS, labels=(LabelConfig("index", 4, decoders=UINT),))
    decoder = KeyDecoder(cfg.labels)
    keys = [struct.pack("<I", i) for i in range(4)]
    snap = snapshot(keys, [[0, 0], [0, 5], [0, 0], [2, 0]])
    skip = dataclasses.replace(cfg, skip_zero=True)
    assert [(p.attributes, p.value) for p in counter_metric(skip, snap, decoder, 1, 2).points] == [
        ((("index", "1"),), 5), ((("index", "3"),), 2)]
    assert len(counter_metric(cfg, snap, decoder, 1, 2).points) == 4
    per_cpu = counter_metric(skip, snap, decoder, 1, 2, cpu_label=True).points
    assert [(p.attributes, p.value) for p in per_cpu] == [
        ((("index", "1"), ("cpu", "0")), 0), ((("index", "1"), ("cpu", "1")), 5),
        ((("index", "3"), ("cpu", "0")), 2), ((("index", "3"), ("cpu", "1")), 0)]


def test_histogram_series_with_all_zero_slots_are_exported():
    """An array map holds every slot from the start: its series is exported at count 0 (as
    counters are, and as ebpf_exporter serves it), so the first events show in increase()."""
    cfg = hist_cfg(bucket_max=3)
    keys = [hkey(8, 0, slot) for slot in range(5)] + [hkey(9, 1, 2)]
    metric = histogram_metric(cfg, snapshot(keys, [[0]] * 5 + [[4]]), KeyDecoder(cfg.series_labels),
                              BucketLayout.from_config(cfg), 0, 1)
    assert [(p.attributes, p.count) for p in metric.points] == [
        ((("dev", "8"), ("op", "0")), 0), ((("dev", "9"), ("op", "1")), 4)]
