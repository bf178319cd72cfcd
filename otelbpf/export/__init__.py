"""Package export turns the metric model into OTLP and pushes it (the last stage of the pipeline).

``encode`` builds the OTLP protobuf; ``http`` and ``grpc`` are the two OTLP transports (one attempt
each); ``exporter`` adds retries with backoff and self-metrics and picks the exporter from config;
``console`` prints what would be pushed; ``resource`` builds the resource every export carries.
The gRPC module is imported only when used: grpcio is slow to import.
"""

from otelbpf.export.console import ConsoleExporter
from otelbpf.export.encode import encode
from otelbpf.export.exporter import ReliableExporter, build_exporter
from otelbpf.export.outcome import Exporter, ExportOutcome
from otelbpf.export.resource import build_resource

__all__ = [
    "ConsoleExporter",
    "Exporter",
    "ExportOutcome",
    "ReliableExporter",
    "build_exporter",
    "build_resource",
    "encode",
]
