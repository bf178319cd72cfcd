"""Agent config: ``otelbpf.toml`` (flush interval, where programs live, export, resource, state,
limits and the built-in host BPF health sources).

OTEL_* environment variables provide defaults for the export and resource tables; values written
in the file win over the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from otelbpf.config.environment import (COMPRESSIONS, ENVIRONMENT, HISTOGRAM_AGGREGATIONS, PROTOCOLS,
                                        TEMPORALITIES, EnvironmentDefaults, read_environment)
from otelbpf.config.ebpf_exporter import EbpfExporterConfig, read_ebpf_exporter_table
from otelbpf.config.tables import ErrorList, Table, parse_toml, read_toml
from otelbpf.errors import ConfigError


@dataclass(frozen=True)
class ExportConfig:
    protocol: str  # "grpc" | "http/protobuf" | "console"
    endpoint: str | None
    temporality: str  # "cumulative" | "delta"
    headers: Mapping[str, str]
    compression: str  # "gzip" | "none"
    timeout: float  # seconds
    insecure: bool
    certificate: Path | None
    client_certificate: Path | None
    client_key: Path | None
    max_backoff: float  # seconds
    # True when ``endpoint`` came from OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: already the full
    # metrics URL, used as is. Otherwise ``endpoint`` is a base URL.
    signal_endpoint: bool = False
    # What histograms left at aggregation = "auto" become: "auto" or "explicit" (from
    # default_histogram_aggregation / OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION).
    default_histogram_aggregation: str = "auto"


@dataclass(frozen=True)
class StateConfig:
    pin_dir: Path | None  # None: do not pin aggregate maps
    state_dir: Path
    # Pin the programs' links too: the kernel keeps counting while the agent is stopped,
    # restarting or crashed (see docs/reliability.md, "Zero-gap restarts").
    keep_attached: bool = False


@dataclass(frozen=True)
class LimitsConfig:
    cardinality: int
    label_cache: int


@dataclass(frozen=True)
class MapPressureConfig:
    enabled: bool
    interval: float | None  # None: the agent interval
    warning: float
    critical: float
    include: tuple[str, ...]
    exclude: tuple[str, ...]


@dataclass(frozen=True)
class ProgramStatsConfig:
    enabled: bool
    interval: float | None  # None: the agent interval
    include: tuple[str, ...]
    exclude: tuple[str, ...]


@dataclass(frozen=True)
class BuiltinConfig:
    map_pressure: MapPressureConfig
    program_stats: ProgramStatsConfig


@dataclass(frozen=True)
class AgentConfig:
    path: Path | None
    interval: float  # seconds
    programs_dir: Path
    objects_dir: Path
    programs: tuple[str, ...] | None  # None: every NAME.toml in programs_dir
    export: ExportConfig
    resource: Mapping[str, str]
    state: StateConfig
    limits: LimitsConfig
    builtin: BuiltinConfig
    ebpf_exporter: EbpfExporterConfig | None = None  # [ebpf_exporter]: YAML configs to run too

    def program_config_paths(self) -> list[Path]:
        """The program config files to load: ``programs`` in order, else every NAME.toml."""
        if self.programs is None:
            return sorted(self.programs_dir.glob("*.toml"))
        return [self.programs_dir / f"{name}.toml" for name in self.programs]


INSTALLED_CONFIG = Path("/etc/otelbpf/otelbpf.toml")
_CHECKOUT_CONFIG = Path(__file__).resolve().parents[2] / "conf" / "otelbpf.toml"

DEFAULT_INTERVAL = 10.0
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")


def default_config_path() -> Path:
    """``conf/otelbpf.toml`` when running from a source checkout, else the installed path."""
    return _CHECKOUT_CONFIG if _CHECKOUT_CONFIG.is_file() else INSTALLED_CONFIG


def load_agent_config(path: Path, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Read ``path`` with OTEL_* defaults from ``environ`` (default: ``os.environ``).

    Raises ``ConfigErrors`` listing every problem found, in the file and in the environment.
    """
    path = Path(path)
    return parse_agent_config(read_toml(path), path, environ)


