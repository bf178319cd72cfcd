"""`otelbpf run --once` as a user runs it: one interval counted in the kernel, one export, exit code
saying whether it was accepted. Against VictoriaMetrics behind basic auth (the gateway pattern of
Grafana Cloud), and the console exporter printing delta when delta is configured."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from agentproc import REPO, programs_dir, write_agent_config
from backends import BackendUnavailable, VictoriaMetrics

pytestmark = pytest.mark.kernel

PASSWORD = "gateway-password-0123456789"


@pytest.fixture(scope="module")
def gateway():
    try:
        vm = VictoriaMetrics(basic_auth=("instance-123", PASSWORD)).start()
    except BackendUnavailable as error:
        pytest.skip(str(error))
    yield vm
    vm.close()


def run_once(config, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otelbpf", "run", "--once", "--config", str(config),
                           "--log-format", "json"],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env})


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"instance-123:{password}".encode()).decode()


def log_lines(out: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]


def test_basic_auth_through_the_environment_into_victoria_metrics(tmp_path, gateway, bpf_build,
                                                                   bpffs):
    """The TOML names the header; the credential comes from the environment via ${env:...}."""
    config = write_agent_config(tmp_path, endpoint=gateway.otlp_http_endpoint,
                                programs=["syscalls"], programs_dir=programs_dir(tmp_path, os.getpid()))
    config.write_text(config.read_text().replace(
        "[export]\n", '[export]\nheaders = { authorization = "${env:GATEWAY_AUTH}" }\n'))
    service = f"once-{tmp_path.name}"
    out = run_once(config, {"GATEWAY_AUTH": basic(PASSWORD), "OTEL_SERVICE_NAME": service})
    assert out.returncode == 0, out.stderr[-3000:]
    samples = gateway.wait_for(f'syscalls_total{{service_name="{service}"}}')
    assert samples, gateway.log_text()[-2000:]
    assert all(s.labels["os_version"] == os.uname().release for s in samples)
    assert PASSWORD not in out.stdout + out.stderr


def test_wrong_password_is_an_auth_error_in_the_log_and_exit_1(tmp_path, gateway, bpf_build,
                                                               bpffs):
    config = write_agent_config(tmp_path, endpoint=gateway.otlp_http_endpoint,
                                programs=["syscalls"], programs_dir=programs_dir(tmp_path, os.getpid()))
    wrong = "wrong-password-9876543210"
    out = run_once(config, {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization={basic(wrong)}"})
    assert out.returncode == 1, out.stderr[-3000:]
    failures = [e for e in log_lines(out) if e["event"].startswith("export failed permanently")]
    assert failures and "HTTP 401" in failures[0]["error"]
    assert "credentials" in failures[0]["error"] and failures[0]["logger"] == "otelbpf.export"
    assert wrong not in out.stderr and basic(wrong).split()[1] not in out.stderr


def test_console_exporter_prints_delta_and_warns_when_stdout_is_not_a_terminal(tmp_path, bpf_build,
                                                                               bpffs):
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                programs_dir=programs_dir(tmp_path, os.getpid()))
    config.write_text(config.read_text().replace("[export]\n", '[export]\ntemporality = "delta"\n'))
    out = run_once(config, {})
    assert out.returncode == 0, out.stderr[-3000:]
    headers = [line for line in out.stdout.splitlines() if line.strip().startswith("# syscalls:")]
    assert headers and all("delta" in line and "cumulative" not in line for line in headers), out.stdout
    # UpDownCounters stay cumulative under delta, as the OTel SDKs keep them
    assert "# process.memory.usage: sum, cumulative, non-monotonic" in out.stdout, out.stdout
    warnings = [e for e in log_lines(out) if "not a terminal" in e["event"]]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"
