"""Cumulative → delta against the last successfully exported baseline."""

from __future__ import annotations

import numpy as np

from otelbpf.aggregate.delta import DeltaConverter, downscale_buckets, subtract_point
from otelbpf.aggregate.exponential import ExponentialHistograms
from otelbpf.metrics.model import (
    ExponentialHistogramPoint,
    HistogramPoint,
    Metric,
    MetricKind,
    NumberPoint,
    Temporality,
)

A = (("host", "a"),)
B = (("host", "b"),)


def sums(t: int, values: dict, start: int = 0, name: str = "calls", monotonic: bool = True) -> Metric:
    points = tuple(NumberPoint(attrs, v, t, start) for attrs, v in values.items())
    return Metric(name, "", "1", MetricKind.SUM, points, Temporality.CUMULATIVE, monotonic)


def values(metric: Metric) -> dict:
    return {p.attributes: (p.value, p.start_time_ns, p.time_ns) for p in metric.points}


def test_first_delta_is_the_cumulative_from_its_own_start():
    conv = DeltaConverter()
    (m,), token = conv.convert([sums(10, {A: 5}, start=3)])
    assert m.temporality is Temporality.DELTA and m.monotonic
    assert values(m) == {A: (5, 3, 10)}


def test_committed_baseline_gives_interval_deltas():
    conv = DeltaConverter()
    _, token = conv.convert([sums(10, {A: 5})])
    conv.commit(token)
    (m,), token = conv.convert([sums(20, {A: 12})])
    assert values(m) == {A: (7, 10, 20)}


def test_failed_exports_merge_into_the_next_delta():
    conv = DeltaConverter()
    _, token = conv.convert([sums(10, {A: 5})])
    conv.commit(token)
    conv.convert([sums(20, {A: 12})])          # export failed: no commit
    conv.convert([sums(30, {A: 20})])          # failed again
    (m,), token = conv.convert([sums(40, {A: 26})])
    assert values(m) == {A: (21, 10, 40)}      # covers 10..40, nothing lost
    conv.commit(token)
    (m,), _ = conv.convert([sums(50, {A: 30})])
    assert values(m) == {A: (4, 40, 50)}


def test_stale_token_commit_is_ignored():
    conv = DeltaConverter()
    _, t1 = conv.convert([sums(10, {A: 5})])
    _, t2 = conv.convert([sums(20, {A: 9})])
    conv.commit(t2)
    conv.commit(t1)
    (m,), _ = conv.convert([sums(30, {A: 10})])
    assert values(m) == {A: (1, 20, 30)}


def test_new_series_and_a_series_missing_from_one_read():
    """A series missing from one committed collection (a partial read) keeps its baseline: when it
    is back, the delta is what it counted since its last export, never its whole value again."""
    conv = DeltaConverter()
    _, token = conv.convert([sums(10, {A: 5}, start=1)])
    conv.commit(token)
    (m,), token = conv.convert([sums(20, {B: 3}, start=15)])
    assert values(m) == {B: (3, 15, 20)}
    conv.commit(token)                         # A missing from this read
    (m,), _ = conv.convert([sums(30, {A: 8, B: 4}, start=1)])
    assert values(m)[A] == (3, 10, 30)         # since A's last export, not 8 again
    assert values(m)[B] == (4, 1, 30)          # B's start changed: a reset


def test_a_series_gone_for_longer_than_keep_absent_is_new_when_it_returns():
    conv = DeltaConverter(keep_absent=2)
    _, token = conv.convert([sums(10, {A: 5, B: 1}, start=1)])
    conv.commit(token)
    for t in (20, 30, 40):
        _, token = conv.convert([sums(t, {B: 1}, start=1)])
        conv.commit(token)
    assert len(conv) == 1                      # A's baseline is gone after 3 missed commits
    (m,), _ = conv.convert([sums(50, {A: 2, B: 1}, start=45)])
    assert values(m)[A] == (2, 45, 50)


def test_other_metrics_keep_their_baseline():
    conv = DeltaConverter()
    _, token = conv.convert([sums(10, {A: 5}, name="x"), sums(10, {A: 1}, name="y")])
    conv.commit(token)
    _, token = conv.convert([sums(20, {A: 6}, name="x")])
    conv.commit(token)
    (m,), _ = conv.convert([sums(30, {A: 4}, name="y")])
    assert values(m) == {A: (3, 10, 30)}


def test_reset_by_decrease_or_new_start_time():
    conv = DeltaConverter()
    _, token = conv.convert([sums(10, {A: 50, B: 7}, start=1)])
    conv.commit(token)
    (m,), token = conv.convert([sums(20, {A: 3}, start=1) ])  # went down: map recreated
    assert values(m) == {A: (3, 1, 20)}
    (m,), _ = conv.convert([sums(20, {B: 9}, start=12)])    # start changed: agent restarted
    assert values(m) == {B: (9, 12, 20)}
    assert conv.resets == 2


