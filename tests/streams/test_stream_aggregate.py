"""StreamAggregator on hand-made record batches: counts, sums, sampling, histograms, limits."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from otelbpf.config.program import (
    DecoderConfig,
    StreamConfig,
    StreamCounterConfig,
    StreamFieldConfig,
    StreamHistogramConfig,
    StreamLabelConfig,
)
from otelbpf.metrics.model import MetricKind
from otelbpf.streams.aggregate import StreamAggregator
from otelbpf.streams.layout import layout_from_config
from otelbpf.streams.records import RecordBatch

FIELDS = (StreamFieldConfig("pid", "u32"), StreamFieldConfig("sig", "s32"), StreamFieldConfig("comm", "char[8]"),
          StreamFieldConfig("bytes", "u64"), StreamFieldConfig("rate", "u16"))
START = 1_000


def batch_of(rows: list[dict]) -> RecordBatch:
    """Records laid out as a ring buffer would hold them: an 8-byte header before each payload."""
    dtype = layout_from_config(FIELDS).dtype
    recs = np.zeros(len(rows), dtype=dtype)
    for i, row in enumerate(rows):
        for k, v in row.items():
            recs[k][i] = v
    stride = 8 + dtype.itemsize
    data = np.zeros(len(rows) * stride, np.uint8)
    for i in range(len(rows)):
        data[i * stride + 8:(i + 1) * stride] = recs[i:i + 1].view(np.uint8)
    offsets = 8 + np.arange(len(rows)) * stride
    return RecordBatch(data, offsets, np.full(len(rows), dtype.itemsize), stride)


def aggregator(counters=(), histograms=(), default_aggregation="auto", label_cache=100_000,
               **kw) -> StreamAggregator:
    cfg = StreamConfig(map="events", fields=FIELDS, counters=tuple(counters), histograms=tuple(histograms), **kw)
    return StreamAggregator(cfg, program="prog", start_ns=START, default_aggregation=default_aggregation,
                            label_cache=label_cache)


def points(agg: StreamAggregator, name: str) -> dict:
    metric = next(m for m in agg.collect(2_000) if m.name == name)
    return {p.attributes: p for p in metric.points}


def values(agg, name):
    return {a: p.value for a, p in points(agg, name).items()}


COMM_SIG = (StreamLabelConfig("comm", "comm"), StreamLabelConfig("sig", "signal"))


def test_counts_per_label_set_accumulate_across_batches():
    agg = aggregator([StreamCounterConfig("signals", "Signals", "{signal}", labels=COMM_SIG)])
    agg.add(batch_of([{"comm": b"bash", "sig": 9}, {"comm": b"bash", "sig": 15}, {"comm": b"bash", "sig": 9}]))
    agg.add(batch_of([{"comm": b"sleep", "sig": -1}, {"comm": b"bash", "sig": 9}]))
    assert values(agg, "signals") == {
        (("comm", "bash"), ("signal", "9")): 3,
        (("comm", "bash"), ("signal", "15")): 1,
        (("comm", "sleep"), ("signal", "-1")): 1,
    }
    metric = next(m for m in agg.collect(2_000) if m.name == "signals")
    assert metric.kind is MetricKind.SUM and metric.monotonic
    assert {(p.start_time_ns, p.time_ns) for p in metric.points} == {(START, 2_000)}


def test_counter_value_field_sums_and_no_labels():
    agg = aggregator([StreamCounterConfig("bytes", "Bytes", "By", value="bytes")])
    agg.add(batch_of([{"bytes": 10}, {"bytes": 32}]))
    agg.add(batch_of([{"bytes": 2**60}]))
    assert values(agg, "bytes") == {(): 42 + 2**60}  # exact: no float rounding past 2^53


def test_sample_rate_number_scales_counts_and_histogram_weights():
    agg = aggregator([StreamCounterConfig("n", "", "1")],
                     [StreamHistogramConfig("size", "", "By", value="bytes")], sample_rate=10)
    agg.add(batch_of([{"bytes": 4}, {"bytes": 8}]))
    assert values(agg, "n") == {(): 20}
    hist = points(agg, "size")[()]
    assert hist.count == 20 and hist.sum == 120
    assert next(m for m in agg.collect(1) if m.name == "otelbpf.stream.events").points[0].value == 2


def test_fractional_sample_rate_scales_counters_exactly_and_rounds_histogram_weights():
    agg = aggregator([StreamCounterConfig("n", "", "1"), StreamCounterConfig("b", "", "By", value="bytes")],
                     [StreamHistogramConfig("size", "", "By", value="bytes")], sample_rate=2.5)
    agg.add(batch_of([{"bytes": 4}, {"bytes": 8}, {"bytes": 1}]))
    assert values(agg, "n") == {(): 7.5}
    assert values(agg, "b") == {(): 32.5}
    assert points(agg, "size")[()].count == 6  # each record counts round(2.5) = 2 times


def test_explicit_bounds_bucket_values_exactly():
    """(bounds[i-1], bounds[i]]: a value on a bound is in the bucket it ends; u64 values past 2^53 too."""
    big = 2**63 - 1000  # a float64 conversion rounds it down onto the bound below
    bounds = (10.0, 100.0, float(2**63 - 1024))
    agg = aggregator(histograms=[StreamHistogramConfig("size", "", "By", value="bytes", aggregation="explicit",
                                                        bounds=bounds)], sample_rate="rate")
    agg.add(batch_of([{"bytes": 10, "rate": 1}, {"bytes": 11, "rate": 1}, {"bytes": 100, "rate": 3},
                      {"bytes": 0, "rate": 1}, {"bytes": big, "rate": 1}]))
    metric = next(m for m in agg.collect(2_000) if m.name == "size")
    (point,) = metric.points
    assert metric.kind is MetricKind.HISTOGRAM and point.bounds == bounds
    assert point.bucket_counts == (2, 4, 0, 1) and point.count == 7
    assert (point.sum, point.min, point.max) == (10 + 11 + 300 + big, 0, big)


def test_default_aggregation_makes_auto_histograms_explicit():
    auto = StreamHistogramConfig("size", "", "By", value="bytes")
    pinned = StreamHistogramConfig("pinned", "", "By", value="bytes", aggregation="exponential")
    agg = aggregator(histograms=[auto, pinned], default_aggregation="explicit")
    agg.add(batch_of([{"bytes": 7}, {"bytes": 5000}]))
    kinds = {m.name: m for m in agg.collect(2_000)}
    assert kinds["size"].kind is MetricKind.HISTOGRAM
    assert kinds["size"].points[0].bounds == tuple(float(b) for b in (0, 5, 10, 25, 50, 75, 100, 250, 500, 750,
                                                                        1000, 2500, 5000, 7500, 10000))
    assert kinds["size"].points[0].bucket_counts[2] == 1 and kinds["size"].points[0].bucket_counts[12] == 1
    assert kinds["pinned"].kind is MetricKind.EXPONENTIAL_HISTOGRAM  # its own choice wins
    assert aggregator(histograms=[auto]).collect(1)[0].kind is MetricKind.EXPONENTIAL_HISTOGRAM


def test_sample_rate_field_weights_each_record():
    agg = aggregator([StreamCounterConfig("n", "", "1", labels=(StreamLabelConfig("comm", "comm"),))],
                     sample_rate="rate")
    agg.add(batch_of([{"comm": b"a", "rate": 100}, {"comm": b"a", "rate": 1}]))
    assert values(agg, "n") == {(("comm", "a"),): 101}


def test_decoders_run_once_per_new_key_and_can_drop_series():
    chain = (DecoderConfig("uint"), DecoderConfig("static_map", {"static_map": {"9": "SIGKILL"}}))
    agg = aggregator([StreamCounterConfig("n", "", "1", labels=(StreamLabelConfig("sig", "signal", chain),))])
    agg.add(batch_of([{"sig": 9}, {"sig": 15}, {"sig": 9}]))
    agg.add(batch_of([{"sig": 15}, {"sig": 9}]))
    assert values(agg, "n") == {(("signal", "SIGKILL"),): 3}  # 15 is not in the table: dropped


def test_cardinality_limit_folds_the_rest_into_overflow():
    agg = aggregator([StreamCounterConfig("n", "", "1", labels=(StreamLabelConfig("pid", "pid"),))],
                     cardinality_limit=3)
    agg.add(batch_of([{"pid": p} for p in range(10)]))
    got = values(agg, "n")
    # limit 3 = two label sets of their own + the overflow series
    assert got == {(("pid", "0"),): 1, (("pid", "1"),): 1, (("otel.metric.overflow", True),): 8}


def trim(counts) -> list[int]:
    counts = list(counts)
    while counts and counts[-1] == 0:
        counts.pop()
    return counts


def test_histogram_matches_the_otel_sdk():
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 1 << 30, 3000)
    comms = rng.choice([b"a", b"bb", b"ccc"], 3000)
    agg = aggregator(histograms=[StreamHistogramConfig("size", "", "By", value="bytes", scale=20, max_size=160,
                                                       labels=(StreamLabelConfig("comm", "comm"),))])
    rows = [{"comm": c, "bytes": int(s)} for c, s in zip(comms, sizes)]
    for i in range(0, 3000, 700):
        agg.add(batch_of(rows[i:i + 700]))
    ours = points(agg, "size")

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=[View(
        instrument_name="size", aggregation=ExponentialBucketHistogramAggregation(max_size=160, max_scale=20))])
    hist = provider.get_meter("t").create_histogram("size")
    for row in rows:
        hist.record(row["bytes"], {"comm": row["comm"].decode()})
    sdk = reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert len(sdk) == len(ours) == 3
    for p in sdk:
        mine = ours[(("comm", p.attributes["comm"]),)]
        assert (mine.count, mine.sum, mine.scale, mine.zero_count) == (p.count, p.sum, p.scale, p.zero_count)
        # the SDK may report trailing empty buckets; the buckets themselves must be identical
        assert (mine.positive_offset, trim(mine.positive_counts)) == (p.positive.offset, trim(p.positive.bucket_counts))
        assert (mine.min, mine.max) == (p.min, p.max)


def test_short_records_are_skipped_counted_and_reported_once(caplog):
    agg = aggregator([StreamCounterConfig("n", "", "1")])
    short = RecordBatch(np.zeros(64, np.uint8), np.array([8, 40]), np.array([12, 12]))
    with caplog.at_level(logging.ERROR):
        agg.add(short)
        agg.add(short)
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "12 bytes" in caplog.records[0].getMessage()
    assert values(agg, "otelbpf.stream.skipped") == {(("otelbpf.program", "prog"), ("otelbpf.stream", "events")): 4}
    assert values(agg, "otelbpf.stream.events") == {(("otelbpf.program", "prog"), ("otelbpf.stream", "events")): 4}
    assert values(agg, "n") == {}


def test_self_metrics_count_events_and_losses():
    agg = aggregator()
    agg.add(batch_of([{}] * 5))
    agg.add_lost(3)
    metrics = {m.name: m for m in agg.collect(2_000, extra_lost=4)}
    attrs = (("otelbpf.program", "prog"), ("otelbpf.stream", "events"))
    assert metrics["otelbpf.stream.events"].points[0].attributes == attrs
    assert metrics["otelbpf.stream.events"].points[0].value == 5
    assert metrics["otelbpf.stream.lost"].points[0].value == 7


@pytest.mark.parametrize("n", [1, 5000])
def test_label_ids_survive_key_cache_resets(n):
    cfg = StreamConfig(map="events", fields=FIELDS,
                       counters=(StreamCounterConfig("n", "", "1", labels=(StreamLabelConfig("pid", "pid"),)),))
    agg = StreamAggregator(cfg, program="prog", start_ns=START, max_label_keys=64)
    for start in range(0, 200, 50):
        agg.add(batch_of([{"pid": p % 100} for p in range(start, start + 50)] * n))
    assert values(agg, "n") == {(("pid", str(p)),): 2 * n for p in range(100)}


def dropped(agg) -> dict:
    metric = next((m for m in agg.collect(2_000) if m.name == "otelbpf.stream.dropped"), None)
    return {} if metric is None else {dict(p.attributes)["reason"]: p.value for p in metric.points}


@pytest.mark.parametrize("field, bad, reason", [
    ("rate", 0, "sample_rate_zero"),
    ("sig", -3, "sample_rate_negative"),
    ("bytes", (1 << 63) + 5, "sample_rate_too_large"),
])
def test_out_of_range_sample_rates_are_dropped_and_counted(field, bad, reason, caplog):
    """A record whose rate field cannot be a rate is skipped and counted; the good records of the
    same batch still count, and the aggregator keeps working (no exception reaches the drainer)."""
    agg = aggregator([StreamCounterConfig("n", "", "1", labels=(StreamLabelConfig("comm", "comm"),))],
                     [StreamHistogramConfig("pid", "", "1", value="pid")], sample_rate=field)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            agg.add(batch_of([{"comm": b"a", field: 7, "pid": 1}, {"comm": b"a", field: bad, "pid": 1},
                              {"comm": b"b", field: bad, "pid": 2}]))
    assert values(agg, "n") == {(("comm", "a"),): 14}
    assert points(agg, "pid")[()].count == 14
    assert dropped(agg) == {reason: 4}
    assert sum(reason in r.getMessage() for r in caplog.records) == 1  # one line, not one per batch


def test_counter_values_a_counter_cannot_take_are_dropped_and_counted():
    """A negative value would make a counter go down; one that times its rate reaches 2^63 would
    wrap the int64 sum."""
    fields = FIELDS + (StreamFieldConfig("delta", "s64"),)
    cfg = StreamConfig(map="events", fields=fields, sample_rate=4,
                       counters=(StreamCounterConfig("total", "", "By", value="delta"),))
    agg = StreamAggregator(cfg, program="prog", start_ns=START)
    dtype = layout_from_config(fields).dtype
    recs = np.zeros(3, dtype=dtype)
    recs["delta"] = [10, -1, 1 << 62]
    data = recs.view(np.uint8).copy()
    agg.add(RecordBatch(data, np.arange(3) * dtype.itemsize, np.full(3, dtype.itemsize), dtype.itemsize))
    assert values(agg, "total") == {(): 40}
    assert dropped(agg) == {"negative_value": 1, "value_too_large": 1}


def test_a_fractional_rate_keeps_every_counter_point_a_double():
    """The number type of a series never flips between intervals (5.0 stays a double, not int 5)."""
    agg = aggregator([StreamCounterConfig("n", "", "1")], sample_rate=2.5)
    agg.add(batch_of([{}, {}]))
    (value,) = values(agg, "n").values()
    assert value == 5.0 and isinstance(value, float)
    agg.add(batch_of([{}]))
    assert isinstance(values(agg, "n")[()], float)
    integral = aggregator([StreamCounterConfig("n", "", "1")], sample_rate=2)
    integral.add(batch_of([{}]))
    assert isinstance(values(integral, "n")[()], int)


def test_idle_label_sets_leave_the_cardinality_budget():
    """A burst of one-off label values fills the budget; once they have been idle for
    `idle_intervals` collections they leave it, and later real label sets get series of their own
    (the overflow series keeps what it counted; a label set that returns starts a new series)."""
    cfg = StreamConfig(map="events", fields=FIELDS, cardinality_limit=4, idle_intervals=2,
                       counters=(StreamCounterConfig("n", "", "1", labels=(StreamLabelConfig("pid", "pid"),)),))
    agg = StreamAggregator(cfg, program="prog", start_ns=START)
    overflow = (("otel.metric.overflow", True),)
    agg.add(batch_of([{"pid": p} for p in range(100, 110)]))  # junk burst: 3 admitted, 7 overflow

    def collect(now_ns):
        return {p.attributes: p for m in agg.collect(now_ns) if m.name == "n" for p in m.points}

    assert len(collect(2_000)) == 4
    agg.add(batch_of([{"pid": 1}]))
    assert (("pid", "1"),) not in collect(3_000)  # budget full: folded; the burst idle for 1
    assert set(collect(4_000)) == {overflow}  # idle for 2 collections: the burst's series end
    agg.add(batch_of([{"pid": 2}]))
    got = collect(5_000)
    assert set(got) == {overflow, (("pid", "2"),)}
    assert got[overflow].value == 8 and got[(("pid", "2"),)].value == 1
    assert got[(("pid", "2"),)].start_time_ns == 4_000  # created after the collection at 4_000
    agg.add(batch_of([{"pid": 100}]))
    assert collect(6_000)[(("pid", "100"),)].value == 1  # a returning label set is a new series


def test_stream_labels_refresh_like_map_labels(tmp_path, monkeypatch):
    """Stream labels go through the same KeyDecoder as map keys: an unstable chain's values are
    decoded again when its cache refreshes, so a device renamed later counts under its new name."""
    from otelbpf.decoders.majorminor import MajorMinorDecoder

    (tmp_path / "8:16").mkdir()
    uevent = tmp_path / "8:16" / "uevent"
    uevent.write_text("DEVNAME=sdb\n")
    monkeypatch.setattr(MajorMinorDecoder, "root", tmp_path)
    label = StreamLabelConfig("pid", "device", (DecoderConfig("majorminor"),))
    agg = aggregator([StreamCounterConfig("n", "", "1", labels=(label,))])
    dev = (8 << 20) | 16
    agg.add(batch_of([{"pid": dev}]))
    uevent.write_text("DEVNAME=sdc\n")
    agg._metrics[0].decoder.cache._cleared -= 3600  # the refresh period has passed
    agg.add(batch_of([{"pid": dev}] * 2))
    assert values(agg, "n") == {(("device", "sdb"),): 1, (("device", "sdc"),): 2}


def test_flush_interval_restarts_every_series_with_a_new_start_time():
    """ebpf_exporter's perf_event_array counters restart every flush_interval: each restart is a
    new start time, so a backend sees a reset; counts up to the flushing collection are exported
    before it, and counts after it belong to the new series only."""
    agg = aggregator([StreamCounterConfig("signals", "Signals", "{signal}", labels=COMM_SIG)],
                     flush_interval=1e-6)  # 1000 ns
    bash9 = (("comm", "bash"), ("signal", "9"))

    def collect(now_ns):
        metric = next(m for m in agg.collect(now_ns) if m.name == "signals")
        return {p.attributes: (p.start_time_ns, p.value) for p in metric.points}

    agg.add(batch_of([{"comm": b"bash", "sig": 9}] * 3))
    assert collect(1_500) == {bash9: (START, 3)}  # before the first flush (START + 1000)
    agg.add(batch_of([{"comm": b"bash", "sig": 9}]))
    assert collect(2_200) == {bash9: (START, 4)}  # due: exported, then restarted at 2_200
    agg.add(batch_of([{"comm": b"bash", "sig": 9}, {"comm": b"sh", "sig": 1}]))
    sh1 = (("comm", "sh"), ("signal", "1"))
    assert collect(2_900) == {bash9: (2_200, 1), sh1: (2_200, 1)}  # new series, new start
    assert collect(2_950) == {bash9: (2_200, 1), sh1: (2_200, 1)}  # accumulating until the flush
    agg.add(batch_of([{"comm": b"bash", "sig": 9}]))
    assert collect(3_100) == {bash9: (2_200, 2), sh1: (2_200, 1)}  # due at 3_000
    assert collect(3_200) == {}  # restarted at 3_100


def test_without_flush_interval_series_never_restart():
    agg = aggregator([StreamCounterConfig("signals", "Signals", "{signal}", labels=COMM_SIG)])
    agg.add(batch_of([{"comm": b"bash", "sig": 9}]))
    for now in (2_000, 10**12):
        metric = next(m for m in agg.collect(now) if m.name == "signals")
        assert [(p.start_time_ns, p.value) for p in metric.points] == [(START, 1)]


@pytest.mark.parametrize("size", [0, 3])
def test_label_cache_limit_bounds_every_stream_metrics_decoder(size):
    """[limits] label_cache caps stream label decoding as it caps map keys': with a limit of 3,
    five distinct label sets leave at most 3 decoded values cached; 0 caches nothing."""
    agg = aggregator(counters=[StreamCounterConfig("sigs", "Signals", "{signal}", labels=COMM_SIG)],
                     histograms=[StreamHistogramConfig("sizes", "Sizes", "By", value="bytes", labels=COMM_SIG)],
                     label_cache=size)
    agg.add(batch_of([{"comm": f"p{i}".encode(), "sig": i + 1, "bytes": 10} for i in range(5)]))
    assert len(values(agg, "sigs")) == 5
    caches = [m.decoder.cache for m in agg._metrics]
    assert len(caches) == 2 and all(len(c) == min(size, 5) and c.maxsize == size for c in caches)


def test_counter_totals_past_int64_stay_exact():
    """Each value fits in int64, their running sum does not: the total is still exact."""
    agg = aggregator([StreamCounterConfig("bytes", "Bytes", "By", value="bytes")])
    big = (1 << 62) + 12345
    for _ in range(3):
        agg.add(batch_of([{"bytes": big}, {"bytes": 7}]))
    assert values(agg, "bytes") == {(): 3 * big + 21}
    agg.add(batch_of([{"bytes": 1}]))
    assert values(agg, "bytes") == {(): 3 * big + 22}
