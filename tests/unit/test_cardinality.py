"""Per-metric cardinality limit with the otel.metric.overflow series."""

from __future__ import annotations

import numpy as np
import pytest

from otelbpf.aggregate.buckets import BucketLayout
from otelbpf.aggregate.cardinality import (
    OVERFLOW_ATTRIBUTES,
    CardinalityLimiter,
    merge_points,
)
from otelbpf.aggregate.exponential import ExponentialHistograms
from otelbpf.metrics.model import HistogramPoint, Metric, MetricKind, NumberPoint


def attrs(i: int):
    return (("pid", str(i)),)


def counter(n: int, start_value: int = 1) -> Metric:
    points = tuple(NumberPoint(attrs(i), start_value + i, 10, 0) for i in range(n))
    return Metric("calls", "", "1", MetricKind.SUM, points)


def test_first_limit_minus_one_admitted_rest_folded():
    limiter = CardinalityLimiter(4)
    out = limiter.apply(counter(6))
    assert [p.attributes for p in out.points] == [attrs(0), attrs(1), attrs(2), OVERFLOW_ATTRIBUTES]
    assert out.points[-1].value == 4 + 5 + 6
    assert len(out.points) == 4  # the overflow series counts toward the limit
    assert all(limiter.admitted_set("calls", attrs(i)) for i in range(3))
    assert not limiter.admitted_set("calls", attrs(3))


def test_under_the_limit_nothing_changes():
    limiter = CardinalityLimiter(10)
    metric = counter(9)
    assert limiter.apply(metric) is metric


def test_admitted_sets_are_remembered_across_intervals():
    limiter = CardinalityLimiter(3)
    limiter.apply(counter(2))
    # next interval: new series arrive first, old ones still keep their own series
    later = Metric("calls", "", "1", MetricKind.SUM,
                   (NumberPoint(attrs(7), 1, 20, 0), NumberPoint(attrs(1), 5, 20, 0), NumberPoint(attrs(0), 9, 20, 0)))
    out = limiter.apply(later)
    assert [p.attributes for p in out.points] == [attrs(1), attrs(0), OVERFLOW_ATTRIBUTES]


def test_a_released_set_frees_its_place_for_the_next_one():
    limiter = CardinalityLimiter(3)
    assert limiter.admit("calls", attrs(0)) and limiter.admit("calls", attrs(1))
    assert not limiter.admit("calls", attrs(2))
    limiter.release("calls", attrs(0))
    assert limiter.admit("calls", attrs(2)) and not limiter.admitted_set("calls", attrs(0))


def test_limits_are_per_metric():
    limiter = CardinalityLimiter(2)
    assert limiter.admit("a", attrs(1)) and not limiter.admit("a", attrs(2))
    assert limiter.admit("b", attrs(2))


def test_limit_one_folds_everything():
    out = CardinalityLimiter(1).apply(counter(3))
    assert [(p.attributes, p.value) for p in out.points] == [(OVERFLOW_ATTRIBUTES, 6)]


def test_histograms_fold_by_merging():
    layout = BucketLayout.create("linear", bucket_min=0, bucket_max=2)
    points = tuple(layout.to_points(np.array([[0, i + 1, 1]]), [10], [attrs(i)], 0, 5)[0] for i in range(3))
    out = CardinalityLimiter(2).apply(Metric("h", "", "", MetricKind.HISTOGRAM, points))
    overflow = out.points[-1]
    assert isinstance(overflow, HistogramPoint)
    assert overflow.attributes == OVERFLOW_ATTRIBUTES
    assert overflow.bucket_counts == (0, 5, 2, 0) and overflow.sum == 20 and overflow.count == 7


def test_exponential_merge_uses_the_coarser_scale():
    fine, coarse = ExponentialHistograms(160, 4), ExponentialHistograms(4, 4)
    a_vals, b_vals = [1.5, 3.0], [0.1, 100.0, -2.0, 0.0]
    fine.record([0, 0], a_vals)
    coarse.record([0] * 4, b_vals)
    a, b = fine.point(0, attrs(0), 0, 5), coarse.point(0, attrs(1), 2, 9)
    merged = merge_points(a, b)
    both = ExponentialHistograms(160, b.scale)
    both.record([0] * 6, a_vals + b_vals)
    expect = both.point(0, attrs(0), 0, 9)
    assert merged == expect


def test_bad_limit():
    with pytest.raises(ValueError):
        CardinalityLimiter(0)


def test_histogram_series_never_go_down_when_keys_are_recreated():
    """MonotonicSeries on histogram points: a recreated key's series keeps its old buckets and adds
    the new ones; a folded key that disappears leaves its buckets in the overflow series."""
    from otelbpf.aggregate.cardinality import MonotonicSeries

    layout = BucketLayout.create("linear", bucket_min=0, bucket_max=2)

    def read(now, rows):
        points = tuple(layout.to_points(np.array([row]), [sum(row)], [attrs(i)], 0, now)[0]
                       for i, row in rows.items())
        return Metric("h", "", "", MetricKind.HISTOGRAM, points)

    series = MonotonicSeries(CardinalityLimiter(2))  # one series of its own + overflow
    first = series.apply(read(10, {0: [1, 2, 0], 1: [0, 3, 0]}), 10)
    assert [p.count for p in first.points] == [3, 3]
    second = series.apply(read(20, {0: [0, 1, 0]}), 20)  # key 0 recreated, key 1 (folded) gone
    by = {p.attributes: p for p in second.points}
    assert by[attrs(0)].bucket_counts == (1, 3, 0, 0) and by[attrs(0)].count == 4
    assert by[OVERFLOW_ATTRIBUTES].bucket_counts == (0, 3, 0, 0) and by[OVERFLOW_ATTRIBUTES].time_ns == 20