def test_non_monotonic_sum_may_go_down():
    conv = DeltaConverter()
    _, token = conv.convert([sums(10, {A: 50}, monotonic=False)])
    conv.commit(token)
    (m,), _ = conv.convert([sums(20, {A: 45}, monotonic=False)])
    assert values(m) == {A: (-5, 10, 20)}


def test_gauges_and_deltas_pass_through():
    conv = DeltaConverter()
    gauge = Metric("g", "", "1", MetricKind.GAUGE, (NumberPoint(A, 3, 10),))
    delta = Metric("d", "", "1", MetricKind.SUM, (NumberPoint(A, 3, 10, 5),), Temporality.DELTA)
    out, _ = conv.convert([gauge, delta])
    assert out == [gauge, delta]


def hist(t, counts, total, start=0, bounds=(1.0, 2.0)):
    return Metric("h", "", "s", MetricKind.HISTOGRAM,
                  (HistogramPoint(A, start, t, sum(counts), total, bounds, tuple(counts), min=0.5, max=9.0),))


def test_explicit_histogram_per_bucket():
    conv = DeltaConverter()
    _, token = conv.convert([hist(10, [1, 2, 0], 4.0)])
    conv.commit(token)
    (m,), _ = conv.convert([hist(20, [3, 2, 5], 30.5)])
    (p,) = m.points
    assert (p.bucket_counts, p.count, p.sum, p.start_time_ns, p.time_ns) == ((2, 0, 5), 7, 26.5, 10, 20)
    assert p.min is None and p.max is None


def test_explicit_histogram_reset_on_bucket_decrease_or_new_bounds():
    conv = DeltaConverter()
    _, token = conv.convert([hist(10, [1, 2, 0], 4.0)])
    conv.commit(token)
    (m,), _ = conv.convert([hist(20, [3, 1, 5], 30.0)])
    assert m.points[0].bucket_counts == (3, 1, 5) and m.points[0].start_time_ns == 0
    (m,), _ = conv.convert([hist(20, [3, 2, 5, 0], 30.0, bounds=(1.0, 2.0, 3.0))])
    assert m.points[0].bucket_counts == (3, 2, 5, 0)


def expo(t, scale, pos_off, pos, zero=0, neg_off=0, neg=(), total=0.0, start=0, threshold=0.0):
    count = sum(pos) + sum(neg) + zero
    return Metric("e", "", "s", MetricKind.EXPONENTIAL_HISTOGRAM,
                  (ExponentialHistogramPoint(A, start, t, count, total, scale, zero, pos_off, tuple(pos),
                                             neg_off, tuple(neg), threshold),))


def test_exponential_same_scale_aligns_offsets():
    conv = DeltaConverter()
    _, token = conv.convert([expo(10, 3, 5, [1, 2], zero=1, total=10.0)])
    conv.commit(token)
    (m,), _ = conv.convert([expo(20, 3, 3, [4, 0, 1, 2, 7], zero=3, neg_off=-2, neg=[1], total=25.0)])
    (p,) = m.points
    assert (p.scale, p.positive_offset, p.positive_counts) == (3, 3, (4, 0, 0, 0, 7))
    assert (p.zero_count, p.negative_offset, p.negative_counts, p.count, p.sum) == (2, -2, (1,), 14, 15.0)
    assert p.start_time_ns == 10


def test_exponential_downscales_the_finer_baseline():
    # Build both cumulative points with the real aggregator: the series downscales between them.
    h = ExponentialHistograms(max_size=4, max_scale=5)
    h.record(np.zeros(3, int), [1.1, 1.2, 1.3])
    base = h.point(0, A, 0, 10)
    more = [100.0, 1.25, 3.0]
    h.record(np.zeros(3, int), more)
    cur = h.point(0, A, 0, 20)
    assert cur.scale < base.scale
    delta = subtract_point(cur, base)
    # the delta equals a fresh histogram of the new values at the current (coarser) scale
    fresh = ExponentialHistograms(max_size=4, max_scale=cur.scale)
    fresh.record(np.zeros(3, int), more)
    expect = fresh.point(0, A, 0, 20)
    assert (delta.scale, delta.positive_offset, delta.positive_counts, delta.count) == (
        expect.scale, expect.positive_offset, expect.positive_counts, expect.count)
    assert delta.start_time_ns == 10


def test_exponential_reset_when_a_bucket_goes_down():
    base = expo(10, 0, 0, [5, 5]).points[0]
    cur = expo(20, 0, 0, [6, 4]).points[0]
    assert subtract_point(cur, base) is None
    assert subtract_point(expo(20, 0, 0, [6, 6], threshold=1.0).points[0], base) is None


def test_downscale_buckets():
    off, counts = downscale_buckets(-3, [1, 2, 3, 4, 5], 1)
    # indices -3..1 → -2, -1, -1, 0, 0
    assert off == -2 and counts.tolist() == [1, 5, 9]
