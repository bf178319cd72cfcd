"""OTLP/HTTP with protobuf bodies, over the standard library's urllib.

Endpoint rule: ``endpoint_base`` is a base URL like OTEL_EXPORTER_OTLP_ENDPOINT, and the signal path
``/v1/metrics`` is appended to its path (``http://vm:8428/opentelemetry`` posts to
``http://vm:8428/opentelemetry/v1/metrics``). A URL whose path already ends in ``/v1/metrics`` is
used as-is, so pasting a backend's full metrics URL also works.

Proxies: urllib honours the usual ``https_proxy``/``http_proxy``/``no_proxy`` variables.
Redirects are not followed: a POST turned into a GET would silently lose the data, so a 3xx is
reported instead.
"""

from __future__ import annotations

import dataclasses
import email.utils
import gzip
import http.client
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx status


class OtlpHttpExporter:
    """Posts ``ExportMetricsServiceRequest`` protobufs; one attempt per ``send``."""

    protocol = "http/protobuf"

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
    ):
        """``exact_url``: post to ``endpoint_base`` as given (a signal-specific endpoint such as
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is a full URL, per the OTLP exporter spec)."""
        if compression not in ("gzip", "none"):
            raise ValueError(f"compression must be 'gzip' or 'none', not {compression!r}")
        if client_key is not None and client_certificate is None:
            raise ValueError("client_key needs client_certificate")
        self.url = endpoint_base if exact_url else metrics_url(endpoint_base)
        self.endpoint = safe_endpoint(self.url)
        self.compression = compression
        self.timeout = timeout
        self._headers = dict(headers or {})
        validate_headers(self._headers)
        self.header_names = tuple(sorted(k.lower() for k in self._headers))
        self.secrets = header_secrets(self._headers)
        self.tls = self.url.lower().startswith("https://")
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if self.tls:
            handlers.append(
                urllib.request.HTTPSHandler(
                    context=tls_context(certificate, client_certificate, client_key)
                )
            )
        self._opener = urllib.request.build_opener(*handlers)

    def send(
        self, request: ExportMetricsServiceRequest, timeout: float | None = None
    ) -> SendResult:
        body = request.SerializeToString()
        headers = {
            k: v for k, v in self._headers.items() if k.lower() not in _RESERVED_HEADERS
        }
        if "user-agent" not in self.header_names:
            headers["User-Agent"] = f"otelbpf/{otelbpf.__version__}"
        headers["Content-Type"] = "application/x-protobuf"
        if self.compression == "gzip":
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        http_request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            # urllib's timeout bounds each socket operation (connect, each read), not the total.
            with self._opener.open(http_request, timeout=timeout or self.timeout) as response:
                return self._accepted(response.headers, response.read())
        except urllib.error.HTTPError as error:
            try:
                payload = error.read()
            except (OSError, http.client.HTTPException):
                payload = b""
            finally:
                error.close()
            return self._refused(error.code, error.reason, error.headers, payload)
        except urllib.error.URLError as error:  # urllib wraps errors up to the end of sending
            return self._unreachable(error.reason)
        except (OSError, http.client.HTTPException) as error:  # includes TimeoutError
            # Raised while waiting for or reading the response: the request was sent.
            return dataclasses.replace(self._unreachable(error), ambiguous=True)

    def close(self) -> None:
        self._opener.close()

    def _accepted(self, headers, payload: bytes) -> SendResult:
        content_type = (headers.get("Content-Type") or "").lower()
        if not payload or "json" in content_type:
            return SendResult(SendStatus.SUCCESS)
        response = ExportMetricsServiceResponse()
        try:
            response.ParseFromString(payload)
        except DecodeError:
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
        return redact(truncate(text), self.secrets)


def tls_context(
    certificate: Path | None, client_certificate: Path | None, client_key: Path | None
) -> ssl.SSLContext:
    """A verifying client context: system CAs, or only ``certificate`` if given; mTLS if asked."""
    try:
        context = ssl.create_default_context(cafile=str(certificate) if certificate else None)
        if client_certificate is not None:
            context.load_cert_chain(
                str(client_certificate), str(client_key) if client_key else None
            )
    except (OSError, ssl.SSLError) as error:
        files = ", ".join(str(p) for p in (certificate, client_certificate, client_key) if p)
        raise ValueError(f"cannot load TLS files {files}: {error}") from error
    return context


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
