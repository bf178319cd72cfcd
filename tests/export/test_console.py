"""ConsoleExporter: what a newcomer without an endpoint sees."""

from __future__ import annotations

import io

from otelbpf.export.console import ConsoleExporter, bucket_bound, format_export
from otelbpf.metrics.model import (
    ExponentialHistogramPoint,
    HistogramPoint,
    Metric,
    MetricBatch,
    MetricKind,
    NumberPoint,
    Resource,
    Temporality,
)

T0 = 1_795_600_000_000_000_000
T1 = T0 + 10_000_000_000
RESOURCE = Resource((("service.name", "otelbpf"), ("host.name", "vm")))


def test_sums_and_gauges_one_line_per_series():
    batch = MetricBatch(
        "otelbpf.program.syscalls",
        (
            Metric(
                "syscalls.count",
                "Syscalls by name",
                "{call}",
                MetricKind.SUM,
                (
                    NumberPoint((("syscall", "read"), ("cpu", 1)), 1234, T1, T0),
                    NumberPoint((("syscall", "write"), ("cpu", 1)), 56, T1, T0),
                ),
            ),
            Metric("queue.depth", "", "", MetricKind.GAUGE, (NumberPoint((), 0.75, T1),)),
        ),
        "0.1.0",
    )
    text = format_export(RESOURCE, [batch])
    assert text.splitlines() == [
        "== otelbpf export at 2026-11-25T09:46:50.000Z: 2 metrics, 3 data points ==",
        "resource: service.name=otelbpf host.name=vm",
        "scope otelbpf.program.syscalls 0.1.0",
        "  # syscalls.count: sum, cumulative, monotonic - Syscalls by name",
        "  syscalls.count{syscall=read,cpu=1} 1234 {call}",
        "  syscalls.count{syscall=write,cpu=1} 56 {call}",
        "  # queue.depth: gauge",
        "  queue.depth 0.75",
    ]


def test_exponential_histogram_shows_bucket_bounds_and_zero_bucket():
    point = ExponentialHistogramPoint(
        (("disk", "sda"),), T0, T1, count=15, sum=9000, scale=0, zero_count=3,
        positive_offset=9, positive_counts=(7, 0, 5), zero_threshold=1.0,
    )
    metric = Metric(
        "bio.latency", "Block I/O latency", "us", MetricKind.EXPONENTIAL_HISTOGRAM, (point,)
    )
    lines = format_export(RESOURCE, [MetricBatch("s", (metric,))]).splitlines()
    assert lines[-2] == (
        "  # bio.latency: exponential histogram, cumulative, scale 0 - Block I/O latency"
    )
    assert lines[-1] == (
        "  bio.latency{disk=sda} count=15 sum=9000 us  [0, 1]: 3  (512, 1024]: 7  (2048, 4096]: 5"
    )


def test_exponential_negative_buckets_zero_and_known_min_max():
    point = ExponentialHistogramPoint(
        (), T0, T1, count=6, sum=-1.5, scale=1, zero_count=1, positive_offset=0,
        positive_counts=(2,), negative_offset=-2, negative_counts=(1, 2),
        zero_threshold=0.001, min=-1.0, max=1.2,
    )
    metric = Metric("x", "", "", MetricKind.EXPONENTIAL_HISTOGRAM, (point,), Temporality.DELTA)
    line = format_export(RESOURCE, [MetricBatch("s", (metric,))]).splitlines()[-1]
    assert line == (
        "  x count=6 sum=-1.5 min=-1 max=1.2  [-1, -0.707107): 2  [-0.707107, -0.5): 1"
        "  [-0.001, 0.001]: 1  (1, 1.41421]: 2"
    )


def test_explicit_histogram_lists_non_empty_buckets():
    point = HistogramPoint((), T0, T1, 10, 500, (10.0, 100.0, 1000.0), (2, 0, 3, 5), max=2000.0)
    metric = Metric("req.size", "", "By", MetricKind.HISTOGRAM, (point,), Temporality.DELTA)
    lines = format_export(RESOURCE, [MetricBatch("s", (metric,))]).splitlines()
    assert lines[-2] == "  # req.size: histogram, delta"
    assert lines[-1] == (
        "  req.size count=10 sum=500 By max=2000  (-inf, 10]: 2  (100, 1000]: 3  (1000, +inf): 5"
    )


def test_attribute_values_with_separators_are_quoted():
    labels = (("comm", "my proc"), ("path", "a,b"), ("empty", ""), ("ok", False))
    point = NumberPoint(labels, 1, T1, T0)
    metric = Metric("n", "", "", MetricKind.SUM, (point,), monotonic=False)
    line = format_export(Resource(), [MetricBatch("s", (metric,))]).splitlines()[-1]
    assert line == '  n{comm="my proc",path="a,b",empty="",ok=false} 1'


def test_bucket_bounds_exact_for_non_positive_scales():
    assert [bucket_bound(i, 0) for i in (-2, 0, 10)] == ["0.25", "1", "1024"]
    assert bucket_bound(3, -1) == "64"
    assert bucket_bound(1, 2) == "1.18921"


def test_exporter_writes_to_stream_and_reports_success():
    stream = io.StringIO()
    metric = Metric("g", "", "", MetricKind.GAUGE, (NumberPoint((), 1, T1),))
    outcome = ConsoleExporter(stream).export(RESOURCE, [MetricBatch("s", (metric,))])
    assert outcome.success and outcome.data_points == 1 and outcome.complete
    assert "  g 1\n" in stream.getvalue()


def test_exporter_reports_a_closed_stream_as_failure():
    stream = io.StringIO()
    stream.close()
    metric = Metric("g", "", "", MetricKind.GAUGE, (NumberPoint((), 1, T1),))
    outcome = ConsoleExporter(stream).export(RESOURCE, [MetricBatch("s", (metric,))])
    assert not outcome.success and "console" in outcome.message
