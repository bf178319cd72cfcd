"""docs/metrics.md cannot drift: the real agent, every shipped program and both builtins, exporting
over OTLP/gRPC; every metric it sends must be documented with its instrument, unit and attributes,
every program config's metrics must be listed, and VictoriaMetrics must store each one under the
documented Prometheus name (the received requests are posted to it as they were sent)."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from agentproc import REPO, AgentProcess, syscalls_toml, write_agent_config
from workloads import GetpidChild, fsync_writes

from otelbpf.config.program import HistogramConfig, load_program_config

pytestmark = [pytest.mark.kernel, pytest.mark.backend]

DOC = REPO / "docs" / "metrics.md"
CONF_D = REPO / "conf" / "conf.d"
ROW = re.compile(r"^\| `([^`]+)` \| (\w+) \| `([^`]*)` \| ([^|]*) \| `([^`]+)` \|$")
# On any metric's overflow series (docs/metrics.md says so); not part of a metric's own attributes.
OVERFLOW = "otel.metric.overflow"


def documented() -> dict[str, tuple[str, str, frozenset[str], str]]:
    """name → (instrument, unit, attribute keys, Prometheus name), from the doc's tables."""
    rows = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            name, instrument, unit, attrs, prom = m.groups()
            assert name not in rows, f"{name} documented twice"
            rows[name] = (instrument, unit, frozenset(re.findall(r"`([^`]+)`", attrs)), prom)
    return rows


def config_rows() -> dict[str, tuple[str, str, frozenset[str]]]:
    """What each shipped program config says it emits."""
    rows = {}
    for path in sorted(CONF_D.glob("*.toml")):
        cfg = load_program_config(path, REPO / "bpf" / "build")
        for m in (*cfg.counters, *cfg.histograms):
            labels = m.series_labels if isinstance(m, HistogramConfig) else m.labels
            names = {label.name for label in labels} | ({"cpu"} if m.per_cpu == "label" else set())
            rows[m.name] = ("Histogram" if isinstance(m, HistogramConfig) else "Counter", m.unit, frozenset(names))
        for s in cfg.streams:
            for c in s.counters:
                rows[c.name] = ("Counter", c.unit, frozenset(label.name for label in c.labels))
            for h in s.histograms:
                rows[h.name] = ("Histogram", h.unit, frozenset(label.name for label in h.labels))
    return rows


def instrument(metric) -> str:
    kind = metric.WhichOneof("data")
    if kind == "sum":
        return "Counter" if metric.sum.is_monotonic else "UpDownCounter"
    return {"gauge": "Gauge", "histogram": "Histogram", "exponential_histogram": "Histogram"}[kind]


def emitted(received) -> dict[str, tuple[str, str, frozenset[str]]]:
    """name → (instrument, unit, every attribute key seen on its points) over all requests."""
    out: dict[str, tuple[str, str, set[str]]] = {}
    for export in received:
        for rm in export.request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    points = getattr(m, m.WhichOneof("data")).data_points
                    keys = out.setdefault(m.name, (instrument(m), m.unit, set()))[2]
                    keys.update(kv.key for dp in points for kv in dp.attributes if kv.key != OVERFLOW)
    return {name: (i, u, frozenset(k)) for name, (i, u, k) in out.items()}


def post_to_victoria_metrics(vm, request) -> None:
    req = urllib.request.Request(vm.otlp_http_endpoint.rstrip("/") + "/v1/metrics", data=request.SerializeToString(),
                                 headers={"Content-Type": "application/x-protobuf"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as response:
        assert response.status == 200


def test_every_config_metric_is_documented():
    doc = documented()
    missing = [f"| `{name}` | {i} | `{u}` | {', '.join(f'`{a}`' for a in sorted(attrs)) or '—'} | `PROMETHEUS NAME` |"
               for name, (i, u, attrs) in config_rows().items()
               if name not in doc or doc[name][:3] != (i, u, attrs)]
    assert not missing, "add (or fix) these rows under 'Shipped programs' in docs/metrics.md:\n" + "\n".join(missing)


def test_docs_match_what_the_agent_emits(tmp_path, bpf_build, grpc_receiver, victoria_metrics, run_id, pin_dir):
    programs = tmp_path / "conf.d"
    programs.mkdir()
    names = sorted(p.stem for p in CONF_D.glob("*.toml"))
    with GetpidChild() as child:
        for name in names:
            text = syscalls_toml(child.pid) if name == "syscalls" else (CONF_D / f"{name}.toml").read_text()
            (programs / f"{name}.toml").write_text(text)
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc", programs=names,
                                    programs_dir=programs, pin_dir=pin_dir, builtins=True)
        with AgentProcess(config, env={"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"}) as agent:
            agent.wait_log(lambda e: e.get("event") == "flushed" and e.get("ok"))
            child.getpid(5)
            fsync_writes(4)
            sleeper = subprocess.Popen(["sleep", "30"])
            time.sleep(0.2)
            sleeper.send_signal(signal.SIGWINCH)
            sleeper.kill()
            sleeper.wait()
            seen = agent.count_events("flushed")
            agent.wait_log(lambda e: e.get("event") == "flushed" and agent.count_events("flushed") >= seen + 2)
            assert agent.stop() == 0

    doc = documented()
    sent = emitted(grpc_receiver.received)
    problems = []
    for name, (inst, unit, attrs) in sorted(sent.items()):
        if name not in doc:
            problems.append(f"{name} ({inst}, {unit!r}, {sorted(attrs)}) is not in docs/metrics.md")
        elif doc[name][:2] != (inst, unit) or not attrs <= doc[name][2]:
            problems.append(f"{name}: emitted {inst} {unit!r} {sorted(attrs)}, documented {doc[name][:3]}")
    assert not problems, "\n".join(problems)
    # Everything documented is really emitted: by this run, or (no event happened) by a shipped config.
    assert set(doc) - set(sent) - set(config_rows()) == set(), "documented but never emitted"
    assert {"process.cpu.time", "bpf.map.entry.usage", "bpf.program.runs", "otelbpf.export.requests",
            "otelbpf.stream.events", "syscalls", "execsnoop.execs", "signals.generated"} <= set(sent)

    for export in grpc_receiver.received[-3:]:
        post_to_victoria_metrics(victoria_metrics, export.request)
    stored = {s.labels["__name__"] for s in victoria_metrics.query(f'{{__name__!="",test_run="{run_id}"}}')}
    unmatched = []
    for name in sent:
        inst, prom = doc[name][0], doc[name][3]
        expected = {prom + "_count", prom + "_sum"} if inst == "Histogram" else {prom}
        last = [m for rm in grpc_receiver.received[-1].request.resource_metrics for sm in rm.scope_metrics
                for m in sm.metrics if m.name == name]
        if last and getattr(last[0], last[0].WhichOneof("data")).data_points and not expected <= stored:
            unmatched.append(f"{name}: documented {prom}")
    assert not unmatched, f"VictoriaMetrics stored other names: {sorted(stored)}\n" + "\n".join(unmatched)
