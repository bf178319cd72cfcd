"""Encode the metric model into an OTLP ``ExportMetricsServiceRequest``.

We encode ourselves instead of going through the SDK so that what the model says reaches the wire
unchanged: ``zero_threshold`` of exponential histograms, and min/max left *unset* (not 0) when a
source cannot know them — kernel slot maps never do.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

from otelbpf.metrics.model import (
    AttributeValue,
    ExponentialHistogramPoint,
    HistogramPoint,
    Metric,
    MetricBatch,
    MetricKind,
    NumberPoint,
    Resource,
)

# NumberDataPoint.as_int is sfixed64: a u64 kernel counter past 2^63 - 1 cannot be sent as an int.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def encode(resource: Resource, batches: Sequence[MetricBatch]) -> ExportMetricsServiceRequest:
    """One ResourceMetrics holding one ScopeMetrics per batch.

    Metrics without points, and batches left without metrics, are omitted: they carry nothing
    and some backends reject empty metrics.
    """
    resource_metrics = pb.ResourceMetrics()
    resource_metrics.resource.attributes.extend(encode_attributes(resource.attributes))
    for batch in batches:
        metrics = [m for m in batch.metrics if m.points]
        if not metrics:
            continue
        scope_metrics = resource_metrics.scope_metrics.add()
        scope_metrics.scope.CopyFrom(
            InstrumentationScope(name=batch.scope, version=batch.scope_version)
        )
        for metric in metrics:
            _encode_metric(metric, scope_metrics.metrics.add())
    request = ExportMetricsServiceRequest()
    if resource_metrics.scope_metrics:
        request.resource_metrics.append(resource_metrics)
    return request


def count_data_points(request: ExportMetricsServiceRequest) -> int:
    """Number of data points in an encoded request (what partial success counts against)."""
    total = 0
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                data = metric.WhichOneof("data")
                if data is not None:
                    total += len(getattr(metric, data).data_points)
    return total


def encode_attributes(attributes: Iterable[tuple[str, AttributeValue]]) -> list[KeyValue]:
    return [KeyValue(key=key, value=encode_value(value)) for key, value in attributes]


def encode_value(value: AttributeValue) -> AnyValue:
    # bool before int: bool is an int subclass. numbers.* also admits numpy scalars, which
    # aggregation code may hand us.
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, (bool, np.bool_)):
        return AnyValue(bool_value=bool(value))
    if isinstance(value, numbers.Integral):
        return AnyValue(int_value=int(value))
    if isinstance(value, numbers.Real):
        return AnyValue(double_value=float(value))
    if isinstance(value, tuple):
        return AnyValue(array_value=ArrayValue(values=[encode_value(v) for v in value]))
    raise TypeError(f"attribute value {value!r} has unsupported type {type(value).__name__}")


def _encode_metric(metric: Metric, out: pb.Metric) -> None:
    out.name = metric.name
    out.description = metric.description
    out.unit = metric.unit
    if metric.kind is MetricKind.SUM:
        out.sum.aggregation_temporality = int(metric.temporality)
        out.sum.is_monotonic = metric.monotonic
        for point in metric.points:
            _encode_number(_expect(point, NumberPoint, metric), out.sum.data_points.add(), True)
    elif metric.kind is MetricKind.GAUGE:
        for point in metric.points:
            _encode_number(_expect(point, NumberPoint, metric), out.gauge.data_points.add(), False)
    elif metric.kind is MetricKind.HISTOGRAM:
        out.histogram.aggregation_temporality = int(metric.temporality)
        for point in metric.points:
            _encode_histogram(
                _expect(point, HistogramPoint, metric), out.histogram.data_points.add()
            )
    elif metric.kind is MetricKind.EXPONENTIAL_HISTOGRAM:
        out.exponential_histogram.aggregation_temporality = int(metric.temporality)
        for point in metric.points:
            _encode_exponential(
                _expect(point, ExponentialHistogramPoint, metric),
                out.exponential_histogram.data_points.add(),
            )
    else:  # pragma: no cover - MetricKind is closed
        raise ValueError(f"metric {metric.name}: unknown kind {metric.kind!r}")


def _expect(point, cls, metric: Metric):
    if not isinstance(point, cls):
        raise TypeError(
            f"metric {metric.name} ({metric.kind.value}) holds a {type(point).__name__}, "
            f"expected {cls.__name__}"
        )
    return point


def _encode_number(point: NumberPoint, out: pb.NumberDataPoint, with_start: bool) -> None:
    out.attributes.extend(encode_attributes(point.attributes))
    out.time_unix_nano = point.time_ns
    if with_start:
        out.start_time_unix_nano = point.start_time_ns
    value = point.value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)
        if _INT64_MIN <= value <= _INT64_MAX:
            out.as_int = value
            return
    out.as_double = float(value)


def _encode_histogram(point: HistogramPoint, out: pb.HistogramDataPoint) -> None:
    if len(point.bucket_counts) != len(point.bounds) + 1:
        raise ValueError(
            f"histogram point {point.attributes}: {len(point.bucket_counts)} bucket counts for "
            f"{len(point.bounds)} bounds (need bounds + 1)"
        )
    out.attributes.extend(encode_attributes(point.attributes))
    out.start_time_unix_nano = point.start_time_ns
    out.time_unix_nano = point.time_ns
    out.count = int(point.count)
    out.sum = float(point.sum)
    out.explicit_bounds.extend(float(b) for b in point.bounds)
    out.bucket_counts.extend(int(c) for c in point.bucket_counts)
    if point.min is not None:
        out.min = float(point.min)
    if point.max is not None:
        out.max = float(point.max)


def _encode_exponential(
    point: ExponentialHistogramPoint, out: pb.ExponentialHistogramDataPoint
) -> None:
    out.attributes.extend(encode_attributes(point.attributes))
    out.start_time_unix_nano = point.start_time_ns
    out.time_unix_nano = point.time_ns
    out.count = int(point.count)
    out.sum = float(point.sum)
    out.scale = int(point.scale)
    out.zero_count = int(point.zero_count)
    out.zero_threshold = float(point.zero_threshold)
    if point.positive_counts:
        out.positive.offset = int(point.positive_offset)
        out.positive.bucket_counts.extend(int(c) for c in point.positive_counts)
    if point.negative_counts:
        out.negative.offset = int(point.negative_offset)
        out.negative.bucket_counts.extend(int(c) for c in point.negative_counts)
    if point.min is not None:
        out.min = float(point.min)
    if point.max is not None:
        out.max = float(point.max)
