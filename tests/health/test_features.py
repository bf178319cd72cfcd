"""health_features() as `otelbpf check` prints it."""

from __future__ import annotations

import pytest

from otelbpf.health import health_features
from otelbpf.kernel.features import probe

pytestmark = pytest.mark.kernel


def test_health_features_follow_the_kernel_probe(bpf_build):
    """What `otelbpf check` says about health follows the probe (itself checked against the real
    operations in tests/kernel/test_features.py); a missing one says why and what is done instead."""
    features = health_features()
    assert set(features) == {"iter_bpf_map", "kfunc_map_sum_elem_count", "enable_stats"}
    kernel = probe().as_dict()
    for name, (available, reason) in features.items():
        assert available == kernel[name][0], name
        if available:
            assert reason == "", name
        else:
            assert reason.startswith(kernel[name][1] + "; ") and len(reason) > len(kernel[name][1]) + 2, name
