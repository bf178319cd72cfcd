"""Explicit-bucket stream histograms on real ring buffer records: the agent-wide default reaches
the aggregator through open_stream, and every record lands in the bucket its value belongs to."""

from __future__ import annotations

import time

import pytest

from otelbpf.config.program import StreamConfig, StreamFieldConfig, StreamHistogramConfig
from otelbpf.metrics.model import MetricKind
from otelbpf.streams.source import open_stream
from tests.streams.generators import gen_args

pytestmark = pytest.mark.kernel

FIELDS = (StreamFieldConfig("seq", "u32", 0), StreamFieldConfig("key", "u32", 4), StreamFieldConfig("value", "u64", 8))
RECORDS = 20_000  # gen_big writes value = seq = 0 .. RECORDS - 1


def test_default_explicit_aggregation_buckets_ring_records_exactly(stream_test):
    bounds = (0.0, 100.0, 5000.0, float(RECORDS - 2))
    config = StreamConfig(map="big_ring", fields=FIELDS, histograms=(
        StreamHistogramConfig("values", "", "1", value="value"),  # "auto": follows the default
        StreamHistogramConfig("bounded", "", "1", value="value", aggregation="explicit", bounds=bounds),
        StreamHistogramConfig("native", "", "1", value="value", aggregation="exponential"),
    ))
    source = open_stream(config, stream_test.maps, program="stream_test", default_aggregation="explicit")
    try:
        stream_test.programs["gen_big"].test_run(gen_args(RECORDS, first=0, keys=4))
        source.drain(max_batches=10_000)  # test_run returns once every record is committed
        metrics = {m.name: m for m in source.collect(time.time_ns())}
    finally:
        source.close()
    assert source.aggregator.events == RECORDS
    (bounded,) = metrics["bounded"].points
    assert metrics["bounded"].kind is MetricKind.HISTOGRAM
    # (-inf, 0], (0, 100], (100, 5000], (5000, 19998], (19998, +inf)
    assert bounded.bucket_counts == (1, 100, 4900, RECORDS - 2 - 5000, 1)
    assert (bounded.count, bounded.sum, bounded.min, bounded.max) == (RECORDS, sum(range(RECORDS)), 0, RECORDS - 1)
    (auto,) = metrics["values"].points
    assert metrics["values"].kind is MetricKind.HISTOGRAM and auto.count == RECORDS
    assert auto.bounds[-1] == 10000.0 and auto.bucket_counts[-1] == RECORDS - 10001  # the SDK's default bounds
    assert metrics["native"].kind is MetricKind.EXPONENTIAL_HISTOGRAM
