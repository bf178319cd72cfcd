"""Real OTLP backends for tests: VictoriaMetrics (OTLP/HTTP) and an in-process OTLP/gRPC receiver.

Plain classes and functions, so any test directory can build its own fixtures::

    from tests.backends import VictoriaMetrics, GrpcMetricsReceiver

    vm = VictoriaMetrics()            # fetches the binary on first use (scripts/victoria-metrics)
    vm.start()                        # free 127.0.0.1 port, temporary storage
    push to vm.otlp_http_endpoint     # base URL: http://127.0.0.1:PORT/opentelemetry
    vm.query('syscalls_total{syscall="read"}')  # -> [Sample(labels, value)], flushes first
    vm.restart()                      # same port, same data
    vm.stop()

How VictoriaMetrics 1.112 with -opentelemetry.usePrometheusNaming names OTLP data (observed):

- Names: dots become underscores; the unit is appended as a Prometheus word unless the name already
  ends with it or the unit is an annotation (``{call}``) or "1":
  ``req.size`` By → ``req_size_bytes``, ``bio.latency`` us → ``bio_latency_microseconds``,
  ``wait`` ms → ``wait_milliseconds``, ``latency.seconds`` s → ``latency_seconds``,
  ``bytes.sent`` By → ``bytes_sent`` (already contains "bytes"), ns → ``nanoseconds``.
- Monotonic sums get ``_total`` (not doubled: ``requests.total`` → ``requests_total``):
  ``syscalls`` {call} → ``syscalls_total``; unit "1" sum ``packets`` →
  ``packets_total``.
  Non-monotonic sums and gauges get no suffix: ``queue.depth`` {item} gauge → ``queue_depth``,
  ``mem.used`` By gauge → ``mem_used_bytes``.
- Explicit histograms: ``NAME_bucket{le="10"}`` (cumulative counts, ``le="+Inf"`` = count),
  ``NAME_sum``, ``NAME_count``. min/max are not stored.
- Exponential histograms: ``NAME_bucket{vmrange="LO...HI"}`` with one series per non-empty OTLP
  bucket and the bucket's own bounds in ``%.3e``: scale 0 index 9 →
  ``vmrange="5.120e+02...1.024e+03"`` holding that bucket's (non-cumulative) count; scale 2 →
  ``1.000e+00...1.189e+00`` etc.
  Use ``histogram_quantile(0.5, sum(NAME_bucket) by (vmrange))``. Plus ``NAME_sum``, ``NAME_count``.
- zero_count becomes ``vmrange="0.000e+00...T"`` with T = zero_threshold in ``%.3e``
  (threshold 1 → ``0.000e+00...1.000e+00``, threshold 0 → ``0.000e+00...0.000e+00``): VM keeps
  zero_threshold as the zero bucket's upper bound.
- Negative exponential buckets are NOT stored correctly (they land on wrong positive vmranges):
  don't test negative values through VM.
- Every resource attribute becomes a label on every series, dots → underscores
  (``service_name``, ``service_instance_id``, ``host_name``...); point attributes too
  (``net.iface`` → ``net_iface``); ints/bools as text ("3", "true"). The scope is not a label.
- DELTA temporality (sums, histograms, exponential histograms) is silently dropped: HTTP 200, no
  partial_success, only a log line "unsupported delta temporality for ... skipping it". Test delta
  export against GrpcMetricsReceiver / ScriptedHttpServer instead.
- A u64 counter above 2^63-1 is sent as a double and stored as float.
- Samples keep the point's time_unix_nano (ms precision). Instant queries look back 5 minutes, so
  push points with current timestamps.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
VM_CACHE = REPO / ".cache" / "victoria-metrics"
VM_BINARY = VM_CACHE / "usr" / "bin" / "victoria-metrics"
FETCH_SCRIPT = REPO / "scripts" / "victoria-metrics"


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (e.g. the binary could not be fetched); tests should skip."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def victoria_metrics_binary() -> Path:
    """The VictoriaMetrics binary, fetched with scripts/victoria-metrics on first use."""
    if VM_BINARY.is_file():
        return VM_BINARY
    try:
        result = subprocess.run(
            [str(FETCH_SCRIPT), "fetch", str(VM_CACHE)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BackendUnavailable(f"cannot fetch victoria-metrics: {error}") from error
    if result.returncode != 0 or not VM_BINARY.is_file():
        raise BackendUnavailable(
            f"cannot fetch victoria-metrics (exit {result.returncode}): "
            f"{result.stderr.strip()[-2000:]}"
        )
    return VM_BINARY


class Sample(NamedTuple):
    labels: dict[str, str]  # includes __name__
    value: float


class VictoriaMetrics:
    """A VictoriaMetrics process on 127.0.0.1 with its own storage directory."""

    def __init__(self, storage_dir: Path | None = None, *, binary: Path | None = None):
        self.binary = binary or victoria_metrics_binary()
        self._owns_storage = storage_dir is None
        self.storage_dir = Path(storage_dir or tempfile.mkdtemp(prefix="otelbpf-vm-"))
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self.log_path = self.storage_dir / "victoria-metrics.log"

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("VictoriaMetrics is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def otlp_http_endpoint(self) -> str:
        """Base URL for OTLP/HTTP exporters: they append /v1/metrics."""
        return f"{self.url}/opentelemetry"

    def start(self, timeout: float = 20.0) -> VictoriaMetrics:
        if self._process is not None:
            return self
        if self.port is None:
            self.port = free_port()
        log = open(self.log_path, "ab")
        self._process = subprocess.Popen(
            [
                str(self.binary),
                f"-storageDataPath={self.storage_dir / 'data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-search.latencyOffset=0s",
                "-search.disableCache",
                "-opentelemetry.usePrometheusNaming",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait_ready(timeout)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port; stored data is kept."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and delete the storage directory if we created it."""
        self.stop()
        if self._owns_storage:
            shutil.rmtree(self.storage_dir, ignore_errors=True)

    def __enter__(self) -> VictoriaMetrics:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def force_flush(self) -> None:
        """Make just-ingested samples visible to queries."""
        self._get("/internal/force_flush")

    def query(self, promql: str, *, at: float | None = None, flush: bool = True) -> list[Sample]:
        """Instant query at ``at`` (default: now); returns one Sample per series.

        The time is always sent with millisecond precision: VictoriaMetrics' default "now" is
        truncated to the second, which hides samples pushed less than a second ago.
        """
        if flush:
            self.force_flush()
        params = {"query": promql, "time": f"{time.time() if at is None else at:.3f}"}
        data = json.loads(self._get("/api/v1/query?" + urllib.parse.urlencode(params)))
        if data.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {data}")
        result = data["data"]
        if result["resultType"] == "scalar":
            return [Sample({}, float(result["result"][1]))]
        return [Sample(s["metric"], float(s["value"][1])) for s in result["result"]]

    def wait_for(self, promql: str, *, series: int = 1, timeout: float = 10.0) -> list[Sample]:
        """Poll until the query returns at least ``series`` series (data an agent pushes later)."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.query(promql)
            if len(samples) >= series or time.monotonic() > deadline:
                return samples
            time.sleep(0.1)

    def value(self, promql: str, *, timeout: float = 0.0) -> float:
        """The value of a query that must return exactly one series (waiting up to ``timeout``)."""
        samples = self.wait_for(promql, timeout=timeout) if timeout else self.query(promql)
        if len(samples) != 1:
            raise AssertionError(f"{promql!r}: expected one series, got {samples}")
        return samples[0].value

    def metric_names(self) -> list[str]:
        self.force_flush()
        data = json.loads(self._get("/api/v1/label/__name__/values"))
        return sorted(data["data"])

    def export_series(self, match: str = '{__name__=~".+"}') -> list[dict]:
        """Raw stored samples (``/api/v1/export``): dicts with metric, values, timestamps."""
        self.force_flush()
        params = {"match[]": match, "end": f"{time.time() + 1:.3f}"}  # default end is whole seconds
        text = self._get("/api/v1/export?" + urllib.parse.urlencode(params))
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.read().decode()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BackendUnavailable(
                    f"victoria-metrics exited with {self._process.returncode}:\n"
                    f"{self.log_text()[-3000:]}"
                )
            try:
                if self._get("/health").strip() == "OK":
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise BackendUnavailable(
            f"victoria-metrics not ready after {timeout}s:\n{self.log_text()[-3000:]}"
        )


@dataclass
class ReceivedExport:
    request: object  # ExportMetricsServiceRequest
    metadata: dict[str, str]  # invocation metadata, keys lowercase


class GrpcMetricsReceiver:
    """An in-process OTLP/gRPC MetricsService on 127.0.0.1 that records what it receives.

    ``fail_next(n)`` makes the next n calls fail (UNAVAILABLE by default, optionally with a
    google.rpc.RetryInfo delay) before they are recorded; ``answer_late(n, delay)`` makes the next
    n calls record the request and then wait ``delay`` seconds before answering (past the
    client's deadline: stored, but the client cannot know); ``rejected_points`` makes successful
    calls answer with a partial success.
    """

    def __init__(
        self, tls: TestCertificates | None = None, require_client_cert: bool = False
    ) -> None:
        """``tls``: serve TLS with ``tls.server_cert``; ``require_client_cert``: mutual TLS."""
        self._tls = tls
        self._require_client_cert = require_client_cert
        self.received: list[ReceivedExport] = []
        self.calls = 0  # every call, failed ones included
        self.rejected_points = 0
        self.rejected_message = ""
        self._failures: list[tuple[object, str, float | None]] = []
        self._late: list[float] = []
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self._server = None
        self.port: int | None = None

    @property
    def endpoint(self) -> str:
        """Endpoint for OtlpGrpcExporter: http:// (plaintext) or https:// when serving TLS."""
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> GrpcMetricsReceiver:
        import grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc

        receiver = self

        class Servicer(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):  # noqa: N802 - generated interface
                return receiver._handle(request, context)

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Servicer(), self._server)
        if self._tls is None:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
        else:
            tls = self._tls
            credentials = grpc.ssl_server_credentials(
                [(tls.server_key.read_bytes(), tls.server_cert.read_bytes())],
                root_certificates=tls.ca_cert.read_bytes() if self._require_client_cert else None,
                require_client_auth=self._require_client_cert,
            )
            self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def __enter__(self) -> GrpcMetricsReceiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fail_next(
        self, n: int, code=None, message: str = "try again", retry_delay: float | None = None
    ) -> None:
        import grpc

        with self._lock:
            self._failures.extend([(code or grpc.StatusCode.UNAVAILABLE, message, retry_delay)] * n)

    def answer_late(self, n: int, delay: float) -> None:
        with self._lock:
            self._late.extend([delay] * n)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedExport]:
        with self._condition:
            if not self._condition.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(f"received {len(self.received)} exports, expected {count}")
            return list(self.received)

    def _handle(self, request, context):
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceResponse,
        )

        with self._lock:
            self.calls += 1
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            code, message, retry_delay = failure
            if retry_delay is not None:
                details = _status_with_retry_info(code, message, retry_delay)
                context.set_trailing_metadata((("grpc-status-details-bin", details),))
            context.abort(code, message)
        metadata = {k.lower(): v for k, v in context.invocation_metadata()}
        with self._condition:
            self.received.append(ReceivedExport(request, metadata))
            self._condition.notify_all()
            delay = self._late.pop(0) if self._late else 0.0
        if delay:
            time.sleep(delay)
        response = ExportMetricsServiceResponse()
        if self.rejected_points:
            response.partial_success.rejected_data_points = self.rejected_points
            response.partial_success.error_message = self.rejected_message
        return response


