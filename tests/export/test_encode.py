"""encode(): every point kind round-trips through the OTLP protobuf with exact fields."""

from __future__ import annotations

import numpy as np
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from otelbpf.export.encode import count_data_points, encode, encode_value
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

T0, T1 = 1_700_000_000_000_000_000, 1_700_000_010_000_000_000
RESOURCE = Resource((("service.name", "otelbpf"), ("host.id", "abc")))


def roundtrip(*metrics: Metric, scope="otelbpf.test", version="1.2.3"):
    wire = encode(RESOURCE, [MetricBatch(scope, metrics, version)]).SerializeToString()
    decoded = ExportMetricsServiceRequest()
    decoded.ParseFromString(wire)
    return decoded


def only_metric(request):
    (rm,) = request.resource_metrics
    (sm,) = rm.scope_metrics
    (metric,) = sm.metrics
    return metric


def attrs(kvs) -> dict:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in kvs}


def test_resource_and_scope():
    request = roundtrip(Metric("a", "", "", MetricKind.GAUGE, (NumberPoint((), 1, T1),)))
    (rm,) = request.resource_metrics
    assert attrs(rm.resource.attributes) == {"service.name": "otelbpf", "host.id": "abc"}
    assert rm.scope_metrics[0].scope.name == "otelbpf.test"
    assert rm.scope_metrics[0].scope.version == "1.2.3"


def test_one_scope_metrics_per_batch_and_empty_ones_dropped():
    gauge = Metric("g", "", "", MetricKind.GAUGE, (NumberPoint((), 1, T1),))
    empty = Metric("e", "", "", MetricKind.GAUGE, ())
    request = encode(
        RESOURCE,
        [MetricBatch("a", (gauge, empty)), MetricBatch("b", (empty,)), MetricBatch("c", (gauge,))],
    )
    scopes = request.resource_metrics[0].scope_metrics
    assert [s.scope.name for s in scopes] == ["a", "c"]
    assert [m.name for m in scopes[0].metrics] == ["g"]
    assert count_data_points(request) == 2


def test_nothing_to_send_is_an_empty_request():
    request = encode(RESOURCE, [MetricBatch("a", ())])
    assert len(request.resource_metrics) == 0
    assert count_data_points(request) == 0


def test_sum_int_cumulative_monotonic():
    labels = (("syscall", "read"), ("cpu", 3), ("ok", True), ("ratio", 0.5))
    point = NumberPoint(labels, 1234, T1, T0)
    metric = only_metric(
        roundtrip(Metric("syscalls.count", "Syscalls", "{call}", MetricKind.SUM, (point,)))
    )
    assert (metric.name, metric.description) == ("syscalls.count", "Syscalls")
    assert metric.unit == "{call}"
    assert metric.WhichOneof("data") == "sum"
    assert metric.sum.aggregation_temporality == 2
    assert metric.sum.is_monotonic is True
    (dp,) = metric.sum.data_points
    assert dp.WhichOneof("value") == "as_int" and dp.as_int == 1234
    assert (dp.start_time_unix_nano, dp.time_unix_nano) == (T0, T1)
    assert attrs(dp.attributes) == {"syscall": "read", "cpu": 3, "ok": True, "ratio": 0.5}
    kinds = {kv.key: kv.value.WhichOneof("value") for kv in dp.attributes}
    assert kinds == {
        "syscall": "string_value", "cpu": "int_value", "ok": "bool_value", "ratio": "double_value"
    }


def test_sum_delta_non_monotonic_double():
    point = NumberPoint((), -2.5, T1, T0)
    metric = only_metric(
        roundtrip(
            Metric("x", "", "1", MetricKind.SUM, (point,), Temporality.DELTA, monotonic=False)
        )
    )
    assert metric.sum.aggregation_temporality == 1
    assert metric.sum.is_monotonic is False
    dp = metric.sum.data_points[0]
    assert dp.WhichOneof("value") == "as_double" and dp.as_double == -2.5


def test_gauge_has_no_start_time():
    metric = only_metric(
        roundtrip(Metric("g", "", "By", MetricKind.GAUGE, (NumberPoint((), 7, T1, T0),)))
    )
    dp = metric.gauge.data_points[0]
    assert metric.WhichOneof("data") == "gauge"
    assert dp.as_int == 7 and dp.start_time_unix_nano == 0 and dp.time_unix_nano == T1


def test_u64_beyond_int64_is_sent_as_double():
    metric = only_metric(
        roundtrip(Metric("big", "", "", MetricKind.SUM, (NumberPoint((), 2**64 - 1, T1, T0),)))
    )
    dp = metric.sum.data_points[0]
    assert dp.WhichOneof("value") == "as_double" and dp.as_double == float(2**64 - 1)


