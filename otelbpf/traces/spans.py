"""Spans from ring buffer records (ebpf_exporter's ``tracing.spans``) → OTLP traces.

Each record is laid out like a map key (labels of ``size`` bytes plus ``padding``) and decoded by
the labels' decoder chains. Labels with these names make the span, as in ebpf_exporter:
``trace_id`` (16 bytes, hex; a zero id drops the record), ``parent_span_id`` / ``span_id``
(8 bytes, hex; zero = none),
``span_monotonic_timestamp_ns`` (``bpf_ktime_get_ns()`` at the start), ``span_duration_ns`` and
``span_name``; every other label becomes a string attribute. Spans are built with the
OpenTelemetry SDK's tracer and sent by its OTLP span exporters through a batch processor: span
volume is modest (one record per traced operation, not per event) and the SDK batches, retries
and honours the ``OTEL_BSP_*`` and sampler variables.

Export settings are the agent's ``[export]`` (protocol, endpoint, headers, compression, timeout,
TLS files); ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` names a complete traces URL.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from otelbpf.config.agent import DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT, ExportConfig
from otelbpf.labels.keys import KeyDecoder
from otelbpf.streams.ringbuf import RingBufferReader
from otelbpf.streams.source import DrainedSource

_log = logging.getLogger(__name__)

TRACES_ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


class _RecordIds(IdGenerator):
    """Hands the SDK the ids of the record being turned into a span; random ones when the record
    has none (one drain thread builds spans, so plain attributes suffice)."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0

    def generate_trace_id(self) -> int:
        return self.trace_id or random.getrandbits(128)

    def generate_span_id(self) -> int:
        return self.span_id or random.getrandbits(64)


@dataclass(frozen=True)
class RecordSpan:
    """What one decoded record says about its span; ids are 0 where the SDK picks random ones."""

    name: str
    start_ns: int
    duration_ns: int
    trace_id: int
    span_id: int
    parent_id: int
    attributes: Mapping[str, str]


_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")


def record_span(fields: Mapping[str, str], config, clock_offset: int) -> RecordSpan | None:
    """One record's decoded labels → its span, read as ebpf_exporter reads them; None for a record
    it drops: a ``trace_id`` that is zero or not 32 lowercase hex digits, a span id that is not 16,
    times that are not unsigned decimals. Without a ``trace_id`` label both ids are random; a zero
    ``span_id``/``parent_span_id`` means none. ``span_name`` (even empty) replaces the configured
    name, which defaults to the ring buffer's."""
    name = config.name or config.ringbuf
    start_ns = time.time_ns()
    duration_ns = trace_id = span_id = parent_id = 0
    attributes = {}
    for label, value in fields.items():
        if label in ("span_id", "parent_span_id"):
            if not _SPAN_ID.fullmatch(value):
                return None
            if label == "span_id":
                span_id = int(value, 16)
            else:
                parent_id = int(value, 16)
        elif label == "trace_id":
            if not _TRACE_ID.fullmatch(value) or not int(value, 16):
                return None
            trace_id = int(value, 16)
        elif label in ("span_monotonic_timestamp_ns", "span_duration_ns"):
            if not value.isdigit() or not value.isascii():
                return None
            if label == "span_duration_ns":
                duration_ns = int(value)
            else:
                start_ns = int(value) + clock_offset  # CLOCK_MONOTONIC → wall clock
        elif label == "span_name":
            name = value
        else:
            attributes[label] = value
    if not trace_id:
        span_id = 0  # a new trace: the SDK draws both ids, as ebpf_exporter's does
    return RecordSpan(name, start_ns, duration_ns, trace_id, span_id, parent_id, attributes)


