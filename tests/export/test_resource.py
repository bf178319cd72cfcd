"""build_resource: config > OTEL_SERVICE_NAME > OTEL_RESOURCE_ATTRIBUTES; stable instance id."""

from __future__ import annotations

import platform
import uuid
from pathlib import Path

import pytest
import otelbpf
from otelbpf.config.agent import parse_agent_config
from otelbpf.export.resource import build_resource

MACHINE_ID = "3d1219c7c4c5404aaa1f6d2a48adfda4"


@pytest.fixture
def machine_id_file(tmp_path):
    path = tmp_path / "machine-id"
    path.write_text(MACHINE_ID + "\n")
    return (path,)


def build(config=None, environ=None, state_dir=None, machine_id_paths=()):
    """The resource the agent builds from a [resource] table and the environment."""
    table = "".join(f'"{k}" = "{v}"\n' for k, v in (config or {}).items())
    agent = parse_agent_config(f"[resource]\n{table}", Path("/etc/otelbpf/otelbpf.toml"),
                               environ or {})
    return build_resource(agent.resource, state_dir, machine_id_paths=machine_id_paths,
                          hostname="node-1").as_dict()


def test_defaults(machine_id_file):
    attributes = build(machine_id_paths=machine_id_file)
    assert attributes["service.name"] == "otelbpf"
    assert attributes["service.version"] == otelbpf.__version__
    assert attributes["host.name"] == "node-1"
    assert attributes["host.id"] == MACHINE_ID
    assert attributes["os.type"] == "linux"
    assert attributes["host.arch"] in {"amd64", "arm64", "x86", "arm32", "ppc64", "s390x"}
    assert uuid.UUID(attributes["service.instance.id"]).version == 5


def test_precedence_env_attributes_then_service_name_then_config(machine_id_file):
    environ = {
        "OTEL_RESOURCE_ATTRIBUTES": (
            "service.name=from-attrs,deployment.environment=prod,host.name=h2"
        ),
    }
    assert build(environ=environ)["service.name"] == "from-attrs"
    assert build(environ=environ)["host.name"] == "h2"  # env beats detection
    environ["OTEL_SERVICE_NAME"] = "from-service-name"
    attributes = build(environ=environ)
    assert attributes["service.name"] == "from-service-name"
    assert attributes["deployment.environment"] == "prod"
    attributes = build({"service.name": "from-config", "deployment.environment": "dev"}, environ)
    assert attributes["service.name"] == "from-config"
    assert attributes["deployment.environment"] == "dev"


def test_resource_attributes_percent_decoding_and_whitespace():
    attributes = build(environ={"OTEL_RESOURCE_ATTRIBUTES": " a = x%20y ,b=%2C%3D , c=1+1,d=k=v"})
    assert (attributes["a"], attributes["b"], attributes["c"], attributes["d"]) == (
        "x y", ",=", "1+1", "k=v")


def test_instance_id_uses_the_semantic_conventions_namespace(machine_id_file):
    attributes = build(machine_id_paths=machine_id_file)
    namespace = uuid.UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320")
    assert attributes["service.instance.id"] == str(uuid.uuid5(namespace, f"{MACHINE_ID}:otelbpf"))


def test_os_and_telemetry_attributes():
    attributes = build()
    assert attributes["os.version"] == platform.release() == open("/proc/sys/kernel/osrelease").read().strip()
    assert attributes["telemetry.sdk.name"] == "otelbpf"
    assert attributes["telemetry.sdk.language"] == "python"
    assert attributes["telemetry.sdk.version"] == otelbpf.__version__
    assert (attributes["telemetry.distro.name"], attributes["telemetry.distro.version"]) == (
        "otelbpf", otelbpf.__version__)


def test_instance_id_is_stable_and_depends_on_service_name(machine_id_file, tmp_path):
    first = build(machine_id_paths=machine_id_file)["service.instance.id"]
    again = build(machine_id_paths=machine_id_file)["service.instance.id"]
    other = build({"service.name": "other"}, machine_id_paths=machine_id_file)
    other = other["service.instance.id"]
    assert first == again
    assert first != other
    assert not list(tmp_path.glob("service-instance-id"))  # derived, nothing persisted


def test_instance_id_without_machine_id_is_persisted_in_state_dir(tmp_path):
    state = tmp_path / "state"
    empty_machine_id = tmp_path / "machine-id"
    empty_machine_id.write_text("")  # fresh images ship it empty
    first = build(state_dir=state, machine_id_paths=(empty_machine_id,))
    second = build(state_dir=state, machine_id_paths=(empty_machine_id,))
    assert "host.id" not in first
    assert first["service.instance.id"] == second["service.instance.id"]
    assert (state / "service-instance-id").read_text().strip() == first["service.instance.id"]


def test_explicit_instance_id_wins(machine_id_file):
    environ = {"OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=pod-7"}
    attributes = build(environ=environ, machine_id_paths=machine_id_file)
    assert attributes["service.instance.id"] == "pod-7"
