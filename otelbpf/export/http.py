"""OTLP/HTTP with protobuf or JSON bodies, over one kept-alive ``http.client`` connection.

The connection (and its TLS session) is reused from export to export; a new TCP and TLS
handshake per export costs more than the export itself on a nearby collector
(benchmarks/export.py). A connection the server closed while idle is noticed before the request
is sent and replaced; a request is only re-sent when writing it failed, never once the server may
have read it (that case is a retryable failure for the exporter's retry loop to count).

JSON (``http/json``) is the protobuf JSON mapping with the OTLP rules that matter for metrics:
lowerCamelCase field names and enums as integers; 64-bit integers are strings, which OTLP
receivers must accept. (Trace and span ids, which OTLP wants in hex, only occur in exemplars,
which otelbpf does not send.)

Endpoint rule: ``endpoint_base`` is a base URL like OTEL_EXPORTER_OTLP_ENDPOINT, and the signal path
``/v1/metrics`` is appended to its path (``http://vm:8428/opentelemetry`` posts to
``http://vm:8428/opentelemetry/v1/metrics``). A URL whose path already ends in ``/v1/metrics`` is
used as-is, so pasting a backend's full metrics URL also works.

Proxies: the usual ``https_proxy``/``http_proxy``/``no_proxy`` variables are honoured (read as
urllib reads them): HTTPS goes through a CONNECT tunnel, plain HTTP to the proxy with the full URL.
Redirects are not followed: a POST turned into a GET would silently lose the data, so a 3xx is
reported instead.
"""

from __future__ import annotations

import dataclasses
import base64
import email.utils
import gzip
import http.client
import json
import select
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

import otelbpf
from otelbpf.export.transport import (
    SendResult,
    SendStatus,
    clean_message,
    header_secrets,
    safe_endpoint,
    tls_context,
    validate_headers,
)

METRICS_PATH = "/v1/metrics"
# OTLP/HTTP spec: only these are worth retrying; every other 4xx/5xx is final.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
_RESERVED_HEADERS = frozenset({"content-type", "content-encoding", "content-length"})


def metrics_url(endpoint_base: str) -> str:
    """``{endpoint_base}/v1/metrics``, unless endpoint_base already ends with /v1/metrics."""
    url = endpoint_base.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("http", "https"):
        raise ValueError(
            f"OTLP/HTTP endpoint {safe_endpoint(url)!r} must start with http:// or https://"
        )
    base, _, query = url.partition("?")
    base = base.rstrip("/")
    if not base.endswith(METRICS_PATH):
        base += METRICS_PATH
    return base + (f"?{query}" if query else "")


