"""OtlpHttpExporter against a scripted loopback server: wire format, errors, TLS, secrets."""

from __future__ import annotations

import gzip
import time

import pytest
from backends import ScriptedHttpServer, free_port
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)

from otelbpf.export.encode import encode
from otelbpf.export.exporter import ReliableExporter, build_exporter
from otelbpf.export.http import OtlpHttpExporter, metrics_url, parse_retry_after
from otelbpf.export.transport import REDACTED, SendStatus
from otelbpf.metrics.model import Metric, MetricBatch, MetricKind, NumberPoint, Resource

from .conftest import export_config

TOKEN = "Bearer sk-live-0123456789abcdef"
RESOURCE = Resource((("service.name", "t"),))
BATCHES = [MetricBatch("s", (Metric("c", "", "", MetricKind.SUM, (NumberPoint((), 5, 2, 1),)),))]
REQUEST = encode(RESOURCE, BATCHES)


@pytest.mark.parametrize(
    "base, url",
    [
        ("http://h:4318", "http://h:4318/v1/metrics"),
        ("http://h:4318/", "http://h:4318/v1/metrics"),
        ("http://h:8428/opentelemetry", "http://h:8428/opentelemetry/v1/metrics"),
        ("https://h/otlp/v1/metrics", "https://h/otlp/v1/metrics"),
        ("https://h/otlp/v1/metrics/", "https://h/otlp/v1/metrics"),
        ("http://h/otlp?tenant=1", "http://h/otlp/v1/metrics?tenant=1"),
    ],
)
def test_metrics_url(base, url):
    assert metrics_url(base) == url


def test_endpoint_without_scheme_is_rejected():
    with pytest.raises(ValueError, match="http:// or https://"):
        metrics_url("localhost:4318")


def test_posts_protobuf_with_headers(http_server):
    headers = {"Authorization": TOKEN, "X-Scope-OrgID": "t1"}
    exporter = OtlpHttpExporter(http_server.url, headers=headers)
    assert exporter.send(REQUEST, 5).status is SendStatus.SUCCESS
    (post,) = http_server.received
    assert post.path == "/v1/metrics"
    assert post.headers["content-type"] == "application/x-protobuf"
    assert post.headers["authorization"] == TOKEN
    assert post.headers["x-scope-orgid"] == "t1"
    assert post.headers["user-agent"].startswith("otelbpf/")
    assert "content-encoding" not in post.headers
    assert post.request() == REQUEST


def test_gzip(http_server):
    OtlpHttpExporter(http_server.url, compression="gzip").send(REQUEST, 5)
    (post,) = http_server.received
    assert post.headers["content-encoding"] == "gzip"
    assert gzip.decompress(post.body) == REQUEST.SerializeToString()


def test_partial_success_is_parsed(http_server):
    response = ExportMetricsServiceResponse()
    response.partial_success.rejected_data_points = 3
    response.partial_success.error_message = "3 points too old"
    protobuf = {"Content-Type": "application/x-protobuf"}
    http_server.respond(200, response.SerializeToString(), protobuf)
    result = OtlpHttpExporter(http_server.url).send(REQUEST, 5)
    assert result.status is SendStatus.SUCCESS
    assert (result.rejected_points, result.message) == (3, "3 points too old")


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses(http_server, status):
    http_server.respond(status, b"busy", {"Retry-After": "3"})
    result = OtlpHttpExporter(http_server.url).send(REQUEST, 5)
    assert result.status is SendStatus.RETRYABLE
    assert result.retry_after == 3.0
    assert f"HTTP {status}" in result.message


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 500])
def test_permanent_statuses_carry_the_body(http_server, status):
    text = {"Content-Type": "text/plain"}
    http_server.respond(status, b"delta temporality is not supported", text)
    result = OtlpHttpExporter(http_server.url).send(REQUEST, 5)
    assert result.status is SendStatus.PERMANENT
    assert f"HTTP {status}" in result.message
    assert "delta temporality is not supported" in result.message


