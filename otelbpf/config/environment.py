"""The OTEL_* environment variables the agent honours, read in one place.

OpenTelemetry's exporter variables come in a general form (``OTEL_EXPORTER_OTLP_TIMEOUT``) and a
metrics-only form (``OTEL_EXPORTER_OTLP_METRICS_TIMEOUT``); the metrics form wins. An empty
variable counts as unset, as the OpenTelemetry spec asks. The agent config file wins over both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from otelbpf.errors import ConfigError

ENVIRONMENT = "environment"  # the ``path`` of errors found in environment variables

# OTLP protocols, plus the two exporters that are not OTLP (OTEL_METRICS_EXPORTER console/none).
PROTOCOLS = ("grpc", "http/protobuf", "http/json", "console", "none")
OTLP_PROTOCOLS = ("grpc", "http/protobuf", "http/json")
TEMPORALITIES = ("cumulative", "delta")
COMPRESSIONS = ("gzip", "none")
# OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION's values → what a histogram left at
# aggregation = "auto" becomes. "base2_exponential_bucket_histogram" keeps "auto": exponential
# wherever the kernel's slots are exactly exponential buckets, explicit bounds where they are not.
HISTOGRAM_AGGREGATIONS = {"explicit_bucket_histogram": "explicit",
                          "base2_exponential_bucket_histogram": "auto"}


@dataclass
class EnvironmentDefaults:
    """Export settings and resource attributes taken from the environment.

    ``export`` uses ExportConfig's field names and holds only the settings that were set;
    ``signal_endpoint`` is True when the endpoint came from the metrics-only variable, which
    OpenTelemetry defines as the complete URL (nothing is appended to it).
    """

    export: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # export setting -> variable it came from
    signal_endpoint: bool = False
    interval: float | None = None  # OTEL_METRIC_EXPORT_INTERVAL, seconds
    resource: dict[str, str] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)


def read_environment(environ: Mapping[str, str]) -> EnvironmentDefaults:
    # Imported here: the otelbpf.export package imports the config on load.
    from otelbpf.export.transport import validate_headers

    out = EnvironmentDefaults()

    def error(var: str, message: str, fix: str) -> None:
        out.errors.append(ConfigError(ENVIRONMENT, None, var, message, fix))

    def lookup(suffix: str) -> tuple[str, str] | None:
        """(variable, value) of the metrics-only or the general variable, if set."""
        for var in (f"OTEL_EXPORTER_OTLP_METRICS_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"):
            value = environ.get(var, "").strip()
            if value:
                return var, value
        return None

    def milliseconds(var: str, value: str) -> float | None:
        try:
            millis = float(value)
        except ValueError:
            millis = -1.0
        if millis > 0 and millis != float("inf"):
            return millis / 1000.0
        error(var, f'"{value}" is not a duration in milliseconds', "give milliseconds, e.g. 10000")
        return None

    def boolean(var: str) -> bool | None:
        value = environ.get(var, "").strip().lower()
        if value in ("true", "false"):
            return value == "true"
        if value:
            error(var, f'"{value}" is not a boolean', 'use "true" or "false"')
        return None

    if found := lookup("PROTOCOL"):
        var, value = found
        if value in OTLP_PROTOCOLS:
            out.export["protocol"] = value
        else:
            error(var, f'"{value}" is not supported', 'use "grpc", "http/protobuf" or "http/json"')

    var = "OTEL_METRICS_EXPORTER"
    if value := environ.get(var, "").strip().lower():
        if value == "otlp":
            # OTLP even without an endpoint (the default is then localhost), over http/protobuf
            # unless a protocol variable says otherwise — as the SDKs do.
            out.export.setdefault("protocol", "http/protobuf")
        elif value in ("console", "none"):
            out.export["protocol"] = value
        else:
            error(var, f'"{value}" is not supported',
                  'use one of "otlp", "console" or "none" (one exporter, not a list)')

    if boolean("OTEL_SDK_DISABLED"):
        out.export["protocol"] = "none"

    var = "OTEL_METRIC_EXPORT_INTERVAL"
    if value := environ.get(var, "").strip():
        out.interval = milliseconds(var, value)
    var = "OTEL_METRIC_EXPORT_TIMEOUT"
    if value := environ.get(var, "").strip():
        if (seconds := milliseconds(var, value)) is not None:
            out.export["export_timeout"] = seconds

    metrics_endpoint = environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "").strip()
    if metrics_endpoint:
        out.export["endpoint"] = metrics_endpoint
        out.signal_endpoint = True
    elif general := environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        out.export["endpoint"] = general

    var = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
    if value := environ.get(var, "").strip():
        preference = value.lower()
        # LowMemory keeps observable-style (kernel-cumulative) metrics cumulative; most of ours
        # are, and a single temporality applies to all, so it maps to cumulative.
        if preference in ("cumulative", "lowmemory"):
            out.export["temporality"] = "cumulative"
        elif preference == "delta":
            out.export["temporality"] = "delta"
        else:
            error(var, f'"{value}" is not a temporality', 'use "cumulative" or "delta"')

    var = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION"
    if value := environ.get(var, "").strip():
        if value.lower() in HISTOGRAM_AGGREGATIONS:
            out.export["default_histogram_aggregation"] = HISTOGRAM_AGGREGATIONS[value.lower()]
        else:
            error(var, f'"{value}" is not a histogram aggregation',
                  'use "explicit_bucket_histogram" or "base2_exponential_bucket_histogram"')

    if found := lookup("HEADERS"):
        var, value = found
        headers, problems = parse_key_values(value)
        # Never echo header text: it usually carries credentials.
        for problem in problems:
            error(var, problem, "write k1=v1,k2=v2 (URL-encoded)")
        for name, header_value in headers.items():
            try:
                validate_headers({name: header_value})
            except ValueError as exc:
                error(var, str(exc), "names are letters, digits and -; values printable ASCII "
                                     "(a URL-encoded %0A, %0D or %00 decodes to a control "
                                     "character)")
        out.export["headers"] = headers
        out.sources["headers"] = var

    if found := lookup("COMPRESSION"):
        var, value = found
        if value.lower() in COMPRESSIONS:
            out.export["compression"] = value.lower()
        else:
            error(var, f'"{value}" is not supported', 'use "gzip" or "none"')

    if found := lookup("TIMEOUT"):
        var, value = found
        if (seconds := milliseconds(var, value)) is not None:
            out.export["timeout"] = seconds

    if found := lookup("INSECURE"):
        var, _ = found
        if (insecure := boolean(var)) is not None:
            out.export["insecure"] = insecure

    for suffix, key in (("CERTIFICATE", "certificate"),
                        ("CLIENT_CERTIFICATE", "client_certificate"),
                        ("CLIENT_KEY", "client_key")):
        if found := lookup(suffix):
            var, value = found
            # Read and checked as PEM with the other export settings (config.agent).
            out.export[key] = Path(value)
            out.sources[key] = var

    if value := environ.get("OTEL_RESOURCE_ATTRIBUTES", "").strip():
        attributes, problems = parse_key_values(value)
        out.resource.update(attributes)
        for problem in problems:
            error("OTEL_RESOURCE_ATTRIBUTES", problem,
                  "write key1=value1,key2=value2 (URL-encoded)")
    if value := environ.get("OTEL_SERVICE_NAME", "").strip():
        out.resource["service.name"] = value
    return out


def parse_key_values(text: str) -> tuple[dict[str, str], list[str]]:
    """``k1=v1,k2=v2`` with URL-encoded parts → (pairs, problems).

    The one parser for OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS. A problem names the
    entry by position, never by its text (header values are secrets); the caller turns problems
    into ConfigErrors, so a malformed variable stops the agent with one line instead of being
    dropped with a warning nobody reads.
    """
    pairs: dict[str, str] = {}
    problems: list[str] = []
    for index, item in enumerate(text.split(",")):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"entry {index + 1} is not key=value")
            continue
        try:
            pairs[unquote(key.strip(), errors="strict")] = unquote(value.strip(), errors="strict")
        except UnicodeDecodeError:
            problems.append(f"entry {index + 1} is not valid percent-encoded UTF-8")
    return pairs, problems