def _status_with_retry_info(code, message: str, delay: float) -> bytes:
    from google.rpc import error_details_pb2, status_pb2

    info = error_details_pb2.RetryInfo()
    info.retry_delay.seconds = int(delay)
    info.retry_delay.nanos = int((delay - int(delay)) * 1e9)
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(info)
    return status.SerializeToString()


@dataclass
class ReceivedPost:
    path: str
    headers: dict[str, str]  # keys lowercase
    body: bytes  # as sent (still gzip-compressed if it was)

    def request(self):
        """The body decoded as ExportMetricsServiceRequest (gunzipped when needed)."""
        import gzip

        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )

        body = self.body
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        return request


class ScriptedHttpServer:
    """A loopback HTTP server answering POSTs from a script of responses, recording each request.

    ``respond(status, body=b"", headers=None, delay=0.0)`` queues one response, sent ``delay``
    seconds after the request was stored (longer than the client's timeout: a request received
    whose answer never arrives); when the queue is empty it answers 200 with an empty body (an
    OTLP full success).
    """

    def __init__(self, ssl_context=None) -> None:
        """``ssl_context``: a server-side ssl.SSLContext to serve HTTPS instead of HTTP."""
        self.received: list[ReceivedPost] = []
        self._ssl_context = ssl_context
        self._script: list[tuple[int, bytes, dict[str, str], float]] = []
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def respond(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        with self._lock:
            self._script.append((status, body, dict(headers or {}), delay))

    def start(self) -> ScriptedHttpServer:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server interface
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with owner._lock:
                    owner.received.append(ReceivedPost(self.path, headers, body))
                    script = owner._script
                    status, reply, headers, delay = script.pop(0) if script else (200, b"", {}, 0.0)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a delayed answer)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self._ssl_context is not None:
            self._server.socket = self._ssl_context.wrap_socket(
                self._server.socket, server_side=True
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedHttpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class TestCertificates:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate."""

    __test__ = False  # not a pytest test class

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def create(cls, directory: Path) -> TestCertificates:
        """Generate with the openssl command line (raises BackendUnavailable without it)."""
        if shutil.which("openssl") is None:
            raise BackendUnavailable("openssl not found")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)

        def run(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=otelbpf test CA", "-keyout", "ca.key", "-out", "ca.pem")
        for name, extension in (
            ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
            ("client", "extendedKeyUsage=clientAuth"),
        ):
            (d / f"{name}.ext").write_text(extension + "\n")
            run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=otelbpf test {name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
            run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
        return cls(
            d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key"
        )

    def server_ssl_context(self, require_client_cert: bool = False):
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca_cert)
        return context


class GrpcTraceReceiver:
    """An in-process OTLP/gRPC receiver on 127.0.0.1 for traces (TraceService, every request
    kept in ``requests``) that also accepts metrics (MetricsService, answered and dropped), so an
    agent exporting both to one endpoint works against it."""

    def __init__(self) -> None:
        self.requests: list = []
        self._condition = threading.Condition()
        self._server = None
        self.port: int | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[tuple]:
        """(resource attributes, span) for every span received, in arrival order."""
        out = []
        with self._condition:
            requests = list(self.requests)
        for request in requests:
            for rs in request.resource_spans:
                resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                out += [(resource, span) for ss in rs.scope_spans for span in ss.spans]
        return out

    def start(self) -> GrpcTraceReceiver:
        import grpc
        from opentelemetry.proto.collector.metrics.v1 import (metrics_service_pb2,
                                                              metrics_service_pb2_grpc)
        from opentelemetry.proto.collector.trace.v1 import (trace_service_pb2,
                                                            trace_service_pb2_grpc)

        receiver = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):  # noqa: N802 - generated interface
                with receiver._condition:
                    receiver.requests.append(request)
                    receiver._condition.notify_all()
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):  # noqa: N802 - generated interface
                return metrics_service_pb2.ExportMetricsServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def __enter__(self) -> GrpcTraceReceiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
