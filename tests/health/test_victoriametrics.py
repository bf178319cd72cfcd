"""End to end: host BPF health metrics pushed over OTLP/HTTP into VictoriaMetrics 1.112 with
-opentelemetry.usePrometheusNaming, queried by the names the dashboard and alert rules use."""

from __future__ import annotations

import os
import time
import urllib.request

import pytest

from otelbpf.export.encode import encode
from otelbpf.health.map_pressure import MapPressure
from otelbpf.health.program_stats import ProgramStats
from otelbpf.kernel.object import BpfObject
from otelbpf.metrics.model import MetricBatch, Resource

from .conftest import map_pressure_config, program_stats_config
from .test_packaging import EXPORTED

pytestmark = [pytest.mark.kernel, pytest.mark.backend, pytest.mark.slow]


def push(vm, metrics) -> None:
    request = encode(
        Resource((("service.name", "otelbpf-test"), ("host.name", "health-e2e"))),
        [MetricBatch(scope="otelbpf.health", metrics=tuple(metrics))],
    )
    post = urllib.request.Request(
        f"{vm.otlp_http_endpoint}/v1/metrics",
        data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    with urllib.request.urlopen(post, timeout=10) as response:
        assert response.status == 200


def wait_for_series(vm, promql: str, timeout: float = 15.0) -> None:
    """Freshly ingested samples can take a moment to become searchable, even after force_flush."""
    deadline = time.monotonic() + timeout
    while not vm.query(promql):
        assert time.monotonic() < deadline, f"{promql} never became queryable:\n{vm.log_text()[-2000:]}"
        time.sleep(0.2)


def test_health_metrics_reach_victoriametrics(bpf_build, map_owner, own_victoria_metrics):
    maps = MapPressure(map_pressure_config(include=("hq_*", "health_rb")), bpf_build)
    programs = ProgramStats(program_stats_config(include=("health_tp",)))
    tracepoint = BpfObject.open(bpf_build / "tests" / "health_tracepoint.bpf.o")
    try:
        tracepoint.load()
        tracepoint.attach("health_tp")
        own_id = tracepoint.programs["health_tp"].id  # other processes may run programs of the same name
        programs.collect(time.time_ns())
        for _ in range(10):
            os.sched_get_priority_max(os.SCHED_OTHER)
        push(own_victoria_metrics, maps.collect(time.time_ns()) + programs.collect(time.time_ns()))
    finally:
        maps.close()
        programs.close()
        tracepoint.close()

    wait_for_series(own_victoria_metrics, "bpf_map_entry_limit")
    names = set(own_victoria_metrics.metric_names())
    missing = set(EXPORTED) - names
    assert not missing, f"expected names not stored; VictoriaMetrics has {sorted(names)}"
    hash_id = map_owner.ids["hash"]
    assert own_victoria_metrics.value(f'bpf_map_entry_usage{{bpf_map_id="{hash_id}"}}') == 900
    assert own_victoria_metrics.value(f'bpf_map_entry_utilization_ratio{{bpf_map_id="{hash_id}"}}') == 0.9
    # The alert rule expressions select exactly the maps at that level.
    critical = own_victoria_metrics.query(
        "(bpf_map_entry_utilization_ratio or bpf_ringbuf_utilization_ratio) and bpf_map_pressure_level == 2")
    assert str(hash_id) in {s.labels["bpf_map_id"] for s in critical}
    assert all(s.labels["bpf_map_prealloc_full"] == "false" for s in critical)
    rb = map_owner.ids["ringbuf"]
    assert own_victoria_metrics.value(f'bpf_ringbuf_usage_bytes{{bpf_map_id="{rb}"}}') == 12 * 1024
    (ring,) = own_victoria_metrics.query(f'bpf_ringbuf_usage_bytes{{bpf_map_id="{rb}"}}')
    # An OTLP array attribute; VictoriaMetrics 1.112 stores it as its own JSON rendering of the
    # array's values (documented in docs/metrics.md), Prometheus as ["fill_ringbuf"].
    assert '"fill_ringbuf"' in ring.labels["bpf_map_programs"]
    tp = f'bpf_program_name="health_tp",bpf_program_id="{own_id}"'
    assert own_victoria_metrics.value(f"bpf_program_runs_total{{{tp}}}") >= 10
    assert own_victoria_metrics.value(f"bpf_program_run_average_time_seconds{{{tp}}}") > 0
