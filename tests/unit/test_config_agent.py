"""Agent config: defaults, every key, environment precedence, and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelbpf.config.agent import (
    AgentConfig,
    default_config_path,
    endpoint_problem,
    load_agent_config,
    parse_agent_config,
)
from otelbpf.config.environment import parse_key_values, read_environment
from otelbpf.errors import ConfigErrors
from otelbpf.export.exporter import build_exporter

FULL = """
[agent]
interval = "15s"
programs_dir = "conf.d"
objects_dir = "../bpf/build"
programs = ["syscalls", "biolatency"]
[export]
protocol = "grpc"
endpoint = "collector:4317"
temporality = "delta"
headers = { "x-scope" = "team" }
compression = "none"
timeout = "5s"
insecure = true
certificate = "ca.pem"
max_backoff = "2m"
[resource]
"deployment.environment.name" = "dev"
[state]
pin_dir = ""
state_dir = "state"
[limits]
cardinality = 50
label_cache = 0
[builtin.map_pressure]
enabled = false
interval = "30s"
warning = 0.5
critical = 1
include = ["sys*"]
exclude = ["tmp"]
[builtin.program_stats]
interval = 20
exclude = ["x"]
"""


def load(text: str, tmp_path: Path, environ=None) -> AgentConfig:
    path = tmp_path / "otelbpf.toml"
    path.write_text(text)
    return load_agent_config(path, environ or {})


def errors_of(text: str, tmp_path: Path, environ=None) -> list:
    with pytest.raises(ConfigErrors) as info:
        load(text, tmp_path, environ)
    return info.value.errors


def test_defaults(tmp_path):
    cfg = load("", tmp_path)
    assert cfg.interval == 10.0
    assert cfg.programs_dir == tmp_path / "conf.d"
    assert cfg.objects_dir == cfg.programs_dir
    assert cfg.programs is None
    assert cfg.export.protocol == "console" and cfg.export.endpoint is None
    assert cfg.export.temporality == "cumulative"
    assert cfg.export.compression == "gzip"
    assert cfg.export.timeout == 10.0 and cfg.export.max_backoff == 60.0
    assert cfg.state.pin_dir == Path("/sys/fs/bpf/otelbpf")
    assert cfg.state.state_dir == Path("/var/lib/otelbpf")
    assert (cfg.limits.cardinality, cfg.limits.label_cache) == (2000, 100_000)
    mp = cfg.builtin.map_pressure
    assert (mp.enabled, mp.interval, mp.warning, mp.critical) == (True, None, 0.7, 0.9)
    assert (mp.include, mp.exclude) == (("*",), ())
    assert cfg.builtin.program_stats.enabled and cfg.builtin.program_stats.interval is None


def test_every_key(tmp_path):
    (tmp_path / "ca.pem").write_text("pem")
    cfg = load(FULL, tmp_path)
    assert cfg.interval == 15.0
    assert cfg.objects_dir == tmp_path.parent / "bpf" / "build"
    assert cfg.programs == ("syscalls", "biolatency")
    assert cfg.program_config_paths() == [tmp_path / "conf.d" / "syscalls.toml",
                                          tmp_path / "conf.d" / "biolatency.toml"]
    e = cfg.export
    assert (e.protocol, e.endpoint, e.temporality, e.compression) == (
        "grpc", "collector:4317", "delta", "none")
    assert dict(e.headers) == {"x-scope": "team"}
    assert (e.timeout, e.insecure, e.max_backoff) == (5.0, True, 120.0)
    assert e.certificate == tmp_path / "ca.pem" and e.client_key is None
    assert dict(cfg.resource) == {"deployment.environment.name": "dev"}
    assert cfg.state.pin_dir is None and cfg.state.state_dir == tmp_path / "state"
    assert (cfg.limits.cardinality, cfg.limits.label_cache) == (50, 0)
    mp = cfg.builtin.map_pressure
    assert (mp.enabled, mp.interval, mp.warning, mp.critical) == (False, 30.0, 0.5, 1.0)
    assert (mp.include, mp.exclude) == (("sys*",), ("tmp",))
    ps = cfg.builtin.program_stats
    assert (ps.interval, ps.include, ps.exclude) == (20.0, ("*",), ("x",))


def test_program_paths_default_to_every_toml(tmp_path):
    (tmp_path / "conf.d").mkdir()
    for name in ("b.toml", "a.toml", "notes.txt"):
        (tmp_path / "conf.d" / name).write_text("")
    assert [p.name for p in load("", tmp_path).program_config_paths()] == ["a.toml", "b.toml"]


ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:4318",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta",
    "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%3Dcret,x-team=a",
    "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
    "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
    "OTEL_EXPORTER_OTLP_INSECURE": "TRUE",
    "OTEL_RESOURCE_ATTRIBUTES": "service.name=fromattrs,team=a%20b,deployment.environment.name=prod",
    "OTEL_SERVICE_NAME": "otelbpf-test",
}


def test_environment_defaults(tmp_path):
    cfg = load("", tmp_path, ENV)
    e = cfg.export
    assert e.protocol == "http/protobuf"  # the METRICS_ variable wins
    assert e.endpoint == "http://general:4318" and not e.signal_endpoint
    assert build_exporter(e).transport.url == "http://general:4318/v1/metrics"
    assert e.temporality == "delta" and e.compression == "none"
    assert e.timeout == 2.5 and e.insecure is True
    assert dict(e.headers) == {"api-key": "s=cret", "x-team": "a"}
    assert dict(cfg.resource) == {"service.name": "otelbpf-test", "team": "a b",
                                  "deployment.environment.name": "prod"}


def test_file_wins_over_environment(tmp_path):
    text = """
