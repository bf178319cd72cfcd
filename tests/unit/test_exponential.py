"""Vectorised exponential histograms: identical to the OTel SDK's own aggregation, value for value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.context import Context
from opentelemetry.sdk.metrics._internal.aggregation import (
    AggregationTemporality,
    _ExponentialBucketHistogramAggregation,
)
from opentelemetry.sdk.metrics._internal.exemplar import (
    SimpleFixedSizeExemplarReservoir,
)
from opentelemetry.sdk.metrics._internal.exponential_histogram.mapping.exponent_mapping import (
    ExponentMapping,
)
from opentelemetry.sdk.metrics._internal.exponential_histogram.mapping.logarithm_mapping import (
    LogarithmMapping,
)
from opentelemetry.sdk.metrics._internal.measurement import Measurement

from otelbpf.aggregate.exponential import (
    ExponentialHistograms,
    scale_change,
    value_to_index,
)

# --- the reference: the SDK's aggregation fed one value at a time ---------------------------------------

def sdk_point(values, max_size: int, max_scale: int):
    agg = _ExponentialBucketHistogramAggregation(
        {}, lambda size=1: SimpleFixedSizeExemplarReservoir(size=size), AggregationTemporality.DELTA, 0,
        max_size=max_size, max_scale=max_scale)
    for v in values:
        agg.aggregate(Measurement(v, 0, None, Context(), None), should_sample_exemplar=False)
        for buckets in (agg._value_positive, agg._value_negative):
            if buckets is not None and len(buckets) > max_size:
                # After a downscale that re-maps a value one bucket lower, the SDK's span can be
                # max_size + 1: its ring buffer then aliases two buckets. No reference answer.
                raise IndexError("SDK buckets aliased")
    return agg.collect(AggregationTemporality.CUMULATIVE, 1)


def nonzero_buckets(offset: int, counts) -> dict[int, int]:
    # the SDK's backing array may carry zero buckets past the last used index
    return {offset + i: c for i, c in enumerate(counts) if c}


def sdk_summary(values, max_size, max_scale):
    try:
        p = sdk_point(values, max_size, max_scale)
    except IndexError:
        # the SDK's Buckets.downscale can also index past its backing list in that state
        return None
    return (p.count, p.zero_count, p.scale, nonzero_buckets(p.positive.offset, p.positive.bucket_counts),
            nonzero_buckets(p.negative.offset, p.negative.bucket_counts), p.sum, p.min, p.max)


def our_summary(point):
    return (point.count, point.zero_count, point.scale, nonzero_buckets(point.positive_offset, point.positive_counts),
            nonzero_buckets(point.negative_offset, point.negative_counts), point.sum, point.min, point.max)


def record_in_batches(values, max_size, max_scale, batches: int, dtype=None):
    h = ExponentialHistograms(max_size, max_scale)
    arr = np.array(values, dtype=dtype)
    for part in np.array_split(arr, batches):
        if part.size:
            h.record(np.zeros(part.size, dtype=np.intp), part)
    return h


# --- value strategies: the places where mappings go wrong ------------------------------------------------

def _near(x: float) -> st.SearchStrategy[float]:
    """x and its float neighbours (positive, finite ones only)."""
    return st.sampled_from([y for y in (x, math.nextafter(x, 0.0), math.nextafter(x, math.inf))
                            if 0 < y < math.inf])


powers_of_two = st.integers(-1074, 1023).map(lambda k: math.ldexp(1.0, k)).flatmap(_near)
# base^i at scale s = 2^(i / 2^s): the boundaries of the logarithm mapping
powers_of_base = st.tuples(st.integers(-2000, 2000), st.integers(1, 8)).map(
    lambda t: 2.0 ** (t[0] / 2 ** t[1])).flatmap(_near)
plain = st.floats(min_value=5e-324, max_value=1.7e308, allow_nan=False, allow_infinity=False)
magnitudes = st.one_of(powers_of_two, powers_of_base, plain, st.just(0.0))
signed = st.tuples(magnitudes, st.booleans()).map(lambda t: -t[0] if t[1] else t[0])

settings_ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings_
@given(values=st.lists(signed, min_size=1, max_size=60),
       max_size=st.sampled_from([2, 4, 8, 16, 160]),
       max_scale=st.sampled_from([-4, -1, 0, 1, 3, 8, 20]),
       batches=st.integers(1, 4))
@example(values=[2.0, math.nextafter(4.0, 0), 1e300, 5e-324], max_size=2, max_scale=20, batches=1)
@example(values=[0.0, 0.0], max_size=160, max_scale=20, batches=1)
def test_floats_match_sdk(values, max_size, max_scale, batches):
    expected = sdk_summary(values, max_size, max_scale)
    if expected is None:
        return
    h = record_in_batches(values, max_size, max_scale, batches)
    assert our_summary(h.point(0, (), 0, 1)) == expected


@settings_
@given(values=st.lists(st.one_of(st.integers(0, 2**64 - 1),
                                 st.integers(0, 63).map(lambda k: 2**k),
                                 st.tuples(st.integers(1, 63), st.sampled_from([-1, 1])).map(lambda t: 2**t[0] + t[1]),
                                 st.integers(0, 10_000)),
                       min_size=1, max_size=60),
       max_size=st.sampled_from([2, 8, 160]),
       max_scale=st.sampled_from([0, 2, 20]),
       batches=st.integers(1, 3))
def test_u64_matches_sdk(values, max_size, max_scale, batches):
    expected = sdk_summary(values, max_size, max_scale)
    if expected is None:
        return
    h = record_in_batches(values, max_size, max_scale, batches, dtype=np.uint64)
    assert our_summary(h.point(0, (), 0, 1)) == expected


@settings_
@given(values=st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=40),
       max_size=st.sampled_from([4, 160]))
def test_signed_ints_match_sdk(values, max_size):
    expected = sdk_summary(values, max_size, 20)
    if expected is None:
        return
    h = record_in_batches(values, max_size, 20, 2, dtype=np.int64)
    assert our_summary(h.point(0, (), 0, 1)) == expected


@settings(max_examples=50, deadline=None)
@given(data=st.lists(st.tuples(st.integers(0, 5), signed), min_size=1, max_size=120),
       max_size=st.sampled_from([4, 160]))
def test_many_groups_are_independent(data, max_size):
    groups = np.array([g for g, _ in data], dtype=np.intp)
    values = np.array([v for _, v in data])
    h = ExponentialHistograms(max_size, 20)
    h.record(groups, values)
    for g in range(6):
        mine = [v for gg, v in data if gg == g]
        if not mine:
            assert h.count(g) == 0
            continue
        expected = sdk_summary(mine, max_size, 20)
        if expected is not None:
            assert our_summary(h.point(g, (), 0, 1)) == expected


@settings(max_examples=200, deadline=None)
@given(x=st.one_of(powers_of_two, powers_of_base, plain), scale=st.integers(-10, 20))
def test_value_to_index_matches_sdk_mapping(x, scale):
    mapping = LogarithmMapping(scale) if scale > 0 else ExponentMapping(scale)
    assert int(value_to_index([x], scale)[0]) == mapping.map_to_index(x)


def test_exact_powers_of_two_are_upper_bounds():
    # (2^(k-1), 2^k] at scale 0: 2^k is index k-1
    assert value_to_index([1.0, 2.0, 3.0, 4.0, 0.5], 0).tolist() == [-1, 0, 1, 1, -2]
    assert value_to_index([4.0], 3).tolist() == [15]
    assert value_to_index([-4.0], 3).tolist() == [15]  # |v|


def test_value_to_index_rejects_zero_and_nonfinite():
    for bad in ([0.0], [math.inf], [math.nan]):
        with pytest.raises(ValueError):
            value_to_index(bad, 0)


def test_scale_change():
    assert scale_change([0, 0], [159, 160], 160).tolist() == [0, 1]
    assert scale_change(-5, 1000, 4).tolist() == 9


def test_weights_count_events_several_times():
    h = ExponentialHistograms(160, 0)
    h.record([0, 0, 1], [3.0, 0.0, 5.0], weights=np.array([2, 3, 1]))
    p = h.point(0, (), 0, 1)
    assert (p.count, p.zero_count, p.positive_offset, p.positive_counts, p.sum) == (5, 3, 1, (2,), 6.0)
    h.record([1], [5], weights=4)
    assert h.point(1, (), 0, 1).count == 5


def test_nonfinite_values_are_dropped_and_counted():
    h = ExponentialHistograms()
    h.record([0, 0, 0], [1.0, math.nan, math.inf])
    assert h.count(0) == 1 and h.dropped_nonfinite == 2


def test_reset_copy_and_empty_groups():
    h = ExponentialHistograms(160, 20)
    h.record([0, 3], [1.5, 2.5])
    snapshot = h.copy()
    h.reset([0])
    assert h.count(0) == 0 and h.point(0, (), 0, 1).positive_counts == ()
    assert h.scale(3) == 20 and snapshot.count(0) == 1
    h.record([0], [7.0])
    assert h.point(0, (), 0, 1).count == 1
    assert h.point(50, (), 0, 1).count == 0  # never recorded


def test_input_validation():
    h = ExponentialHistograms()
    with pytest.raises(ValueError):
        h.record([0, 1], [1.0])
    with pytest.raises(ValueError):
        h.record([-1], [1.0])
    with pytest.raises(ValueError):
        ExponentialHistograms(max_size=1)
    with pytest.raises(ValueError):
        ExponentialHistograms(max_scale=21)


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(st.tuples(st.integers(0, 4), signed), min_size=1, max_size=40),
                        min_size=2, max_size=4),
       max_size=st.sampled_from([4, 16, 160]))
def test_groups_at_different_scales_across_batches(batches, max_size):
    """Series downscale independently; later batches mix groups at different scales."""
    h = ExponentialHistograms(max_size, 20)
    for batch in batches:
        h.record([g for g, _ in batch], [v for _, v in batch])
    for g in range(5):
        mine = [v for batch in batches for gg, v in batch if gg == g]
        expected = sdk_summary(mine, max_size, 20) if mine else None
        if expected is not None:
            assert our_summary(h.point(g, (), 0, 1)) == expected


def test_scale_crossing_zero_with_values_next_to_powers_of_two():
    """The SDK maps 2^k(1+ulp) one bucket apart at positive scales and at scale <= 0; which one a
    value gets depends on when the series crossed scale 0. Such batches are replayed exactly."""
    rng = np.random.default_rng(11)
    for trial in range(30):
        ks = rng.integers(-300, 300, 25)
        values = [math.nextafter(math.ldexp(1.0, int(k)), math.inf if i % 2 else 0.0) for i, k in enumerate(ks)]
        expected = sdk_summary(values, 4, 3)
        if expected is None:
            continue
        h = record_in_batches(values, 4, 3, 1 + trial % 3)
        assert our_summary(h.point(0, (), 0, 1)) == expected
