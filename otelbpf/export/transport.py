"""What every OTLP transport (HTTP, gRPC) promises: send one encoded request, classify the result.

Transports make exactly one attempt and never retry or log; retrying, backoff and self-metrics
live in ``exporter.ReliableExporter`` so both protocols behave the same.
"""

from __future__ import annotations

import base64
import binascii
import enum
import ssl
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
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


def validate_headers(headers: Mapping[str, str], *, grpc: bool = False) -> None:
    """Refuse headers HTTP or gRPC cannot carry, naming the header but never showing its value.

    Left to http.client or grpcio, a bad value fails later with the value inside the error
    message. ``grpc``: also refuse names ending in ``-bin``, which gRPC reserves for binary
    metadata (grpcio raises on every call with a text value).
    """
    for name, value in headers.items():
        if grpc and name.lower().endswith("-bin"):
            raise ValueError(f"export header name {name!r}: gRPC reserves names ending in -bin "
                             "for binary metadata")
        if not name or not set(name) <= _TOKEN_CHARS:
            raise ValueError(f"export header name {name!r} is not a valid HTTP header name")
        if not isinstance(value, str) or not all(" " <= c <= "~" for c in value):
            raise ValueError(
                f"export header {name!r}: the value must be printable ASCII "
                "(no line breaks or other control characters)"
            )


# An echo this long of any part of a credential is redacted: a server that quotes only the start
# of a token (its own truncation) or the token without its scheme word must not leak the rest.
PARTIAL_ECHO = 8


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in text, and every run of PARTIAL_ECHO or more characters copied
    from one, e.g. in a server error that echoes a header back whole, cut or without "Bearer "."""
    secrets = {s for s in secrets if s}
    if not secrets or not text:
        return text
    covered = bytearray(len(text))
    for secret in secrets:
        start = text.find(secret)
        while start >= 0:
            covered[start:start + len(secret)] = b"\1" * len(secret)
            start = text.find(secret, start + 1)
    pieces = {secret[i:i + PARTIAL_ECHO] for secret in secrets
              for i in range(len(secret) - PARTIAL_ECHO + 1)}
    for start in range(len(text) - PARTIAL_ECHO + 1):
        if text[start:start + PARTIAL_ECHO] in pieces:
            covered[start:start + PARTIAL_ECHO] = b"\1" * PARTIAL_ECHO
    out, index = [], 0
    while index < len(text):
        if covered[index]:
            while index < len(text) and covered[index]:
                index += 1
            out.append(REDACTED)
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def header_secrets(headers: Mapping[str, str]) -> tuple[str, ...]:
    """What to keep out of messages: each header value, its credential without the scheme word
    ("Bearer", "Basic", "Api-Token"), and the user:password inside Basic credentials.
    Very short values are left out: they would redact unrelated text."""
    secrets: list[str] = []
    for value in headers.values():
        scheme, _, credential = value.strip().partition(" ")
        candidates = [value, credential.strip()]
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credential.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            candidates += [decoded, decoded.partition(":")[2]]
        secrets += [c for c in candidates if len(c) >= 4 and c not in secrets]
    return tuple(secrets)


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


def clean_message(text: str, secrets: Iterable[str]) -> str:
    """A server's message made fit for a log line: secrets out first, then one line, then short.

    In that order: truncating or joining lines first could cut a token where the whole-value
    match no longer finds it."""
    return truncate(redact(text, secrets))


class TlsFileError(ValueError):
    """A TLS file setting that cannot be used; ``setting`` names it (certificate, client_key...)."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting


def tls_context(
    certificate: Path | None, client_certificate: Path | None, client_key: Path | None
) -> ssl.SSLContext:
    """A verifying client context: system CAs, or only ``certificate`` if given; mTLS if asked.

    Raises TlsFileError naming the file that is missing, unreadable or not PEM. The config loader
    calls it too, so a bad file is a config error for gRPC as well (grpcio only reads the files
    when it first connects)."""
    if (client_certificate is None) != (client_key is None):
        given, missing = (("client_certificate", "client_key") if client_key is None
                          else ("client_key", "client_certificate"))
        raise TlsFileError(given, f"{given} is set but {missing} is not: mutual TLS needs both")
    for setting, path in (("certificate", certificate), ("client_certificate", client_certificate),
                          ("client_key", client_key)):
        if path is not None:
            try:
                Path(path).read_bytes()
            except OSError as error:
                raise TlsFileError(setting, f"cannot read {path}: {error.strerror}") from error
    try:
        context = ssl.create_default_context(cafile=str(certificate) if certificate else None)
    except (OSError, ssl.SSLError) as error:
        raise TlsFileError("certificate",
                           f"{certificate} is not a PEM CA certificate ({error})") from error
    if client_certificate is not None:
        try:
            context.load_cert_chain(str(client_certificate), str(client_key))
        except (OSError, ssl.SSLError) as error:
            raise TlsFileError(
                "client_certificate",
                f"{client_certificate} and {client_key} are not a PEM certificate and its "
                f"private key ({error})",
            ) from error
    return context