[export]
endpoint = "https://file:4318"
temporality = "cumulative"
headers = { "x-team" = "file" }
[resource]
"deployment.environment.name" = "dev"
"""
    cfg = load(text, tmp_path, ENV)
    assert cfg.export.endpoint == "https://file:4318"
    assert cfg.export.temporality == "cumulative"
    assert dict(cfg.export.headers) == {"api-key": "s=cret", "x-team": "file"}
    assert cfg.resource["deployment.environment.name"] == "dev"
    assert cfg.resource["service.name"] == "otelbpf-test"


def test_signal_endpoint_is_used_as_is(tmp_path):
    cfg = load("", tmp_path, {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://vm:8428/opentelemetry/v1/metrics",
                              "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318"})
    assert cfg.export.protocol == "http/protobuf"
    assert build_exporter(cfg.export).transport.url == "http://vm:8428/opentelemetry/v1/metrics"
    # A signal endpoint is the whole URL: nothing is appended, whatever its path.
    cfg = load("", tmp_path, {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://vm:8428/custom"})
    assert build_exporter(cfg.export).transport.url == "http://vm:8428/custom"


@pytest.mark.parametrize("text,protocol,endpoint", [
    ('[export]\nprotocol = "grpc"', "grpc", "http://localhost:4317"),
    ('[export]\nprotocol = "http/protobuf"', "http/protobuf", "http://localhost:4318"),
    ('[export]\nendpoint = "http://x:1"', "http/protobuf", "http://x:1"),
    ('[export]\nprotocol = "console"\nendpoint = "http://x:1"', "console", None),
])
def test_protocol_and_endpoint_defaults(tmp_path, text, protocol, endpoint):
    export = load(text, tmp_path).export
    assert (export.protocol, export.endpoint) == (protocol, endpoint)


def test_lowmemory_means_cumulative():
    env = read_environment({"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "LowMemory"})
    assert env.export["temporality"] == "cumulative"


def test_empty_variables_count_as_unset(tmp_path):
    cfg = load("", tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_SERVICE_NAME": " "})
    assert cfg.export.protocol == "console" and "service.name" not in cfg.resource


@pytest.mark.parametrize("endpoint,protocol,ok", [
    ("http://127.0.0.1:4318", "http/protobuf", True),
    ("https://otlp.example.com/otlp", "http/protobuf", True),
    ("http://[::1]:4318", "http/protobuf", True),
    ("127.0.0.1:4318", "http/protobuf", False),
    ("127.0.0.1:4317", "grpc", True),
    ("[::1]:4317", "grpc", True),
    ("collector:99999", "grpc", False),
    ("ftp://x", "grpc", False),
    ("http://", "http/protobuf", False),
    ("http://x:notaport", "http/protobuf", False),
    ("http://x/?q=1", "http/protobuf", False),
])
def test_endpoint_validation(endpoint, protocol, ok):
    assert (endpoint_problem(endpoint, protocol) is None) == ok


def test_bad_endpoint_names_field_and_example(tmp_path):
    (error,) = errors_of('[export]\nendpoint = "localhost:4318"', tmp_path)
    assert (error.entry, error.field) == ("export", "endpoint")
    assert "http://127.0.0.1:4318" in error.fix


def test_bad_environment_endpoint_names_variable(tmp_path):
    (error,) = errors_of("", tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": "nope"})
    assert (error.path, error.field) == ("environment", "OTEL_EXPORTER_OTLP_ENDPOINT")


def test_all_errors_reported_together(tmp_path):
    text = """
