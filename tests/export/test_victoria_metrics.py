"""OTLP/HTTP end to end: push to a real VictoriaMetrics and read the values back with PromQL."""

from __future__ import annotations

import time

import pytest

from otelbpf.export.exporter import build_exporter
from otelbpf.metrics.model import (
    ExponentialHistogramPoint,
    HistogramPoint,
    Metric,
    MetricBatch,
    MetricKind,
    NumberPoint,
    Resource,
)

from .conftest import export_config

pytestmark = pytest.mark.backend


def vm_config(endpoint, compression="gzip"):
    return export_config(endpoint=endpoint, headers={"Authorization": "Bearer vm-test-token-123"},
                         compression=compression, timeout=5.0, max_backoff=1.0)


def batches(now: int) -> list[MetricBatch]:
    start = now - 60 * 10**9
    return [
        MetricBatch(
            "otelbpf.program.syscalls",
            (
                Metric(
                    "syscalls.count", "Syscalls", "{call}", MetricKind.SUM,
                    (
                        NumberPoint((("syscall", "read"), ("cpu", 0)), 1234, now, start),
                        NumberPoint((("syscall", "write"), ("cpu", 0)), 56, now, start),
                    ),
                ),
                Metric("queue.depth", "", "{item}", MetricKind.GAUGE, (NumberPoint((), 7.5, now),)),
            ),
        ),
        MetricBatch(
            "otelbpf.program.biolatency",
            (
                Metric(
                    "bio.latency", "Block I/O latency", "us", MetricKind.EXPONENTIAL_HISTOGRAM,
                    (
                        ExponentialHistogramPoint(
                            (("disk", "sda"),), start, now, count=15, sum=9000, scale=0,
                            zero_count=3, positive_offset=9, positive_counts=(7, 0, 5),
                            zero_threshold=1.0,
                        ),
                    ),
                ),
                Metric(
                    "req.size", "", "By", MetricKind.HISTOGRAM,
                    (HistogramPoint((), start, now, 10, 500, (10.0, 100.0), (2, 3, 5)),),
                ),
            ),
        ),
    ]


def test_push_and_query_back(victoria_metrics, unique_resource: Resource):
    exporter = build_exporter(vm_config(victoria_metrics.otlp_http_endpoint))
    outcome = exporter.export(unique_resource, batches(time.time_ns()))
    assert outcome.success and outcome.complete and outcome.data_points == 5, outcome

    service = unique_resource.as_dict()["service.name"]
    sel = f'service_name="{service}"'
    vm = victoria_metrics
    assert vm.value(f'syscalls_count_total{{{sel},syscall="read",cpu="0"}}') == 1234
    assert vm.value(f'syscalls_count_total{{{sel},syscall="write"}}') == 56
    assert vm.value(f"queue_depth{{{sel}}}") == 7.5

    series = vm.query(f'bio_latency_microseconds_bucket{{{sel},disk="sda"}}')
    buckets = {s.labels["vmrange"]: s.value for s in series}
    assert buckets == {
        "0.000e+00...1.000e+00": 3,  # zero_count, up to zero_threshold
        "5.120e+02...1.024e+03": 7,  # scale 0 index 9: (2^9, 2^10]
        "2.048e+03...4.096e+03": 5,  # index 11; the empty index 10 is not stored
    }
    assert vm.value(f"bio_latency_microseconds_count{{{sel}}}") == 15
    assert vm.value(f"bio_latency_microseconds_sum{{{sel}}}") == 9000

    le = {s.labels["le"]: s.value for s in vm.query(f"req_size_bytes_bucket{{{sel}}}")}
    assert le == {"10": 2, "100": 5, "+Inf": 10}
    assert vm.value(f"req_size_bytes_count{{{sel}}}") == 10

    labels = vm.query(f"queue_depth{{{sel}}}")[0].labels
    assert labels["service_instance_id"] == "test-instance"
    exporter.shutdown()


def test_uncompressed_and_self_metrics(victoria_metrics, unique_resource: Resource):
    exporter = build_exporter(vm_config(victoria_metrics.otlp_http_endpoint, compression="none"))
    now = time.time_ns()
    assert exporter.export(unique_resource, batches(now)).success
    self_batch = MetricBatch("otelbpf.export", tuple(exporter.self_metrics(time.time_ns())))
    assert exporter.export(unique_resource, [self_batch]).success

    sel = f'service_name="{unique_resource.as_dict()["service.name"]}"'
    vm = victoria_metrics
    assert vm.value(f'otelbpf_export_requests_total{{{sel},outcome="success"}}') == 1
    assert vm.value(f'otelbpf_export_data_points_total{{{sel},outcome="exported"}}') == 5
    assert vm.value(f"otelbpf_export_retries_total{{{sel}}}") == 0
    assert vm.value(f'otelbpf_export_duration_seconds_count{{{sel},outcome="success"}}') == 1
    exporter.shutdown()


def test_data_survives_a_restart(victoria_metrics, unique_resource: Resource):
    exporter = build_exporter(vm_config(victoria_metrics.otlp_http_endpoint))
    assert exporter.export(unique_resource, batches(time.time_ns())).success
    sel = f'service_name="{unique_resource.as_dict()["service.name"]}"'
    victoria_metrics.force_flush()
    victoria_metrics.restart()
    assert victoria_metrics.value(f"queue_depth{{{sel}}}") == 7.5
    # The same exporter reconnects to the restarted backend.
    assert exporter.export(unique_resource, batches(time.time_ns())).success
    exporter.shutdown()


def test_malformed_request_is_a_permanent_400(victoria_metrics):
    from otelbpf.export.http import OtlpHttpExporter
    from otelbpf.export.transport import SendStatus

    class Garbage:
        def SerializeToString(self):  # noqa: N802 - protobuf interface
            return b"\xff\xff\xff"

    result = OtlpHttpExporter(victoria_metrics.otlp_http_endpoint).send(Garbage(), 5)
    assert result.status is SendStatus.PERMANENT
    assert "HTTP 400" in result.message and "cannot unpack OpenTelemetry metrics" in result.message


def test_victoria_metrics_drops_delta_silently(victoria_metrics, unique_resource: Resource):
    """A fact about the test backend (documented in tests/backends.py), not about otelbpf."""
    from otelbpf.metrics.model import Temporality

    now = time.time_ns()
    point = NumberPoint((), 3, now, now - 10**9)
    delta = Metric("delta.count", "", "{x}", MetricKind.SUM, (point,), Temporality.DELTA)
    cumulative = Metric("cumulative.count", "", "{x}", MetricKind.SUM, (point,))
    exporter = build_exporter(vm_config(victoria_metrics.otlp_http_endpoint))
    outcome = exporter.export(unique_resource, [MetricBatch("s", (delta, cumulative))])
    assert outcome.complete  # 200 without partial_success
    sel = f'service_name="{unique_resource.as_dict()["service.name"]}"'
    assert victoria_metrics.value(f"cumulative_count_total{{{sel}}}") == 3
    assert victoria_metrics.query(f"delta_count_total{{{sel}}}") == []
    exporter.shutdown()