def parse_agent_config(data: Mapping[str, Any] | bytes | str, path: Path,
                       environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Like ``load_agent_config`` for TOML text (or an already parsed table)."""
    if not isinstance(data, Mapping):
        data = parse_toml(data, path)
    errors = ErrorList(path)
    env = read_environment(os.environ if environ is None else environ)
    errors.extend(env.errors)
    config = _read_agent(Table(data, errors, ""), Path(path), env)
    errors.raise_if_any()
    return config


def _relative_to(base: Path, text: str) -> Path:
    """``text`` as a path relative to the config file's directory (absolute paths stay)."""
    return Path(os.path.normpath(base / text))


def _read_agent(root: Table, path: Path, env: EnvironmentDefaults) -> AgentConfig:
    base = path.absolute().parent
    agent = root.table("agent", entry="agent")
    interval = agent.duration("interval", DEFAULT_INTERVAL)
    programs_dir = _relative_to(base, agent.string("programs_dir", "conf.d", non_empty=True))
    objects_dir = (_relative_to(base, agent.string("objects_dir", non_empty=True))
                   if agent.has("objects_dir") else programs_dir)
    programs = None
    if agent.has("programs"):
        programs = agent.strings("programs", (), unique=True)
        for i, name in enumerate(programs):
            if not name or "/" in name or name.endswith(".toml") or name.startswith("."):
                agent.error(f"programs[{i}]", f'"{name}" is not a program name',
                            "give the NAME of programs_dir/NAME.toml, e.g. \"biolatency\"")
    agent.finish()

    export = _read_export(root.table("export", entry="export"), base, env)

    resource_table = root.table("resource", entry="resource")
    resource = dict(env.resource)
    resource.update(resource_table.string_pairs(resource_table.data, what="attribute value"))

    state = root.table("state", entry="state")
    pin_text = state.string("pin_dir", "/sys/fs/bpf/otelbpf")
    state_dir = state.string("state_dir", "/var/lib/otelbpf", non_empty=True)
    keep_attached = state.boolean("keep_attached", False)
    if keep_attached and not pin_text:
        state.error("keep_attached", "keep_attached needs pinning, but pin_dir is empty",
                    "set pin_dir (e.g. \"/sys/fs/bpf/otelbpf\") or keep_attached = false")
    state_config = StateConfig(_relative_to(base, pin_text) if pin_text else None,
                               _relative_to(base, state_dir), keep_attached)
    state.finish()

    limits = root.table("limits", entry="limits")
    limits_config = LimitsConfig(limits.integer("cardinality", 2000, min=1),
                                 limits.integer("label_cache", 100_000, min=0))
    limits.finish()

    builtin = root.table("builtin", entry="builtin")
    builtin_config = BuiltinConfig(_read_map_pressure(builtin.table("map_pressure")),
                                   _read_program_stats(builtin.table("program_stats")))
    builtin.finish()
    ebpf_exporter = read_ebpf_exporter_table(root.table("ebpf_exporter", entry="ebpf_exporter"),
                                             base)
    root.finish()
    return AgentConfig(path, interval, programs_dir, objects_dir, programs, export,
                       MappingProxyType(resource), state_config, limits_config, builtin_config,
                       ebpf_exporter)


def _read_export(t: Table, base: Path, env: EnvironmentDefaults) -> ExportConfig:
    defaults = env.export
    signal_endpoint = False
    if t.has("endpoint"):
        endpoint: str | None = t.string("endpoint", None, non_empty=True)
        endpoint_source = (None, "endpoint")
    else:
        endpoint = defaults.get("endpoint")
        signal_endpoint = env.signal_endpoint
        endpoint_source = (ENVIRONMENT, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" if signal_endpoint
                           else "OTEL_EXPORTER_OTLP_ENDPOINT")

    if t.has("protocol"):
        protocol = t.string("protocol", choices=PROTOCOLS)
    else:
        protocol = defaults.get("protocol") or ("http/protobuf" if endpoint else "console")
    if protocol == "console":
        endpoint, signal_endpoint = None, False
    elif endpoint is None:
        endpoint = DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else DEFAULT_HTTP_ENDPOINT
    elif problem := endpoint_problem(endpoint, protocol):
        where, field = endpoint_source
        example = ("http://127.0.0.1:4317 or 127.0.0.1:4317" if protocol == "grpc"
                   else "http://127.0.0.1:4318")
        t.errors.errors.append(ConfigError(where or t.errors.path, None if where else t.entry,
                                           field, f'"{endpoint}" {problem}',
                                           f"use a URL such as {example}"))

    headers = dict(defaults.get("headers", {}))
    headers.update(t.string_table("headers", what="header value", secret=True))

    def path_setting(key: str) -> Path | None:
        if not t.has(key):
            return defaults.get(key)
        text = t.string(key, "", non_empty=True)
        if not text:
            return None
        file = _relative_to(base, text)
        if not file.is_file():
            t.error(key, f"{file} is not a readable file", "point it at a PEM file")
        return file

    config = ExportConfig(
        protocol=protocol,
        endpoint=endpoint,
        temporality=t.string("temporality", defaults.get("temporality", "cumulative"),
                             choices=TEMPORALITIES),
        headers=MappingProxyType(headers),
        compression=t.string("compression", defaults.get("compression", "gzip"),
                             choices=COMPRESSIONS),
        timeout=t.duration("timeout", defaults.get("timeout", 10.0)),
        insecure=t.boolean("insecure", defaults.get("insecure", False)),
        certificate=path_setting("certificate"),
        client_certificate=path_setting("client_certificate"),
        client_key=path_setting("client_key"),
        max_backoff=t.duration("max_backoff", 60.0),
        signal_endpoint=signal_endpoint,
        default_histogram_aggregation=_read_histogram_aggregation(t, defaults),
    )
    t.finish()
    return config


def _read_histogram_aggregation(t: Table, defaults: Mapping[str, Any]) -> str:
    """``default_histogram_aggregation`` takes the values of the OTel variable of the same name."""
    if not t.has("default_histogram_aggregation"):
        return defaults.get("default_histogram_aggregation", "auto")
    value = t.string("default_histogram_aggregation", "base2_exponential_bucket_histogram",
                     choices=tuple(HISTOGRAM_AGGREGATIONS))
    return HISTOGRAM_AGGREGATIONS[value]


def endpoint_problem(endpoint: str, protocol: str) -> str | None:
    """Why ``endpoint`` cannot be used with ``protocol``, or None if it can."""
    host_port = _HOST_PORT.fullmatch(endpoint)
    if protocol == "grpc" and host_port:
        return None if 0 < int(host_port.group(2)) < 65536 else "has an invalid port"
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return "is not a valid URL (bad port or brackets)"
    if parts.scheme not in ("http", "https"):
        return "is not an http:// or https:// URL"
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "has an invalid port"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    return None


def _filters(t: Table) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return t.strings("include", ("*",)), t.strings("exclude", ())


def _read_map_pressure(t: Table) -> MapPressureConfig:
    enabled = t.boolean("enabled", True)
    interval = t.duration("interval", None)
    warning = t.number("warning", 0.7, min=0, max=1, min_exclusive=True)
    critical = t.number("critical", 0.9, min=0, max=1, min_exclusive=True)
    if warning >= critical:
        t.error("warning", f"warning {warning} must be below critical {critical}",
                "e.g. warning = 0.7, critical = 0.9")
    include, exclude = _filters(t)
    t.finish()
    return MapPressureConfig(enabled, interval, warning, critical, include, exclude)


def _read_program_stats(t: Table) -> ProgramStatsConfig:
    enabled = t.boolean("enabled", True)
    interval = t.duration("interval", None)
    include, exclude = _filters(t)
    t.finish()
    return ProgramStatsConfig(enabled, interval, include, exclude)
