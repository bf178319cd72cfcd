"""What every OTLP transport (HTTP, gRPC) promises: send one encoded request, classify the result.

Transports make exactly one attempt and never retry or log; retrying, backoff and self-metrics
live in ``exporter.ReliableExporter`` so both protocols behave the same.
"""

from __future__ import annotations

import enum
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

REDACTED = "<redacted>"


class SendStatus(enum.Enum):
    SUCCESS = "success"  # accepted, possibly partially (see SendResult.rejected_points)
    RETRYABLE = "retryable"  # throttled, unavailable, timed out, connection failed
    PERMANENT = "permanent"  # the backend refuses this data; sending it again cannot help


@dataclass(frozen=True, slots=True)
class SendResult:
    status: SendStatus
    message: str = ""  # why it failed, or the backend's partial-success message
    retry_after: float | None = None  # seconds to wait, from Retry-After or RetryInfo
    rejected_points: int = 0  # partial success: points the backend did not accept
    # The request was sent but no answer came (a timeout or a dropped connection while waiting
    # for the response): the backend may have stored it. A retry may then deliver it twice.
    ambiguous: bool = False

    @property
    def ok(self) -> bool:
        return self.status is SendStatus.SUCCESS


class Transport(Protocol):
    """One OTLP protocol endpoint."""

    protocol: str  # "grpc" | "http/protobuf"
    endpoint: str  # for logs: never contains credentials
    header_names: tuple[str, ...]  # for logs: names only, values are secrets
    secrets: tuple[str, ...]  # header values, to redact from any message

    def send(self, request: ExportMetricsServiceRequest, timeout: float) -> SendResult: ...

    def close(self) -> None: ...


# RFC 9110 "token": the characters a header name may use.
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")


def validate_headers(headers: Mapping[str, str]) -> None:
    """Refuse headers HTTP or gRPC cannot carry, naming the header but never showing its value.

    Left to urllib or grpcio, a bad value fails later with the value inside the error message.
    """
    for name, value in headers.items():
        if not name or not set(name) <= _TOKEN_CHARS:
            raise ValueError(f"export header name {name!r} is not a valid HTTP header name")
        if not isinstance(value, str) or not all(" " <= c <= "~" for c in value):
            raise ValueError(
                f"export header {name!r}: the value must be printable ASCII "
                "(no line breaks or other control characters)"
            )


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret (a header value) in text, e.g. in a server error that echoes it."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def header_secrets(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The header values to keep out of messages; very short values would redact unrelated text."""
    return tuple(v for v in headers.values() if len(v) >= 4)


def safe_endpoint(url: str) -> str:
    """The endpoint without user:password@ (which some users put in URLs) for logs and messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{REDACTED}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def truncate(text: str, limit: int = 512) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