class OtlpHttpExporter:
    """Posts ``ExportMetricsServiceRequest`` protobufs; one attempt per ``send``."""

    def __init__(
        self,
        endpoint_base: str,
        headers: Mapping[str, str] | None = None,
        compression: str = "none",
        timeout: float = 10.0,
        certificate: Path | None = None,
        client_certificate: Path | None = None,
        client_key: Path | None = None,
        *,
        exact_url: bool = False,
        encoding: str = "protobuf",
    ):
        """``exact_url``: post to ``endpoint_base`` as given (a signal-specific endpoint such as
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is a full URL, per the OTLP exporter spec).
        ``encoding``: "protobuf" or "json"."""
        if compression not in ("gzip", "none"):
            raise ValueError(f"compression must be 'gzip' or 'none', not {compression!r}")
        if encoding not in ("protobuf", "json"):
            raise ValueError(f"encoding must be 'protobuf' or 'json', not {encoding!r}")
        self.encoding = encoding
        self.protocol = f"http/{encoding}"
        self.url = endpoint_base if exact_url else metrics_url(endpoint_base)
        self.endpoint = safe_endpoint(self.url)
        self.compression = compression
        self.timeout = timeout
        self._headers = dict(headers or {})
        validate_headers(self._headers)
        self.header_names = tuple(sorted(k.lower() for k in self._headers))
        self.secrets = header_secrets(self._headers)
        self.tls = self.url.lower().startswith("https://")
        self._context = tls_context(certificate, client_certificate, client_key) if self.tls else None
        parts = urlsplit(self.url)
        self._host, self._port = parts.hostname or "", parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._proxy = _proxy_for(parts.scheme, self._host)
        self._connection: http.client.HTTPConnection | None = None
        self._request_sent = False  # set by _post once the whole request is written
        self._lock = threading.Lock()

    def send(
        self, request: ExportMetricsServiceRequest, timeout: float | None = None
    ) -> SendResult:
        if self.encoding == "json":
            body = json_format.MessageToJson(request, use_integers_for_enums=True,
                                             indent=None).encode()
        else:
            body = request.SerializeToString()
        headers = {
            k: v for k, v in self._headers.items() if k.lower() not in _RESERVED_HEADERS
        }
        if "user-agent" not in self.header_names:
            headers["User-Agent"] = f"otelbpf/{otelbpf.__version__}"
        headers["Content-Type"] = ("application/json" if self.encoding == "json"
                                   else "application/x-protobuf")
        if self.compression == "gzip":
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        with self._lock:
            try:
                # The timeout bounds each socket operation (connect, each read), not the total.
                status, reason, response_headers, payload = self._post(
                    body, headers, timeout or self.timeout)
            except (OSError, http.client.HTTPException) as error:  # includes TimeoutError
                sent = self._request_sent
                self._disconnect()
                result = self._unreachable(error)
                # Failing while waiting for or reading the response, the request was sent: the
                # backend may have stored it (otelbpf.export.ambiguous).
                return dataclasses.replace(result, ambiguous=True) if sent else result
        if 200 <= status < 300:
            return self._accepted(response_headers, payload)
        return self._refused(status, reason, response_headers, payload)

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    def _post(self, body: bytes, headers: dict[str, str], timeout: float):
        self._request_sent = False
        connection = self._connection
        if connection is not None and connection.sock is not None and _dropped(connection.sock):
            # The server closed the idle connection (keep-alive timeouts of collectors and load
            # balancers): open a new one before sending anything.
            self._disconnect()
        reused = self._connection is not None and self._connection.sock is not None
        target = self._path
        if self._proxy is not None and not self.tls:
            target = self.url  # a plain-HTTP proxy wants the absolute URL
            headers = {**headers, **self._proxy.headers}
        try:
            self._connect(timeout).request("POST", target, body=body, headers=headers)
        except (ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            # Closed while the request was being written: the server cannot have a complete
            # request, so sending it again on a new connection cannot duplicate it.
            self._disconnect()
            self._connect(timeout).request("POST", target, body=body, headers=headers)
        # From here on a failure is left to the caller: the server may have stored the data.
        self._request_sent = True
        response = self._connection.getresponse()
        payload = response.read()
        if response.will_close:
            self._disconnect()
        return response.status, response.reason, response.headers, payload

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        connection = self._connection
        if connection is None:
            host, port = self._host, self._port
            if self._proxy is not None:
                host, port = self._proxy.host, self._proxy.port
            if self.tls:
                connection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                         context=self._context)
                if self._proxy is not None:
                    connection.set_tunnel(self._host, self._port or 443, self._proxy.headers)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
            self._connection = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _accepted(self, headers, payload: bytes) -> SendResult:
        content_type = (headers.get("Content-Type") or "").lower()
        if not payload:
            return SendResult(SendStatus.SUCCESS)
        response = ExportMetricsServiceResponse()
        try:
            if "json" in content_type:
                json_format.Parse(payload, response, ignore_unknown_fields=True)
            else:
                response.ParseFromString(payload)
        except (DecodeError, json_format.ParseError):
            return SendResult(SendStatus.SUCCESS)  # a 2xx body we cannot read still means accepted
        partial = response.partial_success
        return SendResult(
            SendStatus.SUCCESS,
            message=self._clean(partial.error_message),
            rejected_points=partial.rejected_data_points,
        )

    def _refused(self, code: int, reason, headers, payload: bytes) -> SendResult:
        detail = _error_detail(headers, payload)
        message = f"HTTP {code} {reason or ''}".rstrip() + f" from {self.endpoint}"
        if detail:
            message += f": {detail}"
        if 300 <= code < 400:
            location = safe_endpoint(headers.get("Location") or "?")
            message += f" (redirected to {location}; configure the final URL as the endpoint)"
        elif code in (401, 403):
            message += " (check the credentials in the export headers)"
        if code in RETRYABLE_STATUS:
            return SendResult(
                SendStatus.RETRYABLE,
                self._clean(message),
                retry_after=parse_retry_after(headers.get("Retry-After")),
            )
        return SendResult(SendStatus.PERMANENT, self._clean(message))

    def _unreachable(self, reason) -> SendResult:
        if isinstance(reason, ssl.SSLCertVerificationError):
            return SendResult(
                SendStatus.PERMANENT,
                self._clean(
                    f"TLS certificate of {self.endpoint} not trusted: {reason.verify_message} "
                    "(set the export certificate to the CA file that signed it)"
                ),
            )
        text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        if isinstance(reason, TimeoutError):
            text = f"timed out after {self.timeout:g}s"
        return SendResult(SendStatus.RETRYABLE, self._clean(f"{self.endpoint}: {text}"))

    def _clean(self, text: str) -> str:
        return clean_message(text, self.secrets)


@dataclass(frozen=True)
class _Proxy:
    host: str
    port: int | None
    headers: dict[str, str]  # Proxy-Authorization, when the proxy URL has user:password


def _dropped(sock) -> bool:
    """An idle kept-alive socket that is readable has been closed by the server (or sent
    something unasked): either way it cannot carry the next request."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _proxy_for(scheme: str, host: str) -> _Proxy | None:
    """The proxy urllib would use for ``scheme://host`` (environment, no_proxy honoured)."""
    url = urllib.request.getproxies().get(scheme)
    if not url or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    headers = {}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    return _Proxy(parts.hostname or "", parts.port, headers)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds to wait: either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_detail(headers, payload: bytes) -> str:
    """The backend's explanation: google.rpc.Status (as OTLP specifies), JSON, or plain text."""
    if not payload:
        return ""
    content_type = (headers.get("Content-Type") or "").lower() if headers else ""
    if "protobuf" in content_type:
        from google.rpc import status_pb2

        status = status_pb2.Status()
        try:
            status.ParseFromString(payload)
            return status.message
        except DecodeError:
            pass
    if "json" in content_type:
        try:
            data = json.loads(payload)
            if isinstance(data, dict) and isinstance(data.get("message"), str):
                return data["message"]
        except ValueError:
            pass
    return payload.decode("utf-8", errors="replace")