def test_status_protobuf_error_body(http_server):
    body = status_pb2.Status(code=3, message="bad metric name").SerializeToString()
    http_server.respond(400, body, {"Content-Type": "application/x-protobuf"})
    result = OtlpHttpExporter(http_server.url).send(REQUEST, 5)
    assert result.message.endswith(": bad metric name")


def test_redirect_is_not_followed(http_server):
    http_server.respond(301, b"", {"Location": "http://127.0.0.1:1/elsewhere"})
    result = OtlpHttpExporter(http_server.url).send(REQUEST, 5)
    assert result.status is SendStatus.PERMANENT
    assert "redirected to http://127.0.0.1:1/elsewhere" in result.message
    assert len(http_server.received) == 1


def test_connection_refused_is_retryable():
    result = OtlpHttpExporter(f"http://127.0.0.1:{free_port()}").send(REQUEST, 2)
    assert result.status is SendStatus.RETRYABLE
    assert "refused" in result.message.lower()


def test_timeout_is_retryable():
    import socket

    with socket.socket() as listener:  # accepts the connection, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        result = OtlpHttpExporter(url).send(REQUEST, 0.3)
    assert result.status is SendStatus.RETRYABLE
    assert "timed out" in result.message


def test_server_echoing_the_token_is_redacted(http_server):
    http_server.respond(401, f"invalid credentials: {TOKEN}".encode())
    result = OtlpHttpExporter(http_server.url, headers={"Authorization": TOKEN}).send(REQUEST, 5)
    assert TOKEN not in result.message and "sk-live" not in result.message
    assert "<redacted>" in result.message


def test_retry_after_forms():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_503_then_200_through_the_reliable_exporter(http_server, captured_logs):
    http_server.respond(503, b"overloaded")
    http_server.respond(503, b"overloaded", {"Retry-After": "0"})
    transport = OtlpHttpExporter(http_server.url, headers={"Authorization": TOKEN})
    exporter = ReliableExporter(transport, timeout=5, initial_backoff=0.01, max_backoff=0.05)
    outcome = exporter.export(RESOURCE, BATCHES)
    assert outcome.success and outcome.attempts == 3
    assert len(http_server.received) == 3
    assert all(p.headers["authorization"] == TOKEN for p in http_server.received)
    assert [(e["event"], e["log_level"]) for e in captured_logs] == [
        ("export failed, retrying", "debug")] * 2 + [("export recovered after retries", "warning")]
    assert captured_logs[-1]["attempts"] == 3
    assert TOKEN not in repr(captured_logs) and "sk-live" not in repr(captured_logs)


def test_header_values_never_logged(http_server, captured_logs, capsys):
    """Configure, fail permanently, retry and drop: no log line may carry the token."""
    config = export_config(endpoint=http_server.url,
                           headers={"Authorization": TOKEN, "api-key": "k-9876543210"},
                           compression="gzip", timeout=2.0, max_backoff=0.02)
    exporter = build_exporter(config, max_elapsed=0.5)
    http_server.respond(403, f"token {TOKEN} revoked".encode())
    assert not exporter.export(RESOURCE, BATCHES).success
    for _ in range(1000):  # more 503s than retries fit in max_elapsed, however fast they run
        http_server.respond(503, b"")
    assert not exporter.export(RESOURCE, BATCHES).success
    configured = captured_logs[0]
    assert configured["event"] == "exporter configured"
    assert configured["header_names"] == ["api-key", "authorization"]
    printed = capsys.readouterr()
    text = repr(captured_logs) + printed.out + printed.err + repr(exporter.describe())
    for secret in (TOKEN, "sk-live", "k-9876543210"):
        assert secret not in text
    assert {e["log_level"] for e in captured_logs} >= {"info", "debug", "error"}


def test_https_with_ca_file(certificates):
    with ScriptedHttpServer(certificates.server_ssl_context()) as server:
        trusted = OtlpHttpExporter(server.url, certificate=certificates.ca_cert)
        assert trusted.send(REQUEST, 5).status is SendStatus.SUCCESS
        untrusted = OtlpHttpExporter(server.url).send(REQUEST, 5)
        assert untrusted.status is SendStatus.PERMANENT
        assert "not trusted" in untrusted.message


