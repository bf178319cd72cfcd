"""Benchmark of the aggregate stage: exponential histograms for streams, kernel slot maps → points.

Run: python3 benchmarks/aggregate.py [--events N] [--groups G]
The last line of output is one JSON object with every measurement (ns per event / per key).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from otelbpf.aggregate.buckets import BucketLayout
from otelbpf.aggregate.exponential import ExponentialHistograms
from otelbpf.aggregate.maps import counter_metric, histogram_metric
from otelbpf.config.program import CounterConfig, DecoderConfig, HistogramConfig, LabelConfig
from otelbpf.labels.keys import KeyDecoder
from otelbpf.kernel.maps import MapSnapshot


def best_of(repeat: int, fn) -> float:
    """Best CPU time (process_time: other processes on a shared machine do not count) of `repeat` runs."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def calibrate() -> float:
    """ns per element of a plain numpy sum over 1M float64: how fast (or how shared) this machine is."""
    data = np.random.default_rng(0).random(1_000_000)
    return best_of(7, data.sum) / data.size * 1e9


def bench_exponential(n: int, groups: int, repeat: int) -> dict[str, float]:
    rng = np.random.default_rng(7)
    g = rng.integers(0, groups, n)
    latency_ns = rng.lognormal(10, 2, n).astype(np.uint64) + 1
    floats = rng.lognormal(0, 3, n)
    mixed = floats * np.where(rng.random(n) < 0.3, -1.0, 1.0)
    mixed[rng.random(n) < 0.05] = 0.0
    out: dict[str, float] = {}
    for name, values in (("u64_latency", latency_ns), ("float_positive", floats), ("float_mixed_sign", mixed)):
        # first batch: every series starts at scale 20 and downscales; later batches: steady state
        def first():
            ExponentialHistograms(160, 20).record(g, values)

        warm = ExponentialHistograms(160, 20)
        warm.record(g, values)
        out[f"exponential_{name}_first_batch_ns_per_event"] = best_of(repeat, first) / n * 1e9
        out[f"exponential_{name}_steady_ns_per_event"] = best_of(repeat, lambda: warm.record(g, values)) / n * 1e9
    return out


def bench_maps(series: int, slots: int, ncpu: int, repeat: int) -> dict[str, float]:
    """A histogram map of `series` label sets × `slots` slots (+ sum) and a counter map, per-CPU."""
    rng = np.random.default_rng(3)
    uint = (DecoderConfig("uint"),)
    labels = (LabelConfig("cgroup", 8, decoders=uint), LabelConfig("op", 4, decoders=uint))
    hist = HistogramConfig(name="lat", help="", unit="ns", map="m", labels=labels + (LabelConfig("bucket", 4),),
                           bucket_type="exp2", bucket_min=0, bucket_max=slots - 1)
    layout = BucketLayout.from_config(hist)
    ids = np.arange(series, dtype=np.uint64)
    keys = np.zeros((series, slots + 1, 16), dtype=np.uint8)
    keys[:, :, :8] = ids.view(np.uint8).reshape(series, 1, 8)
    keys[:, :, 8] = 1
    keys[:, :, 12:16] = np.arange(slots + 1, dtype=np.uint32).view(np.uint8).reshape(1, slots + 1, 4)
    keys = keys.reshape(-1, 16)[rng.permutation(series * (slots + 1))]
    values = rng.integers(0, 1000, (keys.shape[0], ncpu)).astype(np.uint64)
    snap = MapSnapshot(keys=keys, values=values.view(np.uint8).reshape(keys.shape[0], ncpu, 8), method="batch")
    decoder = KeyDecoder(labels, cache_size=2 * series)
    histogram_metric(hist, snap, decoder, layout, 0, 1)  # warm the label cache, as in steady state
    t_hist = best_of(repeat, lambda: histogram_metric(hist, snap, decoder, layout, 0, 1))

    counter = CounterConfig(name="c", help="", unit="1", map="m", labels=labels)
    ckeys = np.ascontiguousarray(keys[:, :12])
    csnap = MapSnapshot(keys=np.unique(ckeys.view(np.dtype((np.void, 12))).reshape(-1)).view(np.uint8).reshape(-1, 12),
                        values=np.ones((0, ncpu, 8), dtype=np.uint8), method="batch")
    n = csnap.keys.shape[0]
    csnap = MapSnapshot(keys=csnap.keys, values=rng.integers(0, 9, (n, ncpu, 1)).astype(np.uint64).view(np.uint8)
                        .reshape(n, ncpu, 8), method="batch")
    cdecoder = KeyDecoder(labels, cache_size=2 * n)
    counter_metric(counter, csnap, cdecoder, 0, 1)
    t_counter = best_of(repeat, lambda: counter_metric(counter, csnap, cdecoder, 0, 1))
    return {
        "maps_histogram_keys": keys.shape[0],
        "maps_histogram_ns_per_key": t_hist / keys.shape[0] * 1e9,
        "maps_histogram_ms": t_hist * 1e3,
        "maps_counter_keys": n,
        "maps_counter_ns_per_key": t_counter / n * 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--series", type=int, default=10_000, help="histogram label sets in the map benchmark")
    parser.add_argument("--slots", type=int, default=27, help="histogram slots per label set")
    parser.add_argument("--ncpu", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, float | int] = {"events": args.events, "groups": args.groups,
                                       "calibration_numpy_sum_ns_per_element": calibrate()}
    results.update(bench_exponential(args.events, args.groups, args.repeat))
    results.update(bench_maps(args.series, args.slots, args.ncpu, args.repeat))
    for key, value in results.items():
        print(f"{key:60s} {value:10.2f}" if isinstance(value, float) else f"{key:60s} {value:10d}")
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()
