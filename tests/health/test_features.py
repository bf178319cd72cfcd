"""health_features() as `otelbpf check` prints it."""

from __future__ import annotations

import pytest

from otelbpf.health import health_features

pytestmark = pytest.mark.kernel


def test_health_features_on_this_kernel(bpf_build):
    features = health_features()
    assert set(features) == {"iter_bpf_map", "kfunc_map_sum_elem_count", "enable_stats"}
    for name, (available, reason) in features.items():
        assert isinstance(available, bool) and isinstance(reason, str), name
        assert available or reason, f"{name} is missing without a reason"
    # The development and CI kernel (6.18) has all three (docs/health.md, field notes).
    assert all(available for available, _ in features.values()), features