def test_https_with_client_certificate(certificates):
    context = certificates.server_ssl_context(require_client_cert=True)
    with ScriptedHttpServer(context) as server:
        exporter = OtlpHttpExporter(
            server.url,
            certificate=certificates.ca_cert,
            client_certificate=certificates.client_cert,
            client_key=certificates.client_key,
        )
        assert exporter.send(REQUEST, 5).status is SendStatus.SUCCESS
        without = OtlpHttpExporter(server.url, certificate=certificates.ca_cert).send(REQUEST, 5)
        assert without.status is not SendStatus.SUCCESS
    assert len(server.received) == 1


@pytest.mark.parametrize("value", ["line\nbreak", "tab\there", "non-ascii-é"])
def test_unsendable_header_values_are_refused_without_showing_them(value):
    from otelbpf.export.grpc import OtlpGrpcExporter

    for make in (OtlpHttpExporter, OtlpGrpcExporter):
        with pytest.raises(ValueError) as error:
            make("http://127.0.0.1:1", headers={"Authorization": value})
        assert "'Authorization'" in str(error.value) and value not in str(error.value)


def test_missing_tls_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read .*missing.pem"):
        OtlpHttpExporter("https://127.0.0.1:1", certificate=tmp_path / "missing.pem")


def test_user_agent_can_be_overridden(http_server):
    OtlpHttpExporter(http_server.url, headers={"user-agent": "custom/1"}).send(REQUEST, 5)
    assert http_server.received[0].headers["user-agent"] == "custom/1"


LONG_TOKEN = "glc_" + "".join(f"{i:03d}x" for i in range(200))  # 804 characters, all distinct runs


@pytest.mark.parametrize("prefix_length", [0, 300, 490, 505, 511])
def test_long_token_crossing_the_truncation_boundary_is_redacted(http_server, prefix_length):
    """Messages are cut at 512 characters: the token must go before the cut can split it."""
    http_server.respond(401, ("p" * prefix_length + f" bad key Bearer {LONG_TOKEN} end").encode())
    exporter = OtlpHttpExporter(http_server.url, headers={"Authorization": f"Bearer {LONG_TOKEN}"})
    result = exporter.send(REQUEST, 5)
    assert result.message.startswith("HTTP 401")
    for start in range(0, len(LONG_TOKEN) - 8):
        assert LONG_TOKEN[start:start + 8] not in result.message


@pytest.mark.parametrize("echo", [
    LONG_TOKEN[:40],  # the server cut the token itself
    LONG_TOKEN[100:180],  # a piece from the middle
    "\n".join([LONG_TOKEN[:30], LONG_TOKEN[30:60]]),  # wrapped across lines
])
def test_partial_and_prefixless_echoes_are_redacted(http_server, echo):
    http_server.respond(403, f"token {echo} is not allowed".encode())
    exporter = OtlpHttpExporter(http_server.url, headers={"Authorization": f"Bearer {LONG_TOKEN}"})
    result = exporter.send(REQUEST, 5)
    assert "is not allowed" in result.message and REDACTED in result.message
    for piece in echo.split("\n"):
        for start in range(0, len(piece) - 8):
            assert piece[start:start + 8] not in result.message


def test_basic_auth_password_echoed_decoded_is_redacted(http_server):
    import base64

    credential = base64.b64encode(b"123456:glc_s3cr3t-password").decode()
    http_server.respond(401, b"user 123456 password glc_s3cr3t-password rejected")
    exporter = OtlpHttpExporter(http_server.url, headers={"Authorization": f"Basic {credential}"})
    message = exporter.send(REQUEST, 5).message
    assert "s3cr3t" not in message and "rejected" in message


