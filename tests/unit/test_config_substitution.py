"""${env:NAME} in the agent and program TOML files, and the standard OTEL_* variables that set
agent-wide behaviour (interval, export timeout, exporter choice, disabling)."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelbpf.config.agent import load_agent_config
from otelbpf.config.program import load_program_config
from otelbpf.config.tables import parse_toml
from otelbpf.errors import ConfigErrors
from otelbpf.export.console import DiscardingExporter
from otelbpf.export.exporter import build_exporter


def agent(tmp_path: Path, text: str, environ: dict[str, str]):
    path = tmp_path / "otelbpf.toml"
    path.write_text(text)
    return load_agent_config(path, environ)


def errors(tmp_path: Path, text: str, environ: dict[str, str]):
    with pytest.raises(ConfigErrors) as info:
        agent(tmp_path, text, environ)
    return info.value.errors


def test_secret_header_and_endpoint_from_the_environment(tmp_path):
    text = """
[export]
endpoint = "${env:OTLP_ENDPOINT}"
headers = { authorization = "Basic ${env:GRAFANA_BASIC_AUTH}" }
"""
    cfg = agent(tmp_path, text, {"OTLP_ENDPOINT": "https://otlp.example.com/otlp",
                                 "GRAFANA_BASIC_AUTH": 'dXNlcjpw"YXNz\\'})
    assert cfg.export.endpoint == "https://otlp.example.com/otlp"
    # Substituted after parsing: quotes and backslashes from the environment stay as they are.
    assert cfg.export.headers["authorization"] == 'Basic dXNlcjpw"YXNz\\'


def test_default_escape_and_several_references(tmp_path):
    text = """
[agent]
interval = "${env:INTERVAL:-15s}"
[resource]
"deployment.environment.name" = "${env:ENV}-${env:REGION:-eu}"
literal = "$${env:NOT_SUBSTITUTED} costs $$5"
"""
    cfg = agent(tmp_path, text, {"ENV": "prod", "REGION": ""})
    assert cfg.interval == 15.0
    assert cfg.resource["deployment.environment.name"] == "prod-eu"  # empty counts as unset
    assert cfg.resource["literal"] == "${env:NOT_SUBSTITUTED} costs $$5"
    assert agent(tmp_path, text, {"ENV": "x", "INTERVAL": "1m"}).interval == 60.0


def test_unset_variable_names_file_entry_field_and_fix(tmp_path):
    text = '[export]\nheaders = { authorization = "Bearer ${env:API_TOKEN}" }\n'
    (error,) = errors(tmp_path, text, {})
    assert error.path == tmp_path / "otelbpf.toml"
    assert (error.entry, error.field) == ("export.headers", "authorization")
    assert "API_TOKEN is not set" in error.message and "${env:API_TOKEN:-" in error.fix


def test_set_but_empty_variable_is_empty(tmp_path):
    text = '[resource]\nteam = "${env:TEAM}"\n'
    assert agent(tmp_path, text, {"TEAM": ""}).resource["team"] == ""


@pytest.mark.parametrize("reference", ["${API_TOKEN}", "${env:}", "${env:1X}", "${file:/x}"])
def test_malformed_reference_is_an_error(tmp_path, reference):
    (error,) = errors(tmp_path, f'[resource]\nteam = "{reference}"\n', {"API_TOKEN": "x"})
    assert "is not an environment reference" in error.message and "$${" in error.fix


def test_arrays_are_substituted(tmp_path):
    data = parse_toml('[agent]\nprograms = ["${env:A}", "b"]\n', "x.toml", {"A": "syscalls"})
    assert data["agent"]["programs"] == ["syscalls", "b"]


def test_program_configs_are_substituted(tmp_path, monkeypatch):
    path = tmp_path / "syscalls.toml"
    path.write_text('object = "${env:OBJECTS}/syscalls.bpf.o"\n[[counters]]\nname = "syscalls"\n'
                    'map = "counts"\n')
    monkeypatch.setenv("OBJECTS", str(tmp_path / "objects"))
    try:
        config = load_program_config(path, tmp_path)
    except ConfigErrors as exc:  # a missing object is reported with the substituted path
        assert str(tmp_path / "objects" / "syscalls.bpf.o") in str(exc)
        assert "${env" not in str(exc)
    else:
        assert config.object == tmp_path / "objects" / "syscalls.bpf.o"


def test_export_interval_and_timeout_variables(tmp_path):
    cfg = agent(tmp_path, "", {"OTEL_METRIC_EXPORT_INTERVAL": "5000",
                               "OTEL_METRIC_EXPORT_TIMEOUT": "2500"})
    assert cfg.interval == 5.0 and cfg.export.export_timeout == 2.5
    assert agent(tmp_path, '[agent]\ninterval = "20s"',
                 {"OTEL_METRIC_EXPORT_INTERVAL": "5000"}).interval == 20.0  # the file wins
    assert agent(tmp_path, "", {}).export.export_timeout == 30.0
    (error,) = errors(tmp_path, "", {"OTEL_METRIC_EXPORT_INTERVAL": "10s"})
    assert error.field == "OTEL_METRIC_EXPORT_INTERVAL" and "milliseconds" in error.fix


def test_export_timeout_bounds_the_whole_export(tmp_path):
    cfg = agent(tmp_path, '[export]\nprotocol = "grpc"', {"OTEL_METRIC_EXPORT_TIMEOUT": "1500"})
    assert build_exporter(cfg.export).max_elapsed == 1.5


@pytest.mark.parametrize("environ,protocol", [
    ({"OTEL_METRICS_EXPORTER": "otlp"}, "http/protobuf"),
    ({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
    ({"OTEL_METRICS_EXPORTER": "console", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
     "console"),
    ({"OTEL_METRICS_EXPORTER": "none"}, "none"),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_METRICS_EXPORTER": "otlp"}, "none"),
    ({"OTEL_SDK_DISABLED": "false"}, "console"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "http/json"),
])
def test_exporter_choice(tmp_path, environ, protocol):
    assert agent(tmp_path, "", environ).export.protocol == protocol


def test_otlp_without_endpoint_uses_the_default_endpoint(tmp_path):
    cfg = agent(tmp_path, "", {"OTEL_METRICS_EXPORTER": "otlp"})
    assert build_exporter(cfg.export).transport.url == "http://localhost:4318/v1/metrics"


def test_none_exports_nothing(tmp_path):
    cfg = agent(tmp_path, "", {"OTEL_SDK_DISABLED": "TRUE"})
    exporter = build_exporter(cfg.export)
    assert isinstance(exporter, DiscardingExporter)


@pytest.mark.parametrize("environ,field", [
    ({"OTEL_METRICS_EXPORTER": "otlp,console"}, "OTEL_METRICS_EXPORTER"),
    ({"OTEL_METRICS_EXPORTER": "prometheus"}, "OTEL_METRICS_EXPORTER"),
    ({"OTEL_SDK_DISABLED": "yes"}, "OTEL_SDK_DISABLED"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/xml"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
])
def test_bad_standard_variables_name_themselves(tmp_path, environ, field):
    (error,) = errors(tmp_path, "", environ)
    assert (error.path, error.field) == ("environment", field) and error.fix


def test_an_error_inside_an_array_names_the_item(tmp_path):
    (error,) = errors(tmp_path, '[agent]\nprograms = ["syscalls", "${env:EXTRA}"]\n', {})
    assert (error.entry, error.field) == ("agent", "programs[1]")
