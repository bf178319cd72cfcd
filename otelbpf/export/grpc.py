"""OTLP/gRPC through grpcio and opentelemetry-proto's generated MetricsService stub.

Endpoint rule (as the OTLP exporter spec says): the scheme decides transport security —
``http://host:port`` is plaintext, ``https://host:port`` is TLS — and ``insecure`` only matters
for a bare ``host:port`` (insecure=False → TLS). The port defaults to 4317; a path is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import MetricsServiceStub

import otelbpf
from otelbpf.export.transport import (
    SendResult,
    SendStatus,
    header_secrets,
    redact,
    safe_endpoint,
    truncate,
    validate_headers,
)

DEFAULT_PORT = 4317

# OTLP spec "Failures" table for gRPC. RESOURCE_EXHAUSTED is retried too (the spec only requires it
# with RetryInfo): our retries are bounded by the export deadline, so a quota error costs little.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def parse_grpc_endpoint(endpoint: str, insecure: bool = False) -> tuple[str, bool]:
    """``(host:port target, use_tls)`` for an OTLP/gRPC endpoint."""
    text = endpoint.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    scheme = scheme.lower()
    if scheme not in ("", "http", "https"):
        raise ValueError(
            f"OTLP/gRPC endpoint {safe_endpoint(text)!r}: scheme must be http:// or https:// "
            "(or none: host:port)"
        )
    authority = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if authority.startswith("["):  # [v6]:port
        host, _, port = authority.partition("]")
        host += "]"
        port = port.removeprefix(":")
    elif authority.count(":") == 1:
        host, _, port = authority.partition(":")
    else:
        host, port = authority, ""
    if not host or host == "[]":
        raise ValueError(f"OTLP/gRPC endpoint {safe_endpoint(text)!r} has no host")
    if port and not port.isdigit():
        raise ValueError(f"OTLP/gRPC endpoint {safe_endpoint(text)!r}: bad port {port!r}")
    use_tls = scheme == "https" or (scheme == "" and not insecure)
    return f"{host}:{port or DEFAULT_PORT}", use_tls


class OtlpGrpcExporter:
    """Calls MetricsService/Export; one attempt per ``send``."""

    protocol = "grpc"

    def __init__(
        self,
        endpoint: str,
        headers: Mapping[str, str] | None = None,
        compression: str = "none",
        timeout: float = 10.0,
        insecure: bool = False,
        certificate: Path | None = None,
        client_certificate: Path | None = None,
        client_key: Path | None = None,
    ):
        if compression not in ("gzip", "none"):
            raise ValueError(f"compression must be 'gzip' or 'none', not {compression!r}")
        if (client_certificate is None) != (client_key is None):
            raise ValueError("client_certificate and client_key must be given together")
        self.target, self.tls = parse_grpc_endpoint(endpoint, insecure)
        self.endpoint = ("https://" if self.tls else "http://") + self.target
        self.timeout = timeout
        headers = dict(headers or {})
        validate_headers(headers)
        # gRPC metadata keys must be lowercase.
        self._metadata = tuple((k.lower(), v) for k, v in headers.items())
        self.header_names = tuple(sorted(k for k, _ in self._metadata))
        self.secrets = header_secrets(headers)
        options = [("grpc.primary_user_agent", f"otelbpf/{otelbpf.__version__}")]
        grpc_compression = grpc.Compression.Gzip if compression == "gzip" else None
        if self.tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(certificate, "certificate"),
                private_key=_read(client_key, "client_key"),
                certificate_chain=_read(client_certificate, "client_certificate"),
            )
            self._channel = grpc.secure_channel(
                self.target, credentials, options=options, compression=grpc_compression
            )
        else:
            self._channel = grpc.insecure_channel(
                self.target, options=options, compression=grpc_compression
            )
        self._stub = MetricsServiceStub(self._channel)

    def send(
        self, request: ExportMetricsServiceRequest, timeout: float | None = None
    ) -> SendResult:
        try:
            response = self._stub.Export(
                request, timeout=timeout or self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            return self._failed(error)
        partial = response.partial_success
        return SendResult(
            SendStatus.SUCCESS,
            message=self._clean(partial.error_message),
            rejected_points=partial.rejected_data_points,
        )

    def close(self) -> None:
        self._channel.close()

    def _failed(self, error: grpc.RpcError) -> SendResult:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        message = f"gRPC {code.name} from {self.endpoint}"
        if details:
            message += f": {details}"
        message = self._clean(message)
        if code in RETRYABLE_CODES:
            # A deadline that passed may have passed after the server stored the request.
            return SendResult(SendStatus.RETRYABLE, message, retry_after=_retry_delay(error),
                              ambiguous=code is grpc.StatusCode.DEADLINE_EXCEEDED)
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            message += " (check the credentials in the export headers)"
        return SendResult(SendStatus.PERMANENT, message)

    def _clean(self, text: str) -> str:
        return redact(truncate(text), self.secrets)


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {what} {path}: {error.strerror}") from error


def _retry_delay(error: grpc.RpcError) -> float | None:
    """google.rpc.RetryInfo.retry_delay from the rich status details, when the server sent one."""
    try:
        trailers = error.trailing_metadata() or ()
    except Exception:  # noqa: BLE001 - a failed call without trailers
        return None
    for key, value in trailers:
        if key != "grpc-status-details-bin":
            continue
        from google.rpc import error_details_pb2, status_pb2

        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:  # noqa: BLE001 - malformed details: no hint
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None
