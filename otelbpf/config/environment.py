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

PROTOCOLS = ("grpc", "http/protobuf", "console")
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
    signal_endpoint: bool = False
    resource: dict[str, str] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)


def read_environment(environ: Mapping[str, str]) -> EnvironmentDefaults:
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

    if found := lookup("PROTOCOL"):
        var, value = found
        if value in PROTOCOLS:
            out.export["protocol"] = value
        else:
            error(var, f'"{value}" is not supported', 'use "grpc" or "http/protobuf"')

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
        headers, bad = parse_key_values(value)
        out.export["headers"] = headers
        for index in bad:
            # Never echo header text: it usually carries credentials.
            error(var, f"entry {index + 1} is not key=value", "write k1=v1,k2=v2 (URL-encoded)")

    if found := lookup("COMPRESSION"):
        var, value = found
        if value.lower() in COMPRESSIONS:
            out.export["compression"] = value.lower()
        else:
            error(var, f'"{value}" is not supported', 'use "gzip" or "none"')

    if found := lookup("TIMEOUT"):
        var, value = found
        try:
            millis = float(value)
        except ValueError:
            millis = -1.0
        if millis > 0 and millis != float("inf"):
            out.export["timeout"] = millis / 1000.0
        else:
            error(var, f'"{value}" is not a timeout', "give milliseconds, e.g. 10000")

    if found := lookup("INSECURE"):
        var, value = found
        if value.lower() in ("true", "false"):
            out.export["insecure"] = value.lower() == "true"
        else:
            error(var, f'"{value}" is not a boolean', 'use "true" or "false"')

    for suffix, key in (("CERTIFICATE", "certificate"),
                        ("CLIENT_CERTIFICATE", "client_certificate"),
                        ("CLIENT_KEY", "client_key")):
        if found := lookup(suffix):
            var, value = found
            path = Path(value)
            if path.is_file():
                out.export[key] = path
            else:
                error(var, f"{value} is not a readable file", "point it at a PEM file")

    if value := environ.get("OTEL_RESOURCE_ATTRIBUTES", "").strip():
        attributes, bad = parse_key_values(value)
        out.resource.update(attributes)
        for index in bad:
            error("OTEL_RESOURCE_ATTRIBUTES", f"entry {index + 1} is not key=value",
                  "write key1=value1,key2=value2 (URL-encoded)")
    if value := environ.get("OTEL_SERVICE_NAME", "").strip():
        out.resource["service.name"] = value
    return out


def parse_key_values(text: str) -> tuple[dict[str, str], list[int]]:
    """``k1=v1,k2=v2`` with URL-encoded parts → (pairs, indexes of entries that are not k=v)."""
    pairs: dict[str, str] = {}
    bad: list[int] = []
    for index, item in enumerate(text.split(",")):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = unquote(key.strip())
        if not sep or not key:
            bad.append(index)
            continue
        pairs[key] = unquote(value.strip())
    return pairs, bad
