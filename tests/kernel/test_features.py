"""features.probe() on this machine's kernel (see /work/shared/field-notes.md)."""

from __future__ import annotations

import pytest

from otelbpf.kernel import features

pytestmark = pytest.mark.kernel


def test_probe_matches_this_kernel() -> None:
    f = features.probe()
    assert f.ringbuf and f.batch_ops and f.iter_bpf_map and f.kfunc_map_sum_elem_count and f.enable_stats
    if not features.KPROBE_PMU.exists() and not any(
        (root / "kprobe_events").exists() for root in features.TRACEFS_ROOTS
    ):
        assert not f.kprobe
    if not f.kprobe:
        assert "kprobes are not supported" in f.reasons["kprobe"]
    if not f.fentry:
        assert "fentry/fexit are not supported by this kernel" in f.reasons["fentry"]
    d = f.as_dict()
    assert list(d) == ["kprobe", "fentry", "ringbuf", "batch_ops", "iter_bpf_map", "kfunc_map_sum_elem_count",
                       "enable_stats"]
    assert d["ringbuf"] == (True, "")


def test_probe_on_this_vm() -> None:
    """The documented state of the project's VMs: kprobe False, fentry False, the rest True."""
    f = features.probe()
    assert (f.kprobe, f.fentry) == (False, False)
