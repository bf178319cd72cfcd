"""The Grafana dashboard and Prometheus alert rules parse and query only metrics we export.

Names follow VictoriaMetrics' -opentelemetry.usePrometheusNaming translation (the OpenTelemetry
"OTLP metric points to Prometheus" rules): name tokens split on ``/_.-: ``, unit appended unless
already a token (By -> bytes, ns -> nanoseconds, "1" -> nothing, ``{...}`` annotations dropped,
``a/s`` -> ``a_per_second``), ``_total`` for monotonic sums and ``_ratio`` for gauges of unit "1".
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from otelbpf.health.map_types import CountMethod
from otelbpf.health.pressure import MAP_METRICS, MapObservation
from otelbpf.health.program_stats import GAUGES, SUMS

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "packaging" / "grafana" / "bpf-health.json"
RULES = REPO / "packaging" / "alerts" / "bpf-health.rules.yml"

_UNITS = {"By": "bytes", "ns": "nanoseconds", "s": "seconds", "ms": "milliseconds", "us": "microseconds", "1": ""}
_PER_UNITS = {"s": "second", "m": "minute", "h": "hour"}


def prometheus_name(name: str, unit: str, kind: str) -> str:
    tokens = [t for t in re.split(r"[/_.\-: ]", name) if t]
    main, _, per = unit.partition("/")
    if main and "{" not in main:
        main = _UNITS.get(main, main)
        if main and main not in tokens:
            tokens.append(main)
    if per and "{" not in per:
        per = _PER_UNITS.get(per, per)
        if per not in tokens:
            tokens += ["per", per]
    if kind == "counter":
        tokens = [t for t in tokens if t != "total"] + ["total"]
    elif kind == "gauge" and unit == "1":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    return "_".join(tokens)


def label(attribute: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)


MAP_LABELS = {
    label(k)
    for k, _ in MapObservation(
        id=1, name="m", type="hash", max_entries=1, count_method=CountMethod.KFUNC, entries=1, programs=("p",)
    ).attributes()
}
PROGRAM_LABELS = {"bpf_program_id", "bpf_program_name", "bpf_program_type", "bpf_program_tag"}
RESOURCE_LABELS = {"host_name", "service_name", "service_instance_id", "job", "instance"}
EXPORTED: dict[str, set[str]] = {
    **{prometheus_name(n, u, "gauge"): MAP_LABELS for n, (_, u) in MAP_METRICS.items()},
    **{prometheus_name(n, u, "counter"): PROGRAM_LABELS for n, (_, u) in SUMS.items()},
    **{prometheus_name(n, u, "gauge"): PROGRAM_LABELS for n, (_, u) in GAUGES.items()},
}

_KEYWORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right"}


def query_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) used by a PromQL expression."""
    labels: set[str] = set()
    for selector in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", selector))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {g.strip() for g in grouping.split(",") if g.strip()}
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    names = {
        m.group(1)
        for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", bare)
        if m.group(1) not in _KEYWORDS and not bare[: m.start()].endswith("$")
    }
    return names, labels


def check_query(expr: str) -> None:
    names, labels = query_names(expr)
    assert names, f"no metric in {expr!r}"
    for name in names:
        assert name in EXPORTED, f"{expr!r}: {name} is not a metric otelbpf exports ({sorted(EXPORTED)})"
        assert labels <= EXPORTED[name] | RESOURCE_LABELS, f"{expr!r}: unknown labels {labels - EXPORTED[name]}"


def test_prometheus_names():
    assert prometheus_name("bpf.map.entry.utilization", "1", "gauge") == "bpf_map_entry_utilization_ratio"
    assert prometheus_name("bpf.program.run.time", "s", "counter") == "bpf_program_run_time_seconds_total"
    assert prometheus_name("bpf.program.run.rate", "{run}/s", "gauge") == "bpf_program_run_rate_per_second"
    assert prometheus_name("bpf.map.entry.usage", "{entry}", "gauge") == "bpf_map_entry_usage"
    assert "bpf_map_pressure_level" in EXPORTED and "bpf_ringbuf_usage_bytes" in EXPORTED


# --- dashboard ----------------------------------------------------------------------------------


def test_dashboard_panels_query_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    titles = {p["title"] for p in panels}
    assert {"Map utilisation", "Map utilisation trend (top 10)", "Critical maps", "Program CPU share (top 10)",
            "Top programs by run time"} <= titles
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            check_query(target["expr"].replace("$__range", "1h"))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


# --- alert rules: a YAML subset reader (PyYAML is not a dependency) -------------------------------


def parse_yaml_subset(text: str):
    """Block mappings, block sequences of mappings, plain and double-quoted scalars, comments."""
    lines = [
        (len(raw) - len(raw.lstrip(" ")), raw.strip())
        for raw in text.splitlines()
        if raw.strip() and not raw.lstrip().startswith("#")
    ]
    pos = 0

    def scalar(s: str):
        return json.loads(s) if s.startswith('"') else s

    def block(indent: int):
        return sequence(indent) if lines[pos][1].startswith("- ") else mapping(indent)

    def mapping(indent: int) -> dict:
        nonlocal pos
        out = {}
        while pos < len(lines) and lines[pos][0] == indent and not lines[pos][1].startswith("- "):
            key, sep, rest = lines[pos][1].partition(":")
            assert sep, f"not a 'key: value' line: {lines[pos][1]!r}"
            pos += 1
            if rest.strip():
                out[key] = scalar(rest.strip())
            else:
                assert pos < len(lines) and lines[pos][0] > indent, f"{key}: empty block"
                out[key] = block(lines[pos][0])
        return out

    def sequence(indent: int) -> list:
        nonlocal pos
        out = []
        while pos < len(lines) and lines[pos][0] == indent and lines[pos][1].startswith("- "):
            lines[pos] = (indent + 2, lines[pos][1][2:])  # "- key: v" opens a mapping at indent + 2
            out.append(mapping(indent + 2))
        return out

    result = block(lines[0][0])
    assert pos == len(lines), f"unparsed from line {lines[pos][1]!r}"
    return result


def load_rules() -> dict:
    return parse_yaml_subset(RULES.read_text())


def test_subset_reader_agrees_with_pyyaml_when_installed():
    if importlib.util.find_spec("yaml") is None:
        pytest.skip("PyYAML not installed: the subset reader alone checks the rules file")
    import yaml

    assert load_rules() == yaml.safe_load(RULES.read_text())


def test_alert_rules():
    rules = {r["alert"]: r for group in load_rules()["groups"] for r in group["rules"]}
    assert set(rules) == {
        "BpfMapUtilizationWarning",
        "BpfMapUtilizationCritical",
        "BpfProgramCpuShareHigh",
        "BpfProgramAverageRunTimeHigh",
        "BpfProgramRunRateHigh",
    }
    for name, rule in rules.items():
        check_query(rule["expr"])
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        for text in rule["annotations"].values():
            used = set(re.findall(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)", text))
            metrics, _ = query_names(rule["expr"])
            allowed = set().union(*(EXPORTED[m] for m in metrics)) | RESOURCE_LABELS
            assert used <= allowed, (name, used - allowed)
    assert "> 0.01" in rules["BpfProgramCpuShareHigh"]["expr"]
    assert "> 0.000001" in rules["BpfProgramAverageRunTimeHigh"]["expr"]  # 1 µs
    assert "> 100000" in rules["BpfProgramRunRateHigh"]["expr"]
