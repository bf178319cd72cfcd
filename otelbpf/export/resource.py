"""The OTel resource every export carries: who is sending (service.*) and from where (host.*, os.*).

Precedence, lowest to highest: detected values < OTEL_RESOURCE_ATTRIBUTES < OTEL_SERVICE_NAME (for
service.name) < the config file's [resource] table.

``service.instance.id`` must survive restarts, or every restart starts new series (the SDK default
is a random UUID per process). Unless set explicitly, it is a UUIDv5 of the host's machine-id and
the final service.name: deterministic, so it needs no state and is the same after a reinstall or a
wiped state_dir. Two agents on one host need different service.name values (or explicit ids).
Only when no machine-id exists (some containers) is a random UUID created once and persisted as
``state_dir/service-instance-id``. A container image that bakes in one machine-id for every host
should mount the host's /etc/machine-id or set service.instance.id.
"""

from __future__ import annotations

import os
import platform
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

import structlog

import otelbpf
from otelbpf.metrics.model import AttributeValue, Resource

log = structlog.get_logger("otelbpf.export.resource")

DEFAULT_SERVICE_NAME = "otelbpf"
MACHINE_ID_PATHS = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
INSTANCE_ID_FILE = "service-instance-id"
# Fixed namespace for service.instance.id = uuid5(namespace, "machine-id:service.name").
INSTANCE_ID_NAMESPACE = uuid.UUID("6f0e3b4c-5a0b-4c41-9d0e-6f74656c6270")

# platform.machine() → semantic-conventions host.arch values.
_HOST_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "x86",
    "i686": "x86",
    "armv7l": "arm32",
    "armv6l": "arm32",
    "ppc64le": "ppc64",
    "ppc64": "ppc64",
    "ppc": "ppc32",
    "s390x": "s390x",
    "ia64": "ia64",
}


def build_resource(
    config_resource: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
    *,
    machine_id_paths: tuple[Path, ...] = MACHINE_ID_PATHS,
    hostname: str | None = None,
) -> Resource:
    environ = os.environ if environ is None else environ
    machine_id = read_machine_id(machine_id_paths)
    attributes: dict[str, AttributeValue] = {
        "service.name": DEFAULT_SERVICE_NAME,
        "service.version": otelbpf.__version__,
        "host.name": hostname if hostname is not None else socket.gethostname(),
        "os.type": "linux",
        "host.arch": _HOST_ARCH.get(platform.machine().lower(), platform.machine().lower()),
    }
    if machine_id:
        attributes["host.id"] = machine_id
    attributes.update(parse_resource_attributes(environ.get("OTEL_RESOURCE_ATTRIBUTES", "")))
    service_name = environ.get("OTEL_SERVICE_NAME", "").strip()
    if service_name:
        attributes["service.name"] = service_name
    attributes.update(config_resource)
    if "service.instance.id" not in attributes:
        attributes["service.instance.id"] = stable_instance_id(
            str(attributes["service.name"]), machine_id, state_dir
        )
    return Resource(tuple(attributes.items()))


def parse_resource_attributes(value: str) -> dict[str, str]:
    """OTEL_RESOURCE_ATTRIBUTES: ``key1=value1,key2=value2``, values percent-decoded.

    As the SDK environment spec asks, a malformed value (an entry without '=', an empty key, bad
    percent-encoding) discards the whole variable, with a warning naming the problem.
    """
    attributes: dict[str, str] = {}
    if not value.strip():
        return attributes
    for entry in value.split(","):
        if not entry.strip():
            continue
        key, sep, raw = entry.partition("=")
        key = key.strip()
        if not sep or not key:
            log.warning(
                "OTEL_RESOURCE_ATTRIBUTES ignored: entries must be key=value",
                entry=entry.strip(),
            )
            return {}
        try:
            attributes[key] = unquote(raw.strip(), errors="strict")
        except UnicodeDecodeError:
            log.warning(
                "OTEL_RESOURCE_ATTRIBUTES ignored: value is not valid percent-encoded UTF-8",
                key=key,
            )
            return {}
    return attributes


def read_machine_id(paths: tuple[Path, ...] = MACHINE_ID_PATHS) -> str | None:
    """The 32-hex-digit machine-id, or None (missing, or empty/"uninitialized" in fresh images)."""
    for path in paths:
        try:
            text = path.read_text().strip().lower()
        except OSError:
            continue
        if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
            return text
    return None


def stable_instance_id(service_name: str, machine_id: str | None, state_dir: Path | None) -> str:
    if machine_id:
        return str(uuid.uuid5(INSTANCE_ID_NAMESPACE, f"{machine_id}:{service_name}"))
    return _persisted_instance_id(state_dir)


def _persisted_instance_id(state_dir: Path | None) -> str:
    if state_dir is None:
        log.warning(
            "no machine-id and no state_dir: service.instance.id changes on every restart",
            fix="set service.instance.id in [resource]",
        )
        return str(uuid.uuid4())
    path = Path(state_dir) / INSTANCE_ID_FILE
    try:
        return str(uuid.UUID(path.read_text().strip()))
    except (OSError, ValueError):
        pass
    instance_id = str(uuid.uuid4())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(instance_id + "\n")
        temporary.replace(path)
    except OSError as error:
        log.warning(
            "cannot persist service.instance.id: it changes on every restart",
            path=str(path),
            error=error.strerror,
            fix="make state_dir writable or set service.instance.id in [resource]",
        )
    return instance_id