def test_numpy_values_and_attributes():
    point = NumberPoint((("cpu", np.int64(2)), ("on", np.bool_(True))), np.uint64(5), T1, T0)
    dp = only_metric(roundtrip(Metric("n", "", "", MetricKind.SUM, (point,)))).sum.data_points[0]
    assert dp.as_int == 5
    assert attrs(dp.attributes) == {"cpu": 2, "on": True}
    assert [kv.value.WhichOneof("value") for kv in dp.attributes] == ["int_value", "bool_value"]


def test_array_attributes_are_otlp_arrays():
    point = NumberPoint((("bpf.map.programs", ("sys_enter", "sys_exit")),), 1, T1)
    dp = only_metric(roundtrip(Metric("n", "", "", MetricKind.GAUGE, (point,)))).gauge.data_points[0]
    (kv,) = dp.attributes
    assert kv.value.WhichOneof("value") == "array_value"
    assert [v.string_value for v in kv.value.array_value.values] == ["sys_enter", "sys_exit"]


def test_unsupported_attribute_type_is_an_error():
    with pytest.raises(TypeError, match="unsupported"):
        encode_value(b"bytes")


def test_histogram_explicit_with_and_without_min_max():
    with_minmax = HistogramPoint(
        (("disk", "sda"),), T0, T1, 10, 500.5, (10.0, 100.0), (2, 3, 5), 1.0, 900.0
    )
    without = HistogramPoint((("disk", "sdb"),), T0, T1, 1, 3, (10.0,), (1, 0))
    metric = only_metric(
        roundtrip(
            Metric("h", "", "By", MetricKind.HISTOGRAM, (with_minmax, without), Temporality.DELTA)
        )
    )
    assert metric.histogram.aggregation_temporality == 1
    a, b = metric.histogram.data_points
    assert list(a.explicit_bounds) == [10.0, 100.0]
    assert list(a.bucket_counts) == [2, 3, 5]
    assert (a.count, a.sum, a.start_time_unix_nano, a.time_unix_nano) == (10, 500.5, T0, T1)
    assert a.HasField("min") and a.HasField("max") and (a.min, a.max) == (1.0, 900.0)
    assert not b.HasField("min") and not b.HasField("max")
    assert b.HasField("sum") and b.sum == 3.0


def test_histogram_bucket_count_mismatch_is_an_error():
    bad = HistogramPoint((), T0, T1, 1, 1, (10.0,), (1,))
    with pytest.raises(ValueError, match="bounds"):
        encode(RESOURCE, [MetricBatch("s", (Metric("h", "", "", MetricKind.HISTOGRAM, (bad,)),))])


def test_exponential_histogram_all_fields():
    point = ExponentialHistogramPoint(
        attributes=(("disk", "sda"),),
        start_time_ns=T0,
        time_ns=T1,
        count=18,
        sum=9000,
        scale=0,
        zero_count=3,
        positive_offset=9,
        positive_counts=(7, 0, 5),
        negative_offset=-2,
        negative_counts=(1, 2),
        zero_threshold=1.0,
    )
    metric = only_metric(
        roundtrip(Metric("bio.latency", "", "us", MetricKind.EXPONENTIAL_HISTOGRAM, (point,)))
    )
    assert metric.WhichOneof("data") == "exponential_histogram"
    assert metric.exponential_histogram.aggregation_temporality == 2
    (dp,) = metric.exponential_histogram.data_points
    assert (dp.count, dp.sum, dp.scale, dp.zero_count, dp.zero_threshold) == (18, 9000.0, 0, 3, 1.0)
    assert (dp.positive.offset, list(dp.positive.bucket_counts)) == (9, [7, 0, 5])
    assert (dp.negative.offset, list(dp.negative.bucket_counts)) == (-2, [1, 2])
    assert not dp.HasField("min") and not dp.HasField("max")
    assert attrs(dp.attributes) == {"disk": "sda"}


def test_exponential_histogram_min_max_when_known_and_negative_scale():
    point = ExponentialHistogramPoint(
        (), T0, T1, count=2, sum=0.75, scale=-2, zero_count=0, positive_offset=-1,
        positive_counts=(2,), min=0.25, max=0.5,
    )
    dp = only_metric(
        roundtrip(
            Metric("e", "", "s", MetricKind.EXPONENTIAL_HISTOGRAM, (point,), Temporality.DELTA)
        )
    ).exponential_histogram.data_points[0]
    assert dp.scale == -2
    assert (dp.min, dp.max) == (0.25, 0.5)
    assert dp.zero_threshold == 0.0
    assert not dp.HasField("negative")


def test_point_of_the_wrong_kind_is_an_error():
    wrong = Metric("x", "", "", MetricKind.HISTOGRAM, (NumberPoint((), 1, T1),))
    with pytest.raises(TypeError, match="NumberPoint"):
        encode(RESOURCE, [MetricBatch("s", (wrong,))])
