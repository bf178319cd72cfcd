"""Shared pieces of the program-library tests: load a shipped program with parameters, attach
it around a workload, read its maps, and turn a map into metrics the way the agent does."""

from __future__ import annotations

import contextlib
import struct
import time
from pathlib import Path

import numpy as np

from otelbpf.aggregate.buckets import BucketLayout
from otelbpf.aggregate.maps import counter_metric, histogram_metric
from otelbpf.config.program import load_program_config
from otelbpf.labels.keys import KeyDecoder
from otelbpf.kernel.object import BpfObject

REPO = Path(__file__).resolve().parents[2]
CONF_D = REPO / "conf" / "conf.d"
ZERO_KEY = -(1 << 31)
SUM_KEY = (1 << 31) - 1


@contextlib.contextmanager
def loaded(bpf_build: Path, name: str, object_path: Path | None = None, **parameters):
    """The shipped program NAME (or another build of it, `object_path`), loaded with its config's
    parameters overridden by `parameters`."""
    config = load_program_config(CONF_D / f"{name}.toml", bpf_build)
    with BpfObject.open(object_path or config.object, parameters={**config.parameters, **parameters}) as obj:
        obj.load()
        yield obj


@contextlib.contextmanager
def attached(obj: BpfObject):
    """Every program of `obj` attached for the duration of the block, then detached; afterwards
    programs still running on another CPU get time to finish their map updates."""
    links = []
    try:
        for name, result in obj.attach_all().items():
            if isinstance(result, Exception):
                raise AssertionError(f"{name}: {result}")
            links.append(result)
        yield
    finally:
        for link in links:
            link.close()
        time.sleep(0.05)


def values(bpf_map, key_format: str, offset: int = 0) -> dict[tuple, int]:
    """Map contents as {unpacked key: the u64 at byte `offset` of the value, summed over CPUs}."""
    snap = bpf_map.read_all()
    totals = snap.u64(offset).sum(axis=1, dtype=np.uint64)
    layout = struct.Struct(key_format)
    return {layout.unpack(bytes(k)): int(v) for k, v in zip(snap.keys, totals)}


def exact_index(v: int, scale: int) -> int:
    """The OpenTelemetry exponential bucket of integer v >= 1: 2^i < v^(2^scale) <= 2^(i+1)."""
    return (v ** (1 << scale) - 1).bit_length() - 1


def bucket_bounds(index: int, scale: int) -> tuple[float, float]:
    """(lower, upper] of exponential bucket `index` at `scale`."""
    base = 2.0 ** (2.0 ** -scale)
    return base ** index, base ** (index + 1)


def exp_series(entries: dict[tuple, int], prefix: tuple) -> tuple[dict[int, int], int, int]:
    """Of a histogram map read with `values`, the series whose key starts with `prefix`:
    ({bucket index: count}, zero count, sum)."""
    buckets = {k[-1]: v for k, v in entries.items() if k[:-1] == prefix}
    zero = buckets.pop(ZERO_KEY, 0)
    total = buckets.pop(SUM_KEY, 0)
    return buckets, zero, total


def metrics(bpf_build: Path, name: str, obj: BpfObject) -> dict:
    """Every map metric of program NAME, built from `obj`'s maps as the agent builds them."""
    config = load_program_config(CONF_D / f"{name}.toml", bpf_build)
    out = {}
    for c in config.counters:
        out[c.name] = counter_metric(c, obj.maps[c.map].read_all(), KeyDecoder(c.labels, cache_size=1024, maps=obj.maps), 0, 1)
    for h in config.histograms:
        out[h.name] = histogram_metric(h, obj.maps[h.map].read_all(), KeyDecoder(h.series_labels, cache_size=1024, maps=obj.maps),
                                       BucketLayout.from_config(h), 0, 1)
    return out
