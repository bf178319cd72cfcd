"""OtlpGrpcExporter end to end against the in-process GrpcMetricsReceiver."""

from __future__ import annotations

import grpc
import pytest
from backends import GrpcMetricsReceiver, free_port

from otelbpf.export.encode import encode
from otelbpf.export.exporter import ReliableExporter
from otelbpf.export.grpc import OtlpGrpcExporter, parse_grpc_endpoint
from otelbpf.export.transport import SendStatus
from otelbpf.metrics.model import (
    ExponentialHistogramPoint,
    Metric,
    MetricBatch,
    MetricKind,
    NumberPoint,
    Resource,
)

TOKEN = "Bearer grpc-secret-abcdef0123"
RESOURCE = Resource((("service.name", "t"),))
BATCHES = [
    MetricBatch(
        "otelbpf.test",
        (
            Metric("c", "", "{call}", MetricKind.SUM, (NumberPoint((("k", "v"),), 5, 2, 1),)),
            Metric(
                "h", "", "us", MetricKind.EXPONENTIAL_HISTOGRAM,
                (ExponentialHistogramPoint((), 1, 2, 4, 2000, 0, 1, 9, (3,), zero_threshold=1.0),),
            ),
        ),
    )
]


@pytest.mark.parametrize(
    "endpoint, insecure, expected",
    [
        ("http://collector:4317", False, ("collector:4317", False)),
        ("https://collector:4317", True, ("collector:4317", True)),
        ("collector:4317", False, ("collector:4317", True)),
        ("collector:4317", True, ("collector:4317", False)),
        ("http://collector", False, ("collector:4317", False)),
        ("https://[::1]:5000/", False, ("[::1]:5000", True)),
        ("localhost", True, ("localhost:4317", False)),
    ],
)
def test_parse_endpoint(endpoint, insecure, expected):
    assert parse_grpc_endpoint(endpoint, insecure) == expected


@pytest.mark.parametrize("endpoint", ["ftp://x:1", "http://:4317", "http://h:port"])
def test_bad_endpoints(endpoint):
    with pytest.raises(ValueError):
        parse_grpc_endpoint(endpoint)


def test_export_with_lowercased_metadata(grpc_receiver):
    exporter = OtlpGrpcExporter(
        grpc_receiver.endpoint,
        headers={"Authorization": TOKEN, "X-Tenant": "a"},
        compression="gzip",
    )
    try:
        result = exporter.send(encode(RESOURCE, BATCHES), 5)
    finally:
        exporter.close()
    assert result.status is SendStatus.SUCCESS and result.rejected_points == 0
    (received,) = grpc_receiver.received
    assert received.request == encode(RESOURCE, BATCHES)
    assert received.metadata["authorization"] == TOKEN
    assert received.metadata["x-tenant"] == "a"
    assert received.metadata["user-agent"].startswith("otelbpf/")
    histogram = received.request.resource_metrics[0].scope_metrics[0].metrics[1]
    point = histogram.exponential_histogram.data_points[0]
    assert (point.zero_threshold, point.zero_count, point.HasField("min")) == (1.0, 1, False)


def test_retry_after_unavailable_and_secrets_not_logged(grpc_receiver, captured_logs):
    grpc_receiver.fail_next(2, message=f"backend down, token was {TOKEN}")
    transport = OtlpGrpcExporter(grpc_receiver.endpoint, headers={"authorization": TOKEN})
    exporter = ReliableExporter(transport, timeout=5, initial_backoff=0.01, max_backoff=0.05)
    try:
        outcome = exporter.export(RESOURCE, BATCHES)
    finally:
        exporter.shutdown()
    assert outcome.success and outcome.attempts == 3
    assert grpc_receiver.calls == 3 and len(grpc_receiver.received) == 1
    assert grpc_receiver.received[0].metadata["authorization"] == TOKEN
    assert [(e["event"], e["log_level"]) for e in captured_logs] == [
        ("export failed, retrying", "debug")] * 2 + [("export recovered after retries", "warning")]
    assert captured_logs[-1]["attempts"] == 3
    assert "UNAVAILABLE" in captured_logs[0]["error"]
    assert TOKEN not in repr(captured_logs) and "grpc-secret" not in repr(captured_logs)


def test_retry_info_delay_is_honoured(grpc_receiver):
    grpc_receiver.fail_next(1, grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", retry_delay=1.5)
    transport = OtlpGrpcExporter(grpc_receiver.endpoint)
    try:
        result = transport.send(encode(RESOURCE, BATCHES), 5)
    finally:
        transport.close()
    assert result.status is SendStatus.RETRYABLE
    assert result.retry_after == 1.5


@pytest.mark.parametrize(
    "code, status",
    [
        (grpc.StatusCode.UNAVAILABLE, SendStatus.RETRYABLE),
        (grpc.StatusCode.DEADLINE_EXCEEDED, SendStatus.RETRYABLE),
        (grpc.StatusCode.ABORTED, SendStatus.RETRYABLE),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, SendStatus.RETRYABLE),
        (grpc.StatusCode.INVALID_ARGUMENT, SendStatus.PERMANENT),
        (grpc.StatusCode.UNAUTHENTICATED, SendStatus.PERMANENT),
        (grpc.StatusCode.UNIMPLEMENTED, SendStatus.PERMANENT),
    ],
)
def test_status_code_classification(grpc_receiver, code, status):
    grpc_receiver.fail_next(1, code, "nope")
    transport = OtlpGrpcExporter(grpc_receiver.endpoint)
    try:
        result = transport.send(encode(RESOURCE, BATCHES), 5)
    finally:
        transport.close()
    assert result.status is status
    assert code.name in result.message and "nope" in result.message


def test_partial_success(grpc_receiver):
    grpc_receiver.rejected_points = 1
    grpc_receiver.rejected_message = "1 point out of order"
    transport = OtlpGrpcExporter(grpc_receiver.endpoint)
    try:
        result = transport.send(encode(RESOURCE, BATCHES), 5)
    finally:
        transport.close()
    assert (result.status, result.rejected_points, result.message) == (
        SendStatus.SUCCESS, 1, "1 point out of order",
    )


def test_nothing_listening_is_retryable():
    transport = OtlpGrpcExporter(f"http://127.0.0.1:{free_port()}")
    try:
        result = transport.send(encode(RESOURCE, BATCHES), 1)
    finally:
        transport.close()
    assert result.status is SendStatus.RETRYABLE


def test_tls_and_mutual_tls(certificates):
    with GrpcMetricsReceiver(tls=certificates, require_client_cert=True) as receiver:
        transport = OtlpGrpcExporter(
            receiver.endpoint,
            certificate=certificates.ca_cert,
            client_certificate=certificates.client_cert,
            client_key=certificates.client_key,
        )
        try:
            assert transport.send(encode(RESOURCE, BATCHES), 5).status is SendStatus.SUCCESS
        finally:
            transport.close()
        assert transport.tls and len(receiver.received) == 1
