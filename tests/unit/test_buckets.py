"""Kernel histogram slots → OTLP points: every observation stays inside the bucket that counts it.

Every point here is made by `BucketLayout.to_points`, the function `maps.histogram_metric` calls,
for every bucket type and every slot of each layout.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from otelbpf.aggregate.buckets import BucketLayout, exponential_unavailable, power_of_two_exponent
from otelbpf.config.program import HistogramConfig, LabelConfig
from otelbpf.metrics.model import ExponentialHistogramPoint, HistogramPoint

# --- the BPF side, ported: how a program computes the slot of an observation v (in units) ------------

def exp2_slot(v: int) -> int:
    """bpf/include/otelbpf.h exp2_slot: ceil(log2 v), 0 for v <= 1."""
    return 0 if v <= 1 else (v - 1).bit_length()


def exp2zero_slot(v: int) -> int:
    return 0 if v == 0 else exp2_slot(v) + 1


def linear_slot(v: int) -> int:
    """slot k counts (k-1, k]: ceil(v / 1)."""
    return v


def fixed_slot(v: int, keys) -> int:
    """ebpf_exporter's fixed histograms key a slot by its bucket value: the first key >= v."""
    for key in keys:
        if v <= key:
            return key
    return keys[-1]  # clamped; the test keeps v <= keys[-1]


def clamp(slot: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, slot))


# --- where a point says an observation is ------------------------------------------------------------

def exponential_bucket_of(point: ExponentialHistogramPoint, index_hit: dict[int, int]):
    """(lower exclusive, upper inclusive) of the bucket that received the single count."""
    if point.zero_count:
        return None  # the zero region
    (i, c), = [(point.positive_offset + k, c) for k, c in enumerate(point.positive_counts) if c]
    assert c == 1
    return Fraction(2) ** i, Fraction(2) ** (i + 1)


def explicit_bucket_of(point: HistogramPoint):
    (i,), = np.nonzero(np.asarray(point.bucket_counts))
    lower = -math.inf if i == 0 else point.bounds[i - 1]
    upper = math.inf if i == len(point.bounds) else point.bounds[i]
    return lower, upper


def observations(limit: int) -> list[int]:
    """0, 1, powers of two and their neighbours, a spread of others, all <= limit."""
    vs = {0, 1, 2, 3, limit, limit - 1}
    for k in range(0, limit.bit_length() + 1):
        for d in (-1, 0, 1):
            vs.add((1 << k) + d)
    rng = random.Random(3)
    vs.update(rng.randrange(limit) for _ in range(200))
    return sorted(v for v in vs if 0 <= v <= limit)


def point_of(layout: BucketLayout, slot_counts, sum_value, attributes=(), start_ns: int = 0, now_ns: int = 1):
    """One series' point through `to_points`: `slot_counts` maps kernel slot → count (slots the
    layout never reads are left out, as `histogram_metric` leaves them out)."""
    items = slot_counts.items() if isinstance(slot_counts, dict) else enumerate(slot_counts)
    row = np.zeros((1, layout.n_columns), dtype=np.int64)
    for slot, count in items:
        column = int(layout.columns(np.array([slot]))[0])
        if column >= 0:
            row[0, column] += count
    return layout.to_points(row, [sum_value], [attributes], start_ns, now_ns)[0]


def single(layout: BucketLayout, slot: int, v, multiplier: float):
    return point_of(layout, {slot: 1}, v, (), 1, 2)


EXP_CASES = [
    # bucket_type, bucket_min, bucket_max, multiplier
    ("exp2", 0, 64, 1.0),
    ("exp2", 3, 20, 1.0),
    ("exp2", 0, 30, 2.0**-10),   # e.g. a quantity counted in units of 1/1024
    ("exp2", 2, 30, 8.0),
    ("exp2zero", 0, 65, 1.0),
    ("exp2zero", 4, 25, 0.25),
]


