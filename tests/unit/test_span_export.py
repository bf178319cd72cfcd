"""Where spans go (the agent's [export] settings, with OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and
what a ring buffer record makes of its span."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from otelbpf.config.agent import ExportConfig
from otelbpf.config.program import SpanConfig
from otelbpf.traces.spans import RecordSpan, record_span, span_exporter


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


SPAN = SpanConfig("exec_spans", "exec", "", ())
TRACE = "00000000000000010123456789abcdef"


@pytest.mark.parametrize("fields,expected", [
    # ids and times as the record holds them; other labels are attributes
    ({"trace_id": TRACE, "span_id": "0000000000001000", "parent_span_id": "0000000000002000",
      "span_monotonic_timestamp_ns": "50", "span_duration_ns": "7", "comm": "sh"},
     RecordSpan("exec", 1050, 7, int(TRACE, 16), 0x1000, 0x2000, {"comm": "sh"})),
    # a root span (parent zero) keeps the record's trace id, as ebpf_exporter's Go SDK does
    ({"trace_id": TRACE, "span_id": "0000000000001000", "parent_span_id": "0000000000000000",
      "span_monotonic_timestamp_ns": "0"},
     RecordSpan("exec", 1000, 0, int(TRACE, 16), 0x1000, 0, {})),
    # span_name replaces the name, even when empty
    ({"trace_id": TRACE, "span_name": "", "span_monotonic_timestamp_ns": "0"},
     RecordSpan("", 1000, 0, int(TRACE, 16), 0, 0, {})),
    # no trace_id label: a new trace, both ids drawn by the SDK (the record's span_id unused)
    ({"span_id": "0000000000001000", "span_monotonic_timestamp_ns": "0"},
     RecordSpan("exec", 1000, 0, 0, 0, 0, {})),
    # records ebpf_exporter drops: a zero trace id (TraceIDFromHex refuses it), ids of the
    # wrong length, times that are not unsigned decimals
    ({"trace_id": "0" * 32}, None),
    ({"trace_id": TRACE[16:]}, None),
    ({"trace_id": TRACE, "span_id": "1000"}, None),
    ({"trace_id": TRACE, "span_duration_ns": "-5"}, None),
])
def test_records_read_as_ebpf_exporter_reads_them(fields, expected):
    assert record_span(fields, SPAN, clock_offset=1000) == expected


def test_span_name_defaults_to_the_ring_buffer():
    assert record_span({"trace_id": TRACE}, SpanConfig("exec_spans", "", "", ()), 0).name \
        == "exec_spans"
