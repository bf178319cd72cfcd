"""ReliableExporter: retry/backoff decisions, deadlines, self-metrics, and what it logs."""

from __future__ import annotations

import pytest

from otelbpf.export.exporter import ReliableExporter, build_exporter
from otelbpf.export.transport import SendResult, SendStatus, redact, safe_endpoint
from otelbpf.metrics.model import Metric, MetricBatch, MetricKind, NumberPoint, Resource

from .conftest import export_config

RESOURCE = Resource((("service.name", "t"),))
BATCHES = [
    MetricBatch(
        "s",
        (
            Metric(
                "c", "", "", MetricKind.SUM,
                (NumberPoint((("k", "a"),), 1, 2, 1), NumberPoint((("k", "b"),), 2, 2, 1)),
            ),
        ),
    )
]


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedTransport:
    protocol = "fake"
    endpoint = "fake://backend"
    header_names = ("authorization",)
    secrets = ("s3cr3t-value",)

    def __init__(self, *results: SendResult, clock: FakeClock | None = None, cost: float = 0.0):
        self.results = list(results)
        self.timeouts: list[float] = []
        self.clock, self.cost = clock, cost

    def send(self, request, timeout):
        self.timeouts.append(timeout)
        if self.clock:
            self.clock.now += self.cost
        return self.results.pop(0) if self.results else SendResult(SendStatus.SUCCESS)

    def close(self):
        pass


def make(transport, clock, **kwargs):
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("max_backoff", 8.0)
    return ReliableExporter(
        transport, clock=clock, sleep=clock.sleep, jitter=lambda: 1.0, start_time_ns=1, **kwargs
    )


def metric_values(exporter) -> dict:
    out = {}
    for metric in exporter.self_metrics(10):
        for point in metric.points:
            key = (metric.name,) + tuple(v for _, v in point.attributes)
            out[key] = point.value if hasattr(point, "value") else point.count
    return out


RETRY = SendResult(SendStatus.RETRYABLE, "HTTP 503")


def test_success_first_time():
    clock = FakeClock()
    exporter = make(ScriptedTransport(), clock)
    outcome = exporter.export(RESOURCE, BATCHES)
    assert outcome.success and outcome.complete
    assert (outcome.attempts, outcome.data_points) == (1, 2)
    values = metric_values(exporter)
    assert values[("otelbpf.export.requests", "success")] == 1
    assert values[("otelbpf.export.data_points", "exported")] == 2
    assert values[("otelbpf.export.retries",)] == 0
    assert values[("otelbpf.export.duration", "success")] == 1


def test_retries_with_exponential_backoff_until_success():
    clock = FakeClock()
    transport = ScriptedTransport(RETRY, RETRY, RETRY)
    exporter = make(transport, clock)
    outcome = exporter.export(RESOURCE, BATCHES)
    assert outcome.success and outcome.attempts == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]
    values = metric_values(exporter)
    assert values[("otelbpf.export.retries",)] == 3
    assert values[("otelbpf.export.requests", "retryable_error")] == 3
    assert values[("otelbpf.export.requests", "success")] == 1


def test_backoff_is_capped_and_jittered():
    clock = FakeClock()
    exporter = ReliableExporter(
        ScriptedTransport(*[RETRY] * 6), timeout=1, max_backoff=3.0, max_elapsed=1000,
        clock=clock, sleep=clock.sleep, jitter=lambda: 0.0,
    )
    exporter.export(RESOURCE, BATCHES)
    assert clock.sleeps == [0.5, 1.0, 1.5, 1.5, 1.5, 1.5]


def test_retry_after_is_honoured():
    clock = FakeClock()
    throttled = SendResult(SendStatus.RETRYABLE, "429", retry_after=7.0)
    exporter = make(ScriptedTransport(throttled), clock)
    assert exporter.export(RESOURCE, BATCHES).success
    assert clock.sleeps == [7.0]


def test_gives_up_at_the_deadline_and_drops():
    clock = FakeClock()
    transport = ScriptedTransport(*[RETRY] * 100, clock=clock, cost=1.0)
    exporter = make(transport, clock)
    outcome = exporter.export(RESOURCE, BATCHES, deadline=clock.now + 10)
    assert not outcome.success and outcome.retryable
    assert clock.now <= 100 + 10
    assert all(t <= 5.0 for t in transport.timeouts)
    values = metric_values(exporter)
    assert values[("otelbpf.export.failures", "retries_exhausted")] == 1
    assert values[("otelbpf.export.data_points", "dropped")] == 2


