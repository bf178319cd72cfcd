"""The Kubernetes manifests validate against the Kubernetes schema (offline, kubernetes-validate)
and agree with the agent, the systemd unit, the collector configs and docs/security.md."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from otelbpf.config.agent import parse_agent_config

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((REPO / "packaging" / "kubernetes").glob("*.yaml"))
UNIT = REPO / "packaging" / "systemd" / "otelbpf.service"
K8S_VERSION = "1.30.0"  # an old still-common version; the newest bundled one is checked as well


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_kind(path: Path) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents(path)}


def agent(path: Path) -> dict:
    ds = by_kind(path)[("DaemonSet", "otelbpf")]
    return next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "otelbpf")


def agent_config(path: Path):
    text = by_kind(path)[("ConfigMap", "otelbpf")]["data"]["otelbpf.toml"]
    env = {e["name"]: e["value"] for e in agent(path)["env"] if "value" in e}
    return parse_agent_config(text, Path("/etc/otelbpf/config/otelbpf.toml"), env)


def test_two_variants() -> None:
    assert [p.name for p in MANIFESTS] == ["daemonset-gateway.yaml", "daemonset-sidecar.yaml"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_valid_against_the_kubernetes_schema(path: Path) -> None:
    for doc in documents(path):
        for version in (K8S_VERSION, kubernetes_validate.latest_version()):
            kubernetes_validate.validate(doc, version, strict=True)
    # The validator does reject a mistake (a misspelt field), so the pass above means something.
    broken = copy.deepcopy(by_kind(path)[("DaemonSet", "otelbpf")])
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capability"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def unit_capabilities() -> set[str]:
    line = next(l for l in UNIT.read_text().splitlines() if l.startswith("AmbientCapabilities="))
    return set(line.split("=", 1)[1].split())


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_capabilities_agree_with_the_unit_and_the_docs(path: Path) -> None:
    sc = agent(path)["securityContext"]
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    added = {f"CAP_{c}" for c in sc["capabilities"]["add"]}
    # The pod runs as root, so tracefs needs no CAP_DAC_READ_SEARCH; otherwise as the unit.
    assert sc["runAsUser"] == 0
    assert added == unit_capabilities() - {"CAP_DAC_READ_SEARCH"}
    doc = (REPO / "docs" / "security.md").read_text()
    row = next(l for l in doc.splitlines() if l.startswith("| Kubernetes DaemonSet |"))
    assert set(re.findall(r"CAP_[A-Z_]+", row)) == added


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_mounts_agree_with_the_config_and_the_unit(path: Path) -> None:
    ds = by_kind(path)[("DaemonSet", "otelbpf")]["spec"]["template"]["spec"]
    host = {v["name"]: v["hostPath"]["path"] for v in ds["volumes"] if "hostPath" in v}
    mounts = {m["mountPath"]: (m["name"], m.get("readOnly", False)) for m in agent(path)["volumeMounts"]}
    for mount_path, read_only in [("/sys/fs/bpf", False), ("/sys/kernel/tracing", True),
                                  ("/sys/kernel/btf", True), ("/sys/fs/cgroup", True),
                                  ("/var/lib/otelbpf", False), ("/etc/machine-id", True)]:
        name, ro = mounts[mount_path]
        assert host[name] == mount_path and ro is read_only, mount_path
    writable = {p for p, (_, ro) in mounts.items() if not ro}
    cfg = agent_config(path)
    assert writable == {"/sys/fs/bpf", str(cfg.state.state_dir)}
    assert cfg.state.pin_dir.parent == Path("/sys/fs/bpf")
    # The unit's only writable paths are the same two.
    unit = UNIT.read_text()
    assert f"ReadWritePaths={cfg.state.state_dir}\n" in unit and f"BindPaths={cfg.state.pin_dir}\n" in unit
    # Program configs from the ConfigMap, mounted where the agent config looks.
    programs = next(v for v in ds["volumes"] if v["name"] == mounts[str(cfg.programs_dir)][0])
    assert programs["configMap"]["name"] == "otelbpf-programs"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_program_configs_are_the_shipped_ones(path: Path) -> None:
    data = by_kind(path)[("ConfigMap", "otelbpf-programs")]["data"]
    assert data
    for name, text in data.items():
        assert text == (REPO / "conf" / "conf.d" / name).read_text(), name
        assert (REPO / "bpf" / name.replace(".toml", ".bpf.c")).is_file()


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_env_ports_probe_and_grace_period(path: Path) -> None:
    container = agent(path)
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert "host.name=$(NODE_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"].split(",")
    cfg = agent_config(path)
    # The agent takes host.name from the variable (Kubernetes expands $(NODE_NAME) before).
    assert cfg.resource["host.name"] == "$(NODE_NAME)"
    # The health endpoint: the container port, the probe and the unit's one allowed bind agree.
    he = cfg.health_endpoint
    assert he.enabled and he.host == "0.0.0.0"  # the kubelet probes the pod address
    port = next(p for p in container["ports"] if p["name"] == "health")
    assert port["containerPort"] == he.port
    probe = container["livenessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/health", "health")
    assert f"SocketBindAllow=tcp:{he.port}\n" in UNIT.read_text()
    # Shutdown bound from docs/reliability.md: max(interval, timeout) + 5 s drain + timeout.
    grace = by_kind(path)[("DaemonSet", "otelbpf")]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > max(cfg.interval, cfg.export.timeout) + 5 + cfg.export.timeout


def collector_config(name: str) -> dict:
    return yaml.safe_load((REPO / "packaging" / "collector" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", ["sidecar", "gateway"])
def test_collector_configs_are_consistent(name: str) -> None:
    cfg = collector_config(name)
    service = cfg["service"]
    assert set(service["extensions"]) <= set(cfg["extensions"])
    for pipeline in service["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline[kind]) <= set(cfg[kind]), (name, kind)
    for exporter in cfg["exporters"].values():
        auth = exporter.get("auth", {}).get("authenticator")
        assert auth is None or auth in service["extensions"]


def test_sidecar_manifest_embeds_the_sidecar_config_and_the_agent_reaches_it() -> None:
    path = REPO / "packaging" / "kubernetes" / "daemonset-sidecar.yaml"
    embedded = by_kind(path)[("ConfigMap", "otelbpf-collector")]["data"]["collector.yaml"]
    assert embedded == (REPO / "packaging" / "collector" / "sidecar.yaml").read_text()
    receiver = collector_config("sidecar")["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert agent_config(path).export.endpoint == f"http://{receiver}"


def test_gateway_agents_push_to_the_gateway_port() -> None:
    cfg = agent_config(REPO / "packaging" / "kubernetes" / "daemonset-gateway.yaml")
    http = collector_config("gateway")["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert cfg.export.endpoint.endswith(":" + http.rsplit(":", 1)[1])
