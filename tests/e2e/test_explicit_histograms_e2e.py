"""Explicit-bucket histograms end to end: a real kernel histogram (biolatency), the real agent with
OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=explicit_bucket_histogram, and the exact
cumulative ``le`` buckets queried back from VictoriaMetrics, compared with the kernel map's slots."""

from __future__ import annotations

import numpy as np
import pytest
from agentproc import AgentProcess, programs_dir, write_agent_config
from workloads import GetpidChild, fsync_writes

from otelbpf.kernel.maps import BpfMap

pytestmark = [pytest.mark.kernel, pytest.mark.backend]

BIO_MAX_SLOT = 64  # conf/conf.d/biolatency.toml: exp2 slots 0..64, the sum at key 65


def kernel_slot_totals(pin_dir) -> np.ndarray:
    """Count per exp2 slot over every series of the biolatency map, read straight from the kernel."""
    with BpfMap.from_pin(pin_dir / "biolatency" / "bio_latency") as bio:
        snap = bio.read_all()
    slots = snap.keys[:, 8:16].copy().view("<u8").ravel()
    counts = snap.u64().sum(axis=1)
    keep = slots <= BIO_MAX_SLOT
    return np.bincount(slots[keep].astype(np.int64), weights=counts[keep], minlength=BIO_MAX_SLOT + 1).astype(np.int64)


def test_explicit_le_buckets_equal_the_kernel_slots(tmp_path, bpf_build, victoria_metrics, run_id, pin_dir):
    with GetpidChild() as child:
        config = write_agent_config(
            tmp_path, endpoint=victoria_metrics.otlp_http_endpoint, programs=["biolatency"],
            programs_dir=programs_dir(tmp_path, child.pid, biolatency=True), pin_dir=pin_dir)
        env = {"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}",
               "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "explicit_bucket_histogram"}
        with AgentProcess(config, env=env) as agent:
            agent.wait_log(lambda e: e.get("event") == "flushed" and e.get("ok"))
            fsync_writes(24)
            assert agent.stop() == 0

    slots = kernel_slot_totals(pin_dir)
    assert slots.sum() >= 24
    sel = f'test_run="{run_id}"'
    stored = victoria_metrics.query(f"sum by (le) (bio_latency_microseconds_bucket{{{sel}}})")
    assert stored and all("vmrange" not in s.labels for s in stored)  # classic buckets, not native
    le = {float(s.labels["le"]): s.value for s in stored}
    # Slot k counts (2^(k-1), 2^k] us, slot 0 everything up to 1 us: le = 2^k holds slots 0..k.
    expected = {float(2 ** k): int(slots[:k + 1].sum()) for k in range(BIO_MAX_SLOT + 1)}
    expected[float("inf")] = int(slots.sum())
    assert le == expected
    assert victoria_metrics.value(f"sum(bio_latency_microseconds_count{{{sel}}})") == slots.sum()
