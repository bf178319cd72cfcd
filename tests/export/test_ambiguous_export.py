"""An export whose outcome is unknown: the receiver stores the request, then the answer times out.

The receiver is the in-process `ScriptedHttpServer` (tests/backends.py): no real backend can be
told to store a request and then not answer.
"""

from __future__ import annotations

from backends import ScriptedHttpServer, free_port

from otelbpf.aggregate.delta import DeltaConverter
from otelbpf.export.encode import encode
from otelbpf.export.exporter import ReliableExporter
from otelbpf.export.http import OtlpHttpExporter
from otelbpf.metrics.model import Metric, MetricBatch, MetricKind, NumberPoint, Resource, Temporality

RESOURCE = Resource((("service.name", "t"),))


def calls(total: int, now: int) -> Metric:
    return Metric("calls", "", "1", MetricKind.SUM, (NumberPoint((), total, now, 1),), Temporality.CUMULATIVE)


def received_values(server: ScriptedHttpServer) -> list[int]:
    return [post.request().resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0].as_int
            for post in server.received]


def export(exporter, metric) -> bool:
    return exporter.export(RESOURCE, [MetricBatch("s", (metric,))], deadline=None).success


def test_a_stored_request_whose_answer_times_out_is_counted_ambiguous():
    """Delta: the backend stored the request but the agent cannot know, so the interval is sent
    again and the backend counts it twice; `otelbpf.export.ambiguous` says it happened.
    Cumulative: the resent point carries the same total, so nothing is counted twice."""
    with ScriptedHttpServer() as server:
        server.respond(200, delay=1.0)  # stores, then answers too late
        transport = OtlpHttpExporter(server.url, timeout=0.3)
        exporter = ReliableExporter(transport, timeout=0.3, max_elapsed=0.5, initial_backoff=0.05)
        converter = DeltaConverter()
        totals = [5, 12]
        for i, total in enumerate(totals):
            deltas, token = converter.convert([calls(total, 10 * (i + 1))])
            if export(exporter, deltas[0]):
                converter.commit(token)
        stats = {m.name: m for m in exporter.self_metrics(100)}
        assert [p.value for p in stats["otelbpf.export.ambiguous"].points] == [1]
        delta_stored = received_values(server)
    # The first interval's 5 were stored, then sent again (by a retry, or merged into the next
    # delta when the retries ran out): the backend's deltas add up to 12 + 5.
    assert sum(delta_stored) == totals[-1] + totals[0]

    with ScriptedHttpServer() as server:
        server.respond(200, delay=1.0)
        exporter = ReliableExporter(OtlpHttpExporter(server.url, timeout=0.3), timeout=0.3,
                                    max_elapsed=0.5, initial_backoff=0.05)
        for i, total in enumerate(totals):
            export(exporter, calls(total, 10 * (i + 1)))
        assert received_values(server)[-1] == totals[-1]  # the backend's latest value is exact


def test_a_refused_connection_is_not_ambiguous():
    """Nothing was sent: the outcome is known (failed), so it is not counted as ambiguous."""
    transport = OtlpHttpExporter(f"http://127.0.0.1:{free_port()}", timeout=0.3)
    result = transport.send(encode(RESOURCE, [MetricBatch("s", (calls(1, 1),))]), 0.3)
    assert not result.ok and not result.ambiguous


def test_a_grpc_deadline_passed_after_the_request_was_stored_is_ambiguous():
    """The in-process gRPC receiver stores the request, then answers after the client's deadline."""
    from backends import GrpcMetricsReceiver

    from otelbpf.export.grpc import OtlpGrpcExporter

    with GrpcMetricsReceiver() as receiver:
        receiver.answer_late(1, 1.0)
        transport = OtlpGrpcExporter(receiver.endpoint, timeout=0.3, insecure=True)
        try:
            result = transport.send(encode(RESOURCE, [MetricBatch("s", (calls(5, 10),))]), 0.3)
        finally:
            transport.close()
        assert not result.ok and result.ambiguous and "DEADLINE_EXCEEDED" in result.message
        assert len(receiver.wait_for(1)) == 1  # it was stored all the same
