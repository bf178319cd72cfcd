"""The OTel resource every export carries: who is sending (service.*) and from where (host.*, os.*).

Precedence, lowest to highest: detected values < OTEL_RESOURCE_ATTRIBUTES < OTEL_SERVICE_NAME (for
service.name) < the config file's [resource] table. The agent config merges the last three
(config.environment parses the variables); this module adds the detected values beneath.

``service.instance.id`` must survive restarts, or every restart starts new series (the SDK default
is a random UUID per process). Unless set explicitly, it is a UUIDv5 in the namespace the semantic
conventions give for it, over the host's machine-id and the final service.name: deterministic, so
it needs no state and is the same after a reinstall or a wiped state_dir. Two agents on one host need different service.name values (or explicit ids).
Only when no machine-id exists (some containers) is a random UUID created once and persisted as
``state_dir/service-instance-id``. A container image that bakes in one machine-id for every host
should mount the host's /etc/machine-id or set service.instance.id.
"""

from __future__ import annotations

import platform
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path

import structlog

import otelbpf
from otelbpf.metrics.model import AttributeValue, Resource

log = structlog.get_logger("otelbpf.export.resource")

DEFAULT_SERVICE_NAME = "otelbpf"
MACHINE_ID_PATHS = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
INSTANCE_ID_FILE = "service-instance-id"
# The semantic conventions' namespace for a UUIDv5 service.instance.id (service attributes).
INSTANCE_ID_NAMESPACE = uuid.UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320")

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
    state_dir: Path | None = None,
    *,
    machine_id_paths: tuple[Path, ...] = MACHINE_ID_PATHS,
    hostname: str | None = None,
) -> Resource:
    """``config_resource``: AgentConfig.resource (file over OTEL_SERVICE_NAME over
    OTEL_RESOURCE_ATTRIBUTES)."""
    machine_id = read_machine_id(machine_id_paths)
    attributes: dict[str, AttributeValue] = {
        "service.name": DEFAULT_SERVICE_NAME,
        "service.version": otelbpf.__version__,
        # In a container without the host's UTS namespace this is the container's (or pod's)
        # name: docs/backends.md shows how a DaemonSet sets the node's name instead.
        "host.name": hostname if hostname is not None else socket.gethostname(),
        "host.arch": _HOST_ARCH.get(platform.machine().lower(), platform.machine().lower()),
        "os.type": "linux",
        # The kernel release decides which BPF features and tracepoints exist.
        "os.version": platform.release(),
        # otelbpf encodes OTLP itself rather than through the OpenTelemetry SDK, so by the
        # conventions' rule for other SDKs it names itself; it is also the distribution.
        "telemetry.sdk.name": "otelbpf",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": otelbpf.__version__,
        "telemetry.distro.name": "otelbpf",
        "telemetry.distro.version": otelbpf.__version__,
    }
    if machine_id:
        attributes["host.id"] = machine_id
    attributes.update(config_resource)
    if "service.instance.id" not in attributes:
        attributes["service.instance.id"] = stable_instance_id(
            str(attributes["service.name"]), machine_id, state_dir
        )
    return Resource(tuple(attributes.items()))


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
