"""Vectorised explicit-bucket histograms: identical to the OTel SDK's own aggregation, value for value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry.context import Context
from opentelemetry.sdk.metrics._internal.aggregation import (
    _DEFAULT_EXPLICIT_BUCKET_HISTOGRAM_AGGREGATION_BOUNDARIES,
    AggregationTemporality,
    _ExplicitBucketHistogramAggregation,
)
from opentelemetry.sdk.metrics._internal.exemplar import AlignedHistogramBucketExemplarReservoir
from opentelemetry.sdk.metrics._internal.measurement import Measurement

from otelbpf.aggregate.explicit import DEFAULT_BOUNDS, ExplicitHistograms, bucket_indexes


def sdk_summary(values, bounds):
    """The SDK's aggregation fed one value at a time (the reference)."""
    agg = _ExplicitBucketHistogramAggregation(
        {}, AggregationTemporality.DELTA, 0,
        lambda **kw: AlignedHistogramBucketExemplarReservoir(**kw), boundaries=bounds)
    for v in values:
        agg.aggregate(Measurement(v, 0, None, Context(), None), should_sample_exemplar=False)
    p = agg.collect(AggregationTemporality.CUMULATIVE, 1)
    return p.count, tuple(p.bucket_counts), p.sum, p.min, p.max, tuple(p.explicit_bounds)


def our_summary(point):
    return point.count, point.bucket_counts, point.sum, point.min, point.max, point.bounds


def recorded(values, bounds, batches: int, dtype):
    h = ExplicitHistograms(bounds)
    for part in np.array_split(np.array(values, dtype=dtype), batches):
        if part.size:
            h.record(np.zeros(part.size, dtype=np.intp), part)
    return h.point(0, (), 0, 1)


def _around(b: float) -> list[float]:
    return [b, math.nextafter(b, -math.inf), math.nextafter(b, math.inf)]


bounds_strategy = st.one_of(
    st.just(DEFAULT_BOUNDS),
    st.lists(st.floats(-1e19, 2e19, allow_nan=False), min_size=1, max_size=12, unique=True).map(sorted).map(tuple),
    # powers of two and their float neighbours: bounds a u64 cannot be converted next to exactly
    st.lists(st.integers(0, 64).map(lambda k: 2.0 ** k).flatmap(lambda b: st.sampled_from(_around(b))),
             min_size=1, max_size=8, unique=True).map(sorted).map(tuple),
)
settings_ = settings(max_examples=300, deadline=None)


def test_default_bounds_are_the_sdks():
    assert DEFAULT_BOUNDS == tuple(_DEFAULT_EXPLICIT_BUCKET_HISTOGRAM_AGGREGATION_BOUNDARIES)


@settings_
@given(data=st.data(), bounds=bounds_strategy, batches=st.integers(1, 3))
@example(data=None, bounds=(float(2**63), float(2**64)), batches=1)
def test_u64_matches_sdk(data, bounds, batches):
    if data is None:  # the values a float64 conversion would move across 2^63 and 2^64
        values = [2**63 - 1, 2**63, 2**63 + 1, 2**64 - 1, 0]
    else:
        near = [int(b) + d for b in bounds if 0 <= b < 2**64 for d in (-1, 0, 1) if 0 <= int(b) + d < 2**64]
        values = data.draw(st.lists(st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 20_000),
                                              st.sampled_from(near or [0])), min_size=1, max_size=50))
    assert our_summary(recorded(values, bounds, batches, np.uint64)) == sdk_summary(values, bounds)


@settings_
@given(values=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=50), bounds=bounds_strategy,
       batches=st.integers(1, 3))
def test_s64_matches_sdk(values, bounds, batches):
    assert our_summary(recorded(values, bounds, batches, np.int64)) == sdk_summary(values, bounds)


@settings_
@given(values=st.lists(st.floats(-1e300, 1e300, allow_nan=False), min_size=1, max_size=50),
       bounds=bounds_strategy, batches=st.integers(1, 3))
def test_floats_match_sdk(values, bounds, batches):
    values = values + [b for b in bounds[:3]]  # values exactly on a bound belong to the bucket it ends
    assert our_summary(recorded(values, bounds, batches, np.float64)) == sdk_summary(values, bounds)


def test_bucket_upper_bound_is_inclusive():
    idx = bucket_indexes(np.array([0, 1, 5, 6, 10, 11], dtype=np.uint64), (0.0, 5.0, 10.0))
    assert idx.tolist() == [0, 1, 1, 2, 2, 3]


def test_many_groups_weights_and_reset():
    h = ExplicitHistograms((10.0, 100.0))
    h.record(np.array([0, 1, 1, 3]), np.array([5, 50, 500, 10], dtype=np.uint64), np.array([2, 1, 3, 1]))
    p1 = h.point(1, (("a", "b"),), 7, 8)
    assert (p1.bucket_counts, p1.count, p1.sum, p1.min, p1.max) == ((0, 1, 3), 4, 1550, 50, 500)
    assert h.point(0, (), 0, 1).bucket_counts == (2, 0, 0) and h.point(0, (), 0, 1).sum == 10
    assert h.point(2, (), 0, 1).count == 0 and h.point(2, (), 0, 1).min is None
    snapshot = h.copy()
    h.reset([1])
    assert h.point(1, (), 0, 1).count == 0 and snapshot.point(1, (), 0, 1).count == 4
    h.record(np.array([0]), np.array([1.0, math.inf])[:1])
    h.record(np.array([0, 0]), np.array([math.nan, 1.0]))
    assert h.dropped_nonfinite == 1


def test_invalid_bounds_and_input():
    with pytest.raises(ValueError, match="increasing"):
        ExplicitHistograms((1.0, 1.0))
    with pytest.raises(ValueError, match="finite"):
        ExplicitHistograms((1.0, math.inf))
    h = ExplicitHistograms()
    with pytest.raises(ValueError, match="differ in length"):
        h.record([0, 1], [1])
    with pytest.raises(ValueError, match=">= 0"):
        h.record([-1], [1])