@pytest.mark.parametrize("bucket_type,bucket_min,bucket_max,multiplier", EXP_CASES)
def test_exp2_observations_stay_in_their_exponential_bucket(bucket_type, bucket_min, bucket_max, multiplier):
    layout = BucketLayout.create(bucket_type, bucket_min=bucket_min, bucket_max=bucket_max, multiplier=multiplier)
    assert layout.exponential
    slot_fn = exp2_slot if bucket_type == "exp2" else exp2zero_slot
    top = (1 << (bucket_max - (0 if bucket_type == "exp2" else 1))) if bucket_max < 64 else (1 << 64) - 1
    m = Fraction(multiplier)
    for v in observations(top):
        slot = clamp(slot_fn(v), bucket_min, bucket_max)
        point = single(layout, slot, v, multiplier)
        assert point.count == 1 and point.scale == 0
        value = v * m  # the observation in the metric's unit
        if point.zero_count:
            assert 0 <= value <= Fraction(point.zero_threshold), (v, slot, point)
        else:
            lower, upper = exponential_bucket_of(point, {})
            assert lower < value <= upper, (v, slot, point)


EXPLICIT_CASES = [
    ("exp2", 0, 20, 1000.0, ()),       # non-power-of-two multiplier: explicit bounds
    ("exp2", 2, 12, 3.0, ()),
    ("exp2zero", 0, 15, 10.0, ()),
    ("linear", 0, 50, 1.0, ()),
    ("linear", 5, 40, 2.5, ()),
    ("fixed", 0, 0, 1.0, (1, 10, 100, 1000, 10000)),
    ("fixed", 0, 0, 0.001, (5, 50, 500, 5000)),
]


# exp2/exp2zero slots that would be exponential, forced to explicit bounds (aggregation = "explicit")
FORCED_EXPLICIT_CASES = [(t, lo, hi, m, ()) for t, lo, hi, m in EXP_CASES]


def linear_top(bucket_max: int) -> int:
    return bucket_max


@pytest.mark.parametrize("bucket_type,bucket_min,bucket_max,multiplier,keys",
                         EXPLICIT_CASES + FORCED_EXPLICIT_CASES)
def test_explicit_observations_stay_in_their_bucket(bucket_type, bucket_min, bucket_max, multiplier, keys):
    layout = BucketLayout.create(bucket_type, bucket_min=bucket_min, bucket_max=bucket_max,
                                 bucket_keys=keys, multiplier=multiplier, aggregation="explicit")
    assert not layout.exponential
    if bucket_type == "fixed":
        top, slot_of = keys[-1], (lambda v: fixed_slot(v, keys))
        assert layout.slot_keys == keys and layout.sum_key == keys[-1] + 1
    elif bucket_type == "linear":
        top, slot_of = bucket_max, linear_slot
    elif bucket_type == "exp2":
        top, slot_of = min(1 << bucket_max, (1 << 64) - 1), exp2_slot
    else:
        top, slot_of = min(1 << (bucket_max - 1), (1 << 64) - 1), exp2zero_slot
    for v in observations(top):
        slot = slot_of(v) if bucket_type == "fixed" else clamp(slot_of(v), bucket_min, bucket_max)
        point = single(layout, slot, v, multiplier)
        assert len(point.bucket_counts) == len(point.bounds) + 1
        assert point.bucket_counts[-1] == 0  # nothing above the highest slot's bound
        lower, upper = explicit_bucket_of(point)
        if power_of_two_exponent(multiplier) is None:
            value = v * multiplier  # as the bounds were rounded: the multiplier as written, times v
        else:
            lower, upper = Fraction(lower) if lower > -math.inf else lower, Fraction(upper)
            value = v * Fraction(multiplier)  # exact, also for observations near 2^64
        assert lower < value <= upper, (v, slot, point)


