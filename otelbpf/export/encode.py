"""Encode the metric model into an OTLP ``ExportMetricsServiceRequest``.

We encode ourselves instead of going through the SDK so that what the model says reaches the wire
unchanged: ``zero_threshold`` of exponential histograms, and min/max left *unset* (not 0) when a
source cannot know them — kernel slot maps never do.
"""

from __future__ import annotations

import numbers
import struct
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

# Wire tags of NumberDataPoint fields (opentelemetry/proto/metrics/v1/metrics.proto):
# start_time_unix_nano = 2 and time_unix_nano = 3 (fixed64), as_double = 4, as_int = 6 (sfixed64),
# attributes = 7 (length-delimited); data_points = 1 in Sum and Gauge.
_TIMES = struct.Struct("<BQBQ")
_START, _TIME, _AS_DOUBLE, _AS_INT, _ATTRIBUTE, _DATA_POINT = 0x11, 0x19, 0x21, 0x31, 0x3A, 0x0A
_AS_INT_VALUE = struct.Struct("<Bq")
_AS_DOUBLE_VALUE = struct.Struct("<Bd")
# Serialized `attributes` entries by (key, type, value): label values repeat across series and
# intervals. Bounded; cleared when full (it only saves work).
_ATTRIBUTE_BYTES: dict = {}
_ATTRIBUTE_BYTES_MAX = 1 << 18
# The same for a point's whole attribute set (series repeat every interval), for sets of string
# values only: those are never equal to a set holding 1, 1.0 or True, which encode differently.
_ATTRIBUTES_BYTES: dict = {}


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
        out.sum.MergeFromString(_number_points_wire(metric, True))
    elif metric.kind is MetricKind.GAUGE:
        out.gauge.MergeFromString(_number_points_wire(metric, False))
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


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _attribute_bytes(key: str, value: AttributeValue) -> bytes:
    ident = (key, type(value), value)  # 1, 1.0 and True are equal keys but different values
    cached = _ATTRIBUTE_BYTES.get(ident)
    if cached is None:
        if len(_ATTRIBUTE_BYTES) >= _ATTRIBUTE_BYTES_MAX:
            _ATTRIBUTE_BYTES.clear()
        kv = KeyValue(key=key, value=encode_value(value)).SerializeToString()
        cached = _ATTRIBUTE_BYTES[ident] = bytes([_ATTRIBUTE]) + _varint(len(kv)) + kv
    return cached


def _number_points_wire(metric: Metric, with_start: bool) -> bytes:
    """The metric's points as the serialized `data_points` field of a Sum or Gauge.

    Built as bytes and parsed once by the protobuf runtime: setting four fields and two nested
    messages per point from Python costs ~5 us a point, which is most of a flush at 100K series.
    Parsing makes the result the same message as setting the fields (zero values included).
    """
    parts = []
    for point in metric.points:
        _expect(point, NumberPoint, metric)
        attributes = _ATTRIBUTES_BYTES.get(point.attributes)
        if attributes is None:
            attributes = b"".join([_attribute_bytes(k, v) for k, v in point.attributes])
            if all(type(v) is str for _, v in point.attributes):
                if len(_ATTRIBUTES_BYTES) >= _ATTRIBUTE_BYTES_MAX:
                    _ATTRIBUTES_BYTES.clear()
                _ATTRIBUTES_BYTES[point.attributes] = attributes
        value = point.value
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX:
            number = _AS_INT_VALUE.pack(_AS_INT, int(value))
        else:
            number = _AS_DOUBLE_VALUE.pack(_AS_DOUBLE, float(value))
        body = attributes + _TIMES.pack(_START, point.start_time_ns if with_start else 0, _TIME, point.time_ns) + number
        parts.append(b"%c%s%s" % (_DATA_POINT, _varint(len(body)), body))
    return b"".join(parts)


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