def test_retry_attempts_get_only_the_time_left():
    clock = FakeClock()
    transport = ScriptedTransport(RETRY, clock=clock, cost=0.0)
    exporter = make(transport, clock, timeout=5.0)
    exporter.export(RESOURCE, BATCHES, deadline=clock.now + 3.0)
    assert transport.timeouts == [5.0, pytest.approx(2.0)]


def test_permanent_failure_is_not_retried():
    clock = FakeClock()
    refused = SendResult(SendStatus.PERMANENT, "HTTP 400: delta not supported")
    exporter = make(ScriptedTransport(refused), clock)
    outcome = exporter.export(RESOURCE, BATCHES)
    assert not outcome.success and not outcome.retryable and outcome.attempts == 1
    assert "delta not supported" in outcome.message
    assert clock.sleeps == []
    assert metric_values(exporter)[("otelbpf.export.failures", "permanent")] == 1


def test_partial_success_counts_rejected_points():
    clock = FakeClock()
    partial = SendResult(SendStatus.SUCCESS, "1 bad point", rejected_points=1)
    exporter = make(ScriptedTransport(partial), clock)
    outcome = exporter.export(RESOURCE, BATCHES)
    assert outcome.success and not outcome.complete and outcome.rejected_points == 1
    values = metric_values(exporter)
    assert values[("otelbpf.export.rejected_points",)] == 1
    assert values[("otelbpf.export.data_points", "exported")] == 1
    assert values[("otelbpf.export.requests", "partial_success")] == 1


def test_nothing_to_send_makes_no_request():
    clock = FakeClock()
    transport = ScriptedTransport()
    outcome = make(transport, clock).export(RESOURCE, [MetricBatch("s", ())])
    assert outcome.success and outcome.attempts == 0 and transport.timeouts == []


def test_self_metrics_shape():
    clock = FakeClock()
    metrics = {m.name: m for m in make(ScriptedTransport(), clock).self_metrics(10)}
    assert set(metrics) == {
        "otelbpf.export.requests", "otelbpf.export.failures", "otelbpf.export.retries",
        "otelbpf.export.data_points", "otelbpf.export.duration", "otelbpf.export.rejected_points",
        "otelbpf.export.ambiguous",
    }
    duration = metrics["otelbpf.export.duration"]
    assert duration.unit == "s" and duration.kind is MetricKind.HISTOGRAM
    assert all(p.start_time_ns == 1 and p.time_ns == 10 for m in metrics.values() for p in m.points)


def test_redaction_helpers():
    assert redact("bad token s3cr3t-token!", ["s3cr3t-token"]) == "bad token <redacted>!"
    assert safe_endpoint("https://user:pw@host:4318/x") == "https://<redacted>@host:4318/x"
    assert safe_endpoint("http://host:4318") == "http://host:4318"


def test_build_exporter_picks_the_protocol():
    from otelbpf.export.console import ConsoleExporter

    assert isinstance(build_exporter(export_config(protocol="console")), ConsoleExporter)
    http = build_exporter(export_config(endpoint="http://127.0.0.1:9/otlp"))
    assert http.transport.url == "http://127.0.0.1:9/otlp/v1/metrics"
    grpc = build_exporter(export_config(protocol="grpc", endpoint="127.0.0.1:9", insecure=True))
    assert (grpc.transport.target, grpc.transport.tls) == ("127.0.0.1:9", False)
    grpc.shutdown()
    with pytest.raises(ValueError, match="protocol"):
        build_exporter(export_config(protocol="zipkin"))


def test_build_exporter_accepts_the_real_export_config():
    config = export_config(endpoint="http://127.0.0.1:9", compression="gzip", timeout=1.0,
                           max_backoff=5.0)
    exporter = build_exporter(config)
    assert exporter.timeout == 1.0 and exporter.max_backoff == 5.0


def test_a_transport_exception_becomes_a_redacted_permanent_failure():
    class Broken(ScriptedTransport):
        def send(self, request, timeout):
            raise ValueError("cannot send header value s3cr3t-value")

    clock = FakeClock()
    outcome = make(Broken(), clock).export(RESOURCE, BATCHES)
    assert not outcome.success and not outcome.retryable
    assert "ValueError" in outcome.message and "s3cr3t-value" not in outcome.message
