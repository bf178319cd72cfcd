"""bucket_type = "exponential": the kernel's own OpenTelemetry bucket indexes → exponential points.

The kernel side (otelbpf_exp_index) is checked against the exact definition in
tests/kernel/test_exp_index.py; here the same definition stands in for it, and the OTel SDK's
exponential histogram is the reference for downscaling.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest

from otelbpf.aggregate.buckets import SUM_KEY, ZERO_KEY, BucketLayout
from otelbpf.aggregate.maps import histogram_metric
from otelbpf.config.program import parse_program_config
from otelbpf.labels.keys import KeyDecoder
from otelbpf.errors import ConfigErrors
from otelbpf.kernel.maps import MapSnapshot
from otelbpf.metrics.model import MetricKind

OBJECTS = Path("/objects")

CONFIG = """
[[histograms]]
name = "syscall.duration"
unit = "ns"
map = "latency"
bucket_type = "exponential"
bucket_scale = 3
{extra}
labels = [
    {{ name = "syscall", size = 4, decoders = [{{ name = "uint" }}] }},
    {{ name = "bucket", size = 4, decoders = [{{ name = "int" }}] }},
]
"""


def exact_index(v: int, scale: int) -> int:
    """The i with 2^i < v^(2^scale) <= 2^(i+1): what otelbpf_exp_index computes."""
    return (v ** (1 << scale) - 1).bit_length() - 1


def config(extra: str = ""):
    return parse_program_config(CONFIG.format(extra=extra), Path("/conf/lat.toml"), OBJECTS).histograms[0]


def kernel_map(series: dict[int, list[int]], scale: int, ncpu: int = 2) -> MapSnapshot:
    """What increment_exp_histogram leaves in the map for these values, spread over CPUs."""
    entries: dict[bytes, list[int]] = {}
    for n, (label, values) in enumerate(series.items()):
        for i, v in enumerate(values):
            bucket = ZERO_KEY if v == 0 else exact_index(v, scale)
            for key, inc in ((bucket, 1), (SUM_KEY, v)):
                row = entries.setdefault(struct.pack("<Ii", label, key), [0] * ncpu)
                row[(i + n) % ncpu] += inc
    keys = list(entries)
    k = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), -1)
    v = np.array([entries[key] for key in keys], dtype=np.uint64).view(np.uint8)
    return MapSnapshot(keys=k, values=v.reshape(len(keys), ncpu, 8), method="batch")


def metric(cfg, snap):
    return histogram_metric(cfg, snap, KeyDecoder(cfg.series_labels, cache_size=64),
                            BucketLayout.from_config(cfg), 5, 9)


def test_config_reads_scale_and_max_size():
    cfg = config("max_size = 20")
    assert (cfg.bucket_type, cfg.bucket_scale, cfg.max_size) == ("exponential", 3, 20)
    assert config().max_size == 160


@pytest.mark.parametrize("extra, field, fragment", [
    ("bucket_max = 10", "bucket_max", "bucket_scale instead"),
    ("bucket_multiplier = 0.001", "bucket_multiplier", "cannot rescale"),
    ("max_size = 1", "max_size", "out of range"),
])
def test_config_errors(extra, field, fragment):
    with pytest.raises(ConfigErrors) as info:
        config(extra)
    text = str(info.value)
    assert field in text and fragment in text and "lat.toml" in text


def test_config_needs_scale_and_a_signed_4_byte_bucket():
    text = CONFIG.replace("bucket_scale = 3", "").replace('size = 4, decoders = [{{ name = "int" }}]',
                                                          'size = 8, decoders = [{{ name = "uint" }}]')
    with pytest.raises(ConfigErrors) as info:
        parse_program_config(text.format(extra=""), Path("/conf/lat.toml"), OBJECTS)
    text = str(info.value)
    assert "bucket_scale" in text and "size = 4" in text and '"int"' in text


def test_exported_at_the_kernel_scale_with_exactly_its_buckets():
    rng = random.Random(1)
    values = {0: [rng.randint(1000, 900_000) for _ in range(500)] + [0, 0, 0], 59: [1, 2, 3, 1 << 12]}  # 13 octaves: 104 buckets
    (point0, point59) = metric(config(), kernel_map(values, 3)).points
    assert point0.attributes == (("syscall", "0"),)
    for point, vals in ((point0, values[0]), (point59, values[59])):
        assert point.scale == 3
        assert point.sum == sum(vals)
        assert point.zero_count == vals.count(0) and point.zero_threshold == 0.0
        assert point.count == len(vals)
        expected: dict[int, int] = {}
        for v in vals:
            if v:
                expected[exact_index(v, 3)] = expected.get(exact_index(v, 3), 0) + 1
        got = {point.positive_offset + i: c for i, c in enumerate(point.positive_counts) if c}
        assert got == expected
        assert point.positive_counts[0] and point.positive_counts[-1]


def sdk_point(values: list[int], max_scale: int, max_size: int):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=[View(
        instrument_name="h", aggregation=ExponentialBucketHistogramAggregation(max_size=max_size,
                                                                                max_scale=max_scale))])
    histogram = provider.get_meter("t").create_histogram("h")
    for v in values:
        histogram.record(v)
    data = reader.get_metrics_data()
    provider.shutdown()
    return data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]


@pytest.mark.parametrize("seed, max_size", [(0, 160), (1, 20), (2, 8), (3, 2)])
def test_downscaled_only_past_max_size_exactly_like_the_sdk(seed, max_size):
    rng = random.Random(seed)
    # Latencies from ~1 us to ~1 s: ~ 10 octaves, 80 buckets at scale 3.
    values = [int(1000 * 1.0001 ** rng.randint(0, 138_000)) for _ in range(2000)]
    (point,) = metric(config(f"max_size = {max_size}"), kernel_map({7: values}, 3)).points
    reference = sdk_point(values, 3, max_size)
    assert point.scale == reference.scale
    assert point.positive_offset == reference.positive.offset
    expected = list(reference.positive.bucket_counts)
    while expected and not expected[-1]:  # the SDK exports its whole backing array
        expected.pop()
    assert list(point.positive_counts) == expected
    assert point.count == reference.count and point.sum == reference.sum
    assert (point.scale == 3) == (max_size >= 80)


def test_wide_index_spans_take_the_sparse_path():
    # Two series 10^6 buckets apart at scale 20: too wide for one dense table.
    cfg = parse_program_config(CONFIG.format(extra="").replace("bucket_scale = 3", "bucket_scale = 20"),
                               Path("/conf/lat.toml"), OBJECTS).histograms[0]
    snap = kernel_map({1: [1000, 1000]}, 20)
    keys = np.concatenate([snap.keys, np.frombuffer(struct.pack("<Ii", 2, 5_000_000), dtype=np.uint8)[None]])
    values = np.concatenate([snap.values, np.array([[3, 0]], dtype=np.uint64).view(np.uint8).reshape(1, 2, 8)])
    m = metric(cfg, MapSnapshot(keys=keys, values=values, method="batch"))
    assert m.kind is MetricKind.EXPONENTIAL_HISTOGRAM
    one, two = m.points
    assert one.scale == 20 and one.positive_offset == exact_index(1000, 20)
    assert (two.scale, two.positive_offset, two.positive_counts, two.count, two.sum) == (20, 5_000_000, (3,), 3, 0)
    assert one.positive_counts == (2,) and one.sum == 2000


def test_a_new_scale_is_a_new_map_layout():
    """Pinned counts written at one scale must not be read at another: the layout fingerprint
    (which decides whether a pinned map is kept) changes with bucket_scale."""
    from otelbpf.agent.program import config_layout

    at3 = config()
    at2 = parse_program_config(CONFIG.format(extra="").replace("bucket_scale = 3", "bucket_scale = 2"),
                               Path("/conf/lat.toml"), OBJECTS).histograms[0]
    assert config_layout(at3) != config_layout(at2)
    assert config_layout(at3) == config_layout(config("max_size = 20"))  # export-side only