def span_exporter(export: ExportConfig, environ: Mapping[str, str] | None = None) -> SpanExporter:
    """The SDK span exporter for the agent's export settings."""
    environ = os.environ if environ is None else environ
    if export.protocol == "console":
        return ConsoleSpanExporter(out=sys.stdout)
    url = environ.get(TRACES_ENDPOINT_VARIABLE) or None
    # A metrics-specific endpoint is the complete metrics URL: traces take the general base.
    base = (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None) if export.signal_endpoint \
        else export.endpoint
    headers = dict(export.headers)
    if export.protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = url or base or DEFAULT_GRPC_ENDPOINT
        credentials = None
        if export.certificate or export.client_certificate:
            def read(path):
                return path.read_bytes() if path else None
            credentials = grpc.ssl_channel_credentials(read(export.certificate),
                                                       read(export.client_key),
                                                       read(export.client_certificate))
        compression = grpc.Compression.Gzip if export.compression == "gzip" else \
            grpc.Compression.NoCompression
        return OTLPSpanExporter(endpoint=endpoint, insecure=export.insecure or None,
                                credentials=credentials, headers=headers, timeout=export.timeout,
                                compression=compression)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = url or (base or DEFAULT_HTTP_ENDPOINT).rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(
        endpoint=endpoint, headers=headers, timeout=export.timeout,
        compression=Compression.Gzip if export.compression == "gzip" else Compression.NoCompression,
        certificate_file=str(export.certificate) if export.certificate else None,
        client_certificate_file=(str(export.client_certificate) if export.client_certificate
                                 else None),
        client_key_file=str(export.client_key) if export.client_key else None)


class SpanSource(DrainedSource):
    """One ``tracing.spans`` entry: its ring buffer, label decoders and tracer. Drained by the
    `StreamDrainer` like a stream; ``collect`` adds no metrics."""

    def __init__(self, config, bpf_map, *, program: str, exporter: SpanExporter,
                 resource: Mapping[str, object]):
        self.config = config
        self.name = f"{program}/{config.ringbuf}"
        self.map = bpf_map
        self.reader = RingBufferReader(bpf_map)
        self.decoder = KeyDecoder(config.labels, cache_size=0)
        self.ids = _RecordIds()
        attributes = dict(resource)
        if config.service:
            attributes["service.name"] = config.service
        self.provider = TracerProvider(resource=SdkResource.create(attributes),
                                       id_generator=self.ids, shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("otelbpf.ebpf_exporter")
        self.config_attribute = config.config_name
        self.caught_up = True
        self.spans = 0
        self.undecodable = 0

    def filenos(self) -> list[int]:
        return self.reader.filenos()

    def restart(self) -> None:
        """A fresh reader of the same ring buffer; records the old one had not read stay in the ring."""
        old, self.reader = self.reader, RingBufferReader(self.map)
        old.close()
        super().restart()

    def drain(self, max_batches: int = 64) -> int:
        total = 0
        self.caught_up = False
        for _ in range(max_batches):
            batch = self.reader.read()
            if len(batch) == 0:
                self.caught_up = True
                break
            # CLOCK_MONOTONIC (bpf_ktime_get_ns) → wall clock, once per batch.
            offset = time.time_ns() - time.monotonic_ns()
            for record in batch.payloads():
                self.emit(record, offset)
            total += len(batch)
        return total

    def emit(self, record: bytes, clock_offset: int) -> None:
        values = self.decoder.decode(record[:self.decoder.key_size])
        parts = None if values is None else record_span(
            dict(zip(self.decoder.names, values)), self.config, clock_offset)
        if parts is None:
            self.undecodable += 1  # short record, a decoder dropped it, or ids/times unreadable
            return
        self.ids.trace_id, self.ids.span_id = parts.trace_id, parts.span_id
        parent = otel_context.Context()
        if parts.trace_id and parts.parent_id:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
                parts.trace_id, parts.parent_id, is_remote=True,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))))
        attributes = dict(parts.attributes)
        attributes["ebpf_exporter.config"] = self.config_attribute
        span = self.tracer.start_span(parts.name, context=parent, start_time=parts.start_ns,
                                      attributes=attributes)
        span.end(end_time=parts.start_ns + parts.duration_ns)
        self.spans += 1

    def collect(self, now_ns: int) -> list:
        return []

    def close(self) -> None:
        self.reader.close()
        self.provider.shutdown()  # flushes the batch processor: spans read are sent


__all__ = ["RecordSpan", "SpanSource", "record_span", "span_exporter"]