def test_http_json_posts_the_otlp_json_mapping(http_server, tmp_path):
    """OTEL_EXPORTER_OTLP_PROTOCOL=http/json through the config: camelCase names, enums as
    integers, and a body that parses back into the same request."""
    import json

    from google.protobuf import json_format
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    from otelbpf.config.agent import parse_agent_config

    cfg = parse_agent_config("", tmp_path / "otelbpf.toml",
                             {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
                              "OTEL_EXPORTER_OTLP_ENDPOINT": http_server.url,
                              "OTEL_EXPORTER_OTLP_COMPRESSION": "none"})
    exporter = build_exporter(cfg.export)
    http_server.respond(200, b'{"partialSuccess": {"rejectedDataPoints": "1", "errorMessage": "x"}}',
                        {"Content-Type": "application/json"})
    outcome = exporter.export(RESOURCE, BATCHES)
    assert outcome.success and outcome.rejected_points == 1
    (post,) = http_server.received
    assert post.path == "/v1/metrics" and post.headers["content-type"] == "application/json"
    body = json.loads(post.body)
    metric = body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]
    assert metric["sum"]["aggregationTemporality"] == 2  # CUMULATIVE as an integer
    assert metric["sum"]["dataPoints"][0]["asInt"] == "5"
    parsed = json_format.Parse(post.body, ExportMetricsServiceRequest())
    assert parsed.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0].as_int == 5


def test_victoria_metrics_refusing_json_gets_a_hint(tmp_path):
    from backends import BackendUnavailable, VictoriaMetrics

    from otelbpf.export.diagnose import check_export

    try:
        vm = VictoriaMetrics().start()
    except BackendUnavailable as error:
        pytest.skip(str(error))
    try:
        result = check_export(OtlpHttpExporter(vm.otlp_http_endpoint, encoding="json"), RESOURCE, 5)
    finally:
        vm.close()
    assert not result.ok and "http/protobuf" in result.hint


@pytest.mark.parametrize("tls", [False, True])
def test_one_connection_is_kept_alive_across_exports(certificates, tls):
    context = certificates.server_ssl_context() if tls else None
    with ScriptedHttpServer(context, keep_alive=True) as server:
        exporter = OtlpHttpExporter(server.url, certificate=certificates.ca_cert if tls else None)
        try:
            for _ in range(5):
                assert exporter.send(REQUEST, 5).ok
        finally:
            exporter.close()
    assert len(server.received) == 5
    assert len({post.client_port for post in server.received}) == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_without_losing_the_export():
    with ScriptedHttpServer(keep_alive=True) as server:
        server.respond(200, close=True)  # closes after answering, without saying so
        exporter = OtlpHttpExporter(server.url)
        try:
            assert exporter.send(REQUEST, 5).ok
            time.sleep(0.3)  # idle: the server's close reaches the client before the next export
            second = exporter.send(REQUEST, 5)
            third = exporter.send(REQUEST, 5)
        finally:
            exporter.close()
    assert second.ok and third.ok
    ports = [post.client_port for post in server.received]
    assert len(ports) == 3 and ports[0] != ports[1] == ports[2]


def test_a_server_that_announces_close_gets_a_new_connection(http_server):
    """HTTP/1.0 servers close after each response: every export still succeeds."""
    exporter = OtlpHttpExporter(http_server.url)
    try:
        assert all(exporter.send(REQUEST, 5).ok for _ in range(3))
    finally:
        exporter.close()
    assert len({post.client_port for post in http_server.received}) == 3


def test_https_through_a_connect_proxy(certificates, monkeypatch):
    """https_proxy is honoured: the export goes through a CONNECT tunnel to the receiver."""
    import select
    import socket
    import threading

    tunnels = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        client, _ = listener.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += client.recv(4096)
        tunnels.append(request.split(b"\r\n")[0].decode())
        host, port = request.split()[1].decode().rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        sockets = [client, upstream]
        while True:
            ready, _, _ = select.select(sockets, [], [], 5)
            if not ready:
                break
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    client.close()
                    upstream.close()
                    return
                (upstream if sock is client else client).sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with ScriptedHttpServer(certificates.server_ssl_context(), keep_alive=True) as server:
        url = server.url.replace("127.0.0.1", "localhost")
        exporter = OtlpHttpExporter(url, certificate=certificates.ca_cert)
        try:
            assert exporter.send(REQUEST, 5).ok
        finally:
            exporter.close()
    listener.close()
    assert tunnels and tunnels[0].startswith("CONNECT localhost:")
    assert len(server.received) == 1
