"""Where spans go: the agent's [export] settings, with OTEL_EXPORTER_OTLP_TRACES_ENDPOINT."""

from __future__ import annotations

from types import MappingProxyType

from otelbpf.config.agent import ExportConfig
from otelbpf.traces.spans import span_exporter


def export(protocol="http/protobuf", endpoint="http://collector:4318", signal_endpoint=False):
    return ExportConfig(protocol=protocol, endpoint=endpoint, temporality="cumulative",
                        headers=MappingProxyType({"authorization": "Bearer x"}),
                        compression="gzip", timeout=3.0, insecure=False, certificate=None,
                        client_certificate=None, client_key=None, max_backoff=60.0,
                        signal_endpoint=signal_endpoint)


def test_http_endpoint_is_the_base_plus_v1_traces():
    exporter = span_exporter(export(), environ={})
    assert exporter._endpoint == "http://collector:4318/v1/traces"
    assert exporter._compression.value == "gzip"


def test_traces_endpoint_variable_is_a_complete_url():
    exporter = span_exporter(export(), environ={
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/otlp/v1/traces"})
    assert exporter._endpoint == "http://tempo:4318/otlp/v1/traces"


def test_metrics_specific_endpoint_is_not_reused_for_traces():
    cfg = export(endpoint="http://vm:8428/opentelemetry/v1/metrics", signal_endpoint=True)
    assert span_exporter(cfg, environ={})._endpoint == "http://localhost:4318/v1/traces"
    assert span_exporter(cfg, environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://gw:4318"}
                         )._endpoint == "http://gw:4318/v1/traces"


def test_console_and_grpc():
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    assert isinstance(span_exporter(export(protocol="console", endpoint=None), environ={}),
                      ConsoleSpanExporter)
    grpc_exporter = span_exporter(export(protocol="grpc", endpoint="http://127.0.0.1:4317"),
                                  environ={})
    assert isinstance(grpc_exporter, OTLPSpanExporter)
    grpc_exporter.shutdown()
