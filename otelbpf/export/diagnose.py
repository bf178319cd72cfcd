"""``otelbpf check --export``: send one real export and say why it failed in the operator's terms.

A failed send is explained from what the transport reported (HTTP status, gRPC code) and, when
that alone is ambiguous (a closed connection, a handshake error), from a short probe of the
endpoint's port: does it answer at all, does it speak TLS, does it speak HTTP/2 only (gRPC, 4317)
or HTTP/1.1 (OTLP/HTTP, 4318)? The probe sends no data and no credentials.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from otelbpf.export.encode import encode
from otelbpf.export.transport import SendResult, SendStatus, Transport
from otelbpf.metrics.model import Metric, MetricBatch, MetricKind, NumberPoint, Resource

# The client preface every HTTP/2 connection starts with (RFC 9113 3.4); an h2c server such as a
# gRPC receiver answers with a SETTINGS frame (a binary frame header), an HTTP/1.x server in text.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_SETTINGS_FRAME = 0x4


@dataclass(frozen=True)
class PortProbe:
    """What answers at host:port."""

    reachable: bool
    error: str = ""  # why not reachable
    tls: bool = False
    speaks: str = ""  # "grpc" (HTTP/2 only), "http" (HTTP/1.x), or "" (unknown)


def probe_port(host: str, port: int, timeout: float = 3.0) -> PortProbe:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            first = _tls_hello(sock, host)
    except OSError as error:
        return PortProbe(False, error.strerror or str(error) or type(error).__name__)
    if first is not None:
        return PortProbe(True, tls=True, speaks=first)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_H2_PREFACE)
            reply = _read_some(sock, 9)
    except OSError:
        reply = b""
    if len(reply) >= 4 and reply[3] == _SETTINGS_FRAME and reply[0] == 0:
        return PortProbe(True, speaks="grpc")
    # HTTP/1.x servers answer the preface in text: "HTTP/1.1 400 …", or an HTML error page.
    if reply and all(32 <= b < 127 or b in b"\r\n\t" for b in reply):
        return PortProbe(True, speaks="http")
    return PortProbe(True)


def _tls_hello(sock: socket.socket, host: str) -> str | None:
    """The protocol a TLS server chose by ALPN ("grpc" for h2, "http" otherwise), or None if the
    port does not speak TLS. Certificates are not checked: this only asks what the port is."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            return "grpc" if tls.selected_alpn_protocol() == "h2" else "http"
    except (ssl.SSLError, OSError):
        return None


def _read_some(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def check_request(resource: Resource) -> object:
    """One gauge, ``otelbpf.check`` = 1: enough for a backend to accept or refuse the request."""
    now = time.time_ns()
    metric = Metric("otelbpf.check", "Sent once by otelbpf check --export", "{check}",
                    MetricKind.GAUGE,
                    (NumberPoint((), 1, now, now),))
    return encode(resource, [MetricBatch("otelbpf.check", (metric,))])


@dataclass(frozen=True)
class ExportCheck:
    ok: bool
    message: str  # the transport's own message (redacted)
    hint: str = ""  # what to change, when we can tell


def check_export(transport: Transport, resource: Resource, timeout: float) -> ExportCheck:
    result = transport.send(check_request(resource), timeout)
    if result.status is SendStatus.SUCCESS:
        return ExportCheck(True, result.message)
    return ExportCheck(False, result.message, explain(transport, result))


def explain(transport: Transport, result: SendResult) -> str:
    message = result.message
    http = transport.protocol != "grpc"
    url = getattr(transport, "url", transport.endpoint)
    if any(s in message for s in ("HTTP 401", "HTTP 403", "UNAUTHENTICATED", "PERMISSION_DENIED")):
        return ("the backend refused the credentials: check the authorization header (for basic "
                "auth: base64 of user:password) and that the token may write metrics")
    # Collectors answer an unknown path with 404, VictoriaMetrics with 400 "unsupported path".
    if "HTTP 404" in message or ("HTTP 400" in message and "unsupported path" in message):
        return (f"nothing at {url}: the endpoint is a base URL and /v1/metrics is appended to it "
                "(VictoriaMetrics: http://HOST:8428/opentelemetry, Grafana Cloud: "
                "https://otlp-gateway-…/otlp); a full metrics URL goes in "
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    if transport.protocol == "http/json" and ("HTTP 400" in message or "HTTP 415" in message):
        return ("the backend may not read OTLP/JSON (VictoriaMetrics does not): use "
                "protocol = \"http/protobuf\"")
    host, port = _host_port(transport)
    if host is None:
        return ""
    found = probe_port(host, port)
    tls = transport.endpoint.startswith("https://")
    where = f"{host}:{port}"
    if not found.reachable:
        return (f"cannot connect to {where} ({found.error}): is the collector running, and is "
                "this its port? (OTLP listens on 4317 for gRPC and 4318 for HTTP)")
    if http and found.speaks == "grpc":
        return (f"{where} speaks gRPC (HTTP/2), not OTLP/HTTP: set protocol = \"grpc\", or use "
                "the collector's HTTP port (usually 4318)")
    if not http and found.speaks == "http":
        return (f"{where} speaks HTTP/1.1 (OTLP/HTTP), not gRPC: set protocol = "
                "\"http/protobuf\", or use the collector's gRPC port (usually 4317)")
    if tls and not found.tls:
        return (f"{where} does not speak TLS: use http:// in the endpoint, or enable TLS on the "
                "receiver")
    if not tls and found.tls:
        return f"{where} expects TLS: use https:// in the endpoint"
    return ""


def _host_port(transport: Transport) -> tuple[str | None, int]:
    parts = urlsplit(transport.endpoint)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None, 0
    return parts.hostname, port