def test_forced_explicit_bounds_are_the_exponential_bucket_edges():
    """Same slots, both aggregations: each explicit bucket is exactly one exponential bucket (or
    the zero bucket), so switching a backend to explicit buckets moves no observation."""
    counts = {0: 5, 1: 2, 3: 1, 10: 4}
    exponential = point_of(BucketLayout.create("exp2", bucket_max=12), counts, 99)
    explicit = point_of(BucketLayout.create("exp2", bucket_max=12, aggregation="explicit"), counts, 99)
    assert explicit.bounds == tuple(float(2 ** k) for k in range(13))
    assert explicit.bounds[0] == exponential.zero_threshold
    assert explicit.bucket_counts[0] == exponential.zero_count
    for k, c in enumerate(exponential.positive_counts):
        i = exponential.positive_offset + k  # (2^i, 2^(i+1)] is explicit bucket (bounds[i], bounds[i+1]]
        assert explicit.bounds[i + 1] == 2.0 ** (i + 1) and explicit.bucket_counts[i + 1] == c
    assert (explicit.count, explicit.sum) == (exponential.count, exponential.sum)
    zero = BucketLayout.create("exp2zero", bucket_max=6, aggregation="explicit")
    assert zero.bounds == (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # slot 0 holds exactly 0: (-inf, 0]


@pytest.mark.parametrize("bucket_type,multiplier,keys,ok", [
    ("exp2", 1.0, (), True), ("exp2zero", 2.0 ** -20, (), True), ("exp2", 1000.0, (), False),
    ("linear", 1.0, (), False), ("fixed", 1.0, (1, 2), False)])
def test_exponential_is_refused_where_it_cannot_be_exact(bucket_type, multiplier, keys, ok):
    assert (exponential_unavailable(bucket_type, multiplier) is None) == ok
    if ok:
        assert BucketLayout.create(bucket_type, bucket_max=8, multiplier=multiplier,
                                   aggregation="exponential").exponential
    else:
        with pytest.raises(ValueError, match="power of two|powers of two"):
            BucketLayout.create(bucket_type, bucket_max=8, bucket_keys=keys, multiplier=multiplier,
                                aggregation="exponential")


def test_auto_and_default_aggregation():
    auto = HistogramConfig(name="lat", help="", unit="us", map="m", labels=(LabelConfig("bucket", 4),),
                           bucket_type="exp2", bucket_max=20)
    assert BucketLayout.from_config(auto).exponential
    assert not BucketLayout.from_config(auto, "explicit").exponential
    pinned = HistogramConfig(name="lat", help="", unit="us", map="m", labels=auto.labels,
                             bucket_type="exp2", bucket_max=20, aggregation="exponential")
    assert BucketLayout.from_config(pinned, "explicit").exponential  # the histogram's own choice wins
    with pytest.raises(ValueError, match="unknown aggregation"):
        BucketLayout.create("exp2", bucket_max=3, aggregation="native")


def test_exp2_slot_maps_to_exponential_index():
    layout = BucketLayout.create("exp2", bucket_min=0, bucket_max=64)
    # slot k ↔ bucket (2^(k-1), 2^k] = index k-1; slot 0 (0 and 1) → zero_count, threshold 1
    point = point_of(layout, {0: 5, 1: 2, 3: 1, 10: 4, 65: 999}, 1234, (("a", "b"),), 10, 20)
    assert point == ExponentialHistogramPoint(
        attributes=(("a", "b"),), start_time_ns=10, time_ns=20, count=12, sum=1234, scale=0,
        zero_count=5, positive_offset=0, positive_counts=(2, 0, 1, 0, 0, 0, 0, 0, 0, 4), zero_threshold=1.0)


def test_exp2_with_negative_power_of_two_multiplier():
    layout = BucketLayout.create("exp2", bucket_min=0, bucket_max=40, multiplier=2.0**-3)
    assert layout.multiplier_log2 == -3
    point = point_of(layout, np.array([1, 0, 0, 7]), 80)
    # slot 3 counts (2^2, 2^3] units = (2^-1, 2^0] → index -1; slot 0 holds <= 2^-3
    assert (point.positive_offset, point.positive_counts) == (-1, (7,))
    assert point.zero_threshold == 0.125 and point.zero_count == 1
    assert point.sum == 10.0


def test_exp2zero_slot_zero_is_exactly_zero():
    layout = BucketLayout.create("exp2zero", bucket_min=0, bucket_max=10)
    point = point_of(layout, {0: 3, 1: 1, 2: 2}, 5)
    # slot 1 counts (2^-1, 2^0] → index -1; slot 2 (1, 2] → index 0
    assert point.zero_threshold == 0.0 and point.zero_count == 3
    assert (point.positive_offset, point.positive_counts) == (-1, (1, 2))


def test_sum_key_and_count():
    layout = BucketLayout.create("linear", bucket_min=0, bucket_max=9, multiplier=2.0)
    assert layout.sum_key == 10 and layout.slot_keys == tuple(range(10))
    counts = np.zeros(11, dtype=np.int64)
    counts[[1, 5]] = [2, 3]
    counts[10] = 17  # the sum slot is ignored as a bucket
    point = point_of(layout, counts, 17)
    assert point.count == 5 and point.sum == 34
    assert point.bounds == tuple(2.0 * k for k in range(10))


def test_slots_below_bucket_min_stay_exact():
    layout = BucketLayout.create("linear", bucket_min=2, bucket_max=4)
    point = point_of(layout, {0: 1, 3: 1, 4: 2}, 0)
    # slot 0 (<= 0) joins the lowest bucket (<= 2); slots above the sum slot never reach to_points
    # (maps.histogram_metric counts them in otelbpf.histogram.out_of_range)
    assert point.bounds == (2.0, 3.0, 4.0) and point.bucket_counts == (1, 1, 2, 0)


@pytest.mark.parametrize("bucket_type,bucket_min,bucket_max,multiplier,keys",
                         [c + ((),) for c in EXP_CASES] + EXPLICIT_CASES)
def test_every_slot_in_one_batch_matches_the_slot_alone(bucket_type, bucket_min, bucket_max, multiplier, keys):
    """One to_points call over every slot (one series per slot, as histogram_metric batches them)
    gives each series the point of its slot alone: the rows never leak into each other."""
    layout = BucketLayout.create(bucket_type, bucket_min=bucket_min, bucket_max=bucket_max,
                                 bucket_keys=keys, multiplier=multiplier)
    n = layout.sum_column
    table = np.eye(n, layout.n_columns, dtype=np.int64) * 3
    slots = [int(s) for s in layout.slot_keys] if bucket_type == "fixed" else list(range(n))
    attrs = [(("slot", str(s)),) for s in slots]
    batch = layout.to_points(table, list(range(n)), attrs, 5, 6)
    assert len(batch) == n
    for c, s in enumerate(slots):
        assert batch[c] == point_of(layout, {s: 3}, c, attrs[c], 5, 6), s
        assert batch[c].count == 3


def test_from_config_uses_histogram_config():
    cfg = HistogramConfig(name="lat", help="", unit="s", map="m",
                          labels=(LabelConfig("cgroup", 8), LabelConfig("bucket", 4)),
                          bucket_type="exp2", bucket_min=0, bucket_max=64, bucket_multiplier=2.0**-30)
    layout = BucketLayout.from_config(cfg)
    assert layout.exponential and layout.multiplier_log2 == -30 and layout.sum_key == 65
    cfg2 = HistogramConfig(name="lat", help="", unit="s", map="m", labels=cfg.labels, bucket_type="fixed",
                           bucket_keys=(1, 2, 5), bucket_multiplier=1e-6)
    layout2 = BucketLayout.from_config(cfg2)
    assert not layout2.exponential and layout2.sum_key == 6 and layout2.bounds == (1e-6, 2e-6, 5e-6)


def test_fixed_slots_are_keyed_by_bucket_value():
    """ebpf_exporter: buckets[key] for each key in bucket_keys, le = key × multiplier, sum at
    bucket_keys[-1] + 1; keys not listed are not read."""
    layout = BucketLayout.create("fixed", bucket_keys=(10, 100, 1000), multiplier=0.5)
    point = point_of(layout, {10: 3, 100: 4, 1000: 5, 1001: 777, 50: 9, 0: 2}, 777)
    assert point.bounds == (5.0, 50.0, 500.0)
    assert point.bucket_counts == (3, 4, 5, 0) and point.count == 12 and point.sum == 388.5
    cols = layout.columns(np.array([10, 100, 1000, 1001, 50, 0, 5000]))
    assert cols.tolist() == [0, 1, 2, 3, -1, -1, -1] and layout.sum_column == 3


def test_power_of_two_exponent():
    assert power_of_two_exponent(1.0) == 0
    assert power_of_two_exponent(0.5) == -1
    assert power_of_two_exponent(1024) == 10
    assert power_of_two_exponent(1000) is None
    assert power_of_two_exponent(1e-9) is None


def test_an_empty_series_is_an_empty_point():
    point = point_of(BucketLayout.create("exp2", bucket_max=10), {}, 0)
    assert point.count == 0 and point.positive_counts == () and point.zero_count == 0
