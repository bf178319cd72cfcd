"""`otelbpf check` builds the exporter; `check --export` sends one export to a real local server
and explains the usual failures. Export-setting mistakes end `run` and `check` with exit 2 and one
line; an unexpected exception with exit 1 and one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from agentproc import REPO, write_agent_config
from backends import (BackendUnavailable, GrpcMetricsReceiver, ScriptedHttpServer,
                      TestCertificates, VictoriaMetrics, free_port)

from otelbpf import cli

SECRET = "s3cr3t-password-0123456789"


def otelbpf(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otelbpf", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, env=env)


def config_for(tmp_path, endpoint: str, protocol: str = "http/protobuf", extra: str = ""):
    programs = tmp_path / "conf.d"
    programs.mkdir(exist_ok=True)
    return write_agent_config(tmp_path, endpoint=endpoint, programs=[], programs_dir=programs,
                              protocol=protocol, extra=extra)


def export_lines(out: subprocess.CompletedProcess) -> list[str]:
    lines = out.stdout.splitlines()
    found = [line for i, line in enumerate(lines)
             if " export " in line or (i and " export " in lines[i - 1] and "hint:" in line)]
    assert "Traceback" not in out.stdout + out.stderr
    return found


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> TestCertificates:
    try:
        return TestCertificates.create(tmp_path_factory.mktemp("certs"))
    except BackendUnavailable as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def authenticated_vm():
    """VictoriaMetrics demanding basic auth on every path, OTLP included: the gateway pattern."""
    try:
        vm = VictoriaMetrics(basic_auth=("otelbpf", SECRET)).start()
    except BackendUnavailable as error:
        pytest.skip(str(error))
    yield vm
    vm.close()


def basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_check_builds_the_exporter_without_sending(tmp_path):
    with ScriptedHttpServer() as server:
        out = otelbpf("check", "--config", str(config_for(tmp_path, server.url)))
        assert out.returncode == 0, out.stdout + out.stderr
        assert any(line.startswith("ok   export http/protobuf") and "not sent" in line
                   for line in export_lines(out))
        assert server.received == []


def test_check_export_accepted_by_victoria_metrics(tmp_path, authenticated_vm):
    env = {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization={basic('otelbpf', SECRET)}",
           "OTEL_SERVICE_NAME": f"check-{tmp_path.name}", "PATH": "/usr/bin:/bin"}
    out = otelbpf("check", "--export", "--config",
                  str(config_for(tmp_path, authenticated_vm.otlp_http_endpoint)), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert any("accepted one data point" in line for line in export_lines(out))
    value = authenticated_vm.value(f'otelbpf_check{{service_name="check-{tmp_path.name}"}}',
                                   timeout=10)
    assert value == 1


def test_check_export_wrong_password_is_a_credentials_error(tmp_path, authenticated_vm):
    wrong = "wrong-password-9876543210"
    env = {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization={basic('otelbpf', wrong)}",
           "PATH": "/usr/bin:/bin"}
    out = otelbpf("check", "--export", "--config",
                  str(config_for(tmp_path, authenticated_vm.otlp_http_endpoint)), env=env)
    assert out.returncode == 1
    fail, hint = export_lines(out)
    assert fail.startswith("FAIL export") and "HTTP 401" in fail
    assert "credentials" in hint
    assert wrong not in out.stdout + out.stderr
    assert basic("otelbpf", wrong).split()[1] not in out.stdout + out.stderr


@pytest.mark.parametrize("backend", ["victoria-metrics", "404"])
def test_check_export_base_url_mistake_is_explained(tmp_path, authenticated_vm, backend):
    """VictoriaMetrics serves OTLP under /opentelemetry and answers other paths with 400
    "unsupported path"; a collector answers 404."""
    env = {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization={basic('otelbpf', SECRET)}",
           "PATH": "/usr/bin:/bin"}
    with ScriptedHttpServer() as server:
        server.respond(404, b"404 page not found")
        url = authenticated_vm.url if backend == "victoria-metrics" else server.url
        out = otelbpf("check", "--export", "--config", str(config_for(tmp_path, url)), env=env)
    assert out.returncode == 1
    fail, hint = export_lines(out)
    assert "/v1/metrics" in hint and "base URL" in hint, fail


def test_check_export_connection_refused(tmp_path):
    out = otelbpf("check", "--export", "--config",
                  str(config_for(tmp_path, f"http://127.0.0.1:{free_port()}")))
    assert out.returncode == 1
    fail, hint = export_lines(out)
    assert "cannot connect" in hint and "refused" in hint.lower() and "4318" in hint


def test_check_export_http_aimed_at_a_grpc_port(tmp_path):
    with GrpcMetricsReceiver() as receiver:
        out = otelbpf("check", "--export", "--config", str(config_for(tmp_path, receiver.endpoint)))
    assert out.returncode == 1
    fail, hint = export_lines(out)
    assert "speaks gRPC" in hint and 'protocol = "grpc"' in hint


def test_check_export_grpc_aimed_at_an_http_port(tmp_path):
    with ScriptedHttpServer() as server:
        out = otelbpf("check", "--export", "--config",
                      str(config_for(tmp_path, server.url, protocol="grpc")))
    assert out.returncode == 1
    fail, hint = export_lines(out)
    assert "speaks HTTP/1.1" in hint and "http/protobuf" in hint


def test_check_export_grpc_accepted(tmp_path):
    with GrpcMetricsReceiver() as receiver:
        out = otelbpf("check", "--export", "--config",
                      str(config_for(tmp_path, receiver.endpoint, protocol="grpc")))
        assert out.returncode == 0, out.stdout + out.stderr
        assert len(receiver.received) == 1


def test_check_export_tls_against_a_plaintext_port(tmp_path):
    with ScriptedHttpServer() as server:
        url = server.url.replace("http://", "https://")
        out = otelbpf("check", "--export", "--config", str(config_for(tmp_path, url)))
    assert out.returncode == 1
    fail, hint = export_lines(out)
    assert "does not speak TLS" in hint and "http://" in hint


def test_check_export_plaintext_against_a_tls_port(tmp_path, certificates):
    with ScriptedHttpServer(ssl_context=certificates.server_ssl_context()) as server:
        url = server.url.replace("https://", "http://")
        out = otelbpf("check", "--export", "--config", str(config_for(tmp_path, url)))
    assert out.returncode == 1
    fail, hint = export_lines(out)
    assert "expects TLS" in hint and "https://" in hint


def test_check_export_grpc_tls_against_plaintext(tmp_path):
    with GrpcMetricsReceiver() as receiver:
        url = receiver.endpoint.replace("http://", "https://")
        out = otelbpf("check", "--export", "--config",
                      str(config_for(tmp_path, url, protocol="grpc")))
    assert out.returncode == 1
    fail, hint = export_lines(out)
    assert "does not speak TLS" in hint


@pytest.mark.parametrize("command", ["run", "check"])
def test_bad_pem_file_is_exit_2_with_one_line(tmp_path, command):
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nnot really\n")
    config = config_for(tmp_path, "https://127.0.0.1:4318", extra="")
    text = config.read_text().replace("[export]", f'[export]\ncertificate = "{tmp_path / "ca.pem"}"')
    config.write_text(text)
    out = otelbpf(command, "--config", str(config))
    assert out.returncode == 2, out.stdout + out.stderr
    message = (out.stdout if command == "check" else out.stderr).strip().splitlines()
    problem = [line for line in message if "certificate" in line]
    assert len(problem) == 1 and "not a PEM CA certificate" in problem[0] and "fix:" in problem[0]
    assert "Traceback" not in out.stdout + out.stderr


def test_control_character_header_from_environment_is_exit_2(tmp_path):
    env = {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{SECRET}%0D%0AX-Evil:%201",
           "PATH": "/usr/bin:/bin"}
    out = otelbpf("run", "--config", str(config_for(tmp_path, "http://127.0.0.1:4318")), env=env)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert "OTEL_EXPORTER_OTLP_HEADERS" in line and "control characters" in line
    assert SECRET not in line


def test_unexpected_exception_is_one_line_and_exit_1(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(cli, "cmd_check", broken)
    assert cli.main(["check"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected error: RuntimeError: something nobody expected" in err
    assert "Traceback" not in err


def test_unexpected_exception_traceback_in_the_debug_log(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "cmd_check", broken)
    assert cli.main(["check", "--log-level", "debug", "--log-format", "json"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "unexpected error" in err


def test_check_export_grpc_plaintext_against_a_tls_port(tmp_path, certificates):
    with GrpcMetricsReceiver(tls=certificates) as receiver:
        url = receiver.endpoint.replace("https://", "http://")
        out = otelbpf("check", "--export", "--config",
                      str(config_for(tmp_path, url, protocol="grpc")))
    assert out.returncode == 1
    fail, hint = export_lines(out)
    assert "expects TLS" in hint and "https://" in hint


def test_check_export_http_403_is_a_credentials_error(tmp_path):
    with ScriptedHttpServer() as server:
        server.respond(403, b"token lacks the metrics:write scope")
        out = otelbpf("check", "--export", "--config", str(config_for(tmp_path, server.url)))
    assert out.returncode == 1
    fail, hint = export_lines(out)
    assert "HTTP 403" in fail and "metrics:write" in fail and "credentials" in hint


def test_check_export_grpc_unauthenticated_is_a_credentials_error(tmp_path):
    import grpc

    with GrpcMetricsReceiver() as receiver:
        receiver.fail_next(1, grpc.StatusCode.UNAUTHENTICATED, "bad api key")
        out = otelbpf("check", "--export", "--config",
                      str(config_for(tmp_path, receiver.endpoint, protocol="grpc")))
    assert out.returncode == 1
    fail, hint = export_lines(out)
    assert "UNAUTHENTICATED" in fail and "credentials" in hint