[agent]
intervl = "10s"
interval = 0
programs = ["a.toml"]
[export]
protocol = "htttp"
temporality = "deltaa"
compression = "zstd"
[resource]
deployment.environment = "dev"
[limits]
cardinality = -1
[builtin.map_pressure]
warning = 0.9
critical = 0.8
[bultin]
"""
    errors = errors_of(text, tmp_path, {"OTEL_EXPORTER_OTLP_HEADERS": "novalue"})
    fields = [(e.entry, e.field) for e in errors]
    assert fields == [
        (None, "OTEL_EXPORTER_OTLP_HEADERS"),
        ("agent", "interval"), ("agent", "programs[0]"), ("agent", "intervl"),
        ("export", "protocol"), ("export", "temporality"), ("export", "compression"),
        ("resource", "deployment"), ("limits", "cardinality"),
        ("builtin.map_pressure", "warning"), (None, "bultin"),
    ]
    assert errors[3].fix == 'did you mean "interval"?'
    assert errors[-1].fix == 'did you mean "builtin"?'
    assert "novalue" not in str(errors[0])  # header text may be a secret


def test_missing_file():
    with pytest.raises(ConfigErrors, match="cannot read the file"):
        load_agent_config(Path("/nonexistent/otelbpf.toml"), {})


def test_missing_certificate(tmp_path):
    (error,) = errors_of('[export]\nclient_key = "key.pem"', tmp_path)
    assert error.field == "client_key" and "not a readable file" in error.message


def test_parse_key_values():
    assert parse_key_values("a=1, b = x%2Cy ,,c") == ({"a": "1", "b": "x,y"}, [3])


def test_default_config_path():
    path = default_config_path()
    assert path.name == "otelbpf.toml"


def test_parse_from_text():
    cfg = parse_agent_config('[agent]\ninterval = "1m"', Path("/etc/otelbpf/otelbpf.toml"), {})
    assert cfg.interval == 60.0 and cfg.programs_dir == Path("/etc/otelbpf/conf.d")


def test_config_is_frozen(tmp_path):
    cfg = load("", tmp_path)
    with pytest.raises(AttributeError):
        cfg.interval = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.export.headers["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize("value,expected", [
    ("explicit_bucket_histogram", "explicit"),
    ("base2_exponential_bucket_histogram", "auto"),
    ("Explicit_Bucket_Histogram", "explicit"),
])
def test_default_histogram_aggregation_from_environment(tmp_path, value, expected):
    var = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION"
    assert load("", tmp_path).export.default_histogram_aggregation == "auto"
    assert load("", tmp_path, {var: value}).export.default_histogram_aggregation == expected
    # the file wins over the environment
    text = '[export]\ndefault_histogram_aggregation = "base2_exponential_bucket_histogram"'
    assert load(text, tmp_path, {var: value}).export.default_histogram_aggregation == "auto"


def test_unknown_histogram_aggregation_names_the_choices(tmp_path):
    var = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION"
    (error,) = errors_of("", tmp_path, {var: "explicit"})
    assert (str(error.path), error.field) == ("environment", var)
    assert "explicit_bucket_histogram" in error.fix and "base2_exponential_bucket_histogram" in error.fix
    (error,) = errors_of('[export]\ndefault_histogram_aggregation = "explicit"', tmp_path)
    assert (error.entry, error.field) == ("export", "default_histogram_aggregation")
    assert "explicit_bucket_histogram" in error.message + (error.fix or "")


def test_keep_attached(tmp_path):
    assert load("", tmp_path).state.keep_attached is False
    assert load("[state]\nkeep_attached = true\n", tmp_path).state.keep_attached is True
    (error,) = errors_of('[state]\npin_dir = ""\nkeep_attached = true\n', tmp_path)
    assert (error.entry, error.field) == ("state", "keep_attached")
    assert "needs pinning" in error.message and "set pin_dir" in error.fix
