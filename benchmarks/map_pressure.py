"""Cost of one MapPressure.collect() with 1,000 BPF maps of mixed types on the host.

    sudo python3 benchmarks/map_pressure.py [--maps 1000] [--rounds 20]

Creates the maps in this process (the collector opens them by id like anyone else's), fills the
hash maps, then times collect() with the iter/bpf_map program and with the syscall fallback
(no iterator: enumerate by id, count hash maps by key walk). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from otelbpf.config.agent import MapPressureConfig  # noqa: E402
from otelbpf.health.map_pressure import MapPressure  # noqa: E402
from otelbpf.kernel.maps import BPF_F_NO_PREALLOC, BpfMap, MapType  # noqa: E402

# (type, key_size, value_size, max_entries, flags, entries to insert)
MIX = [
    (MapType.HASH, 4, 8, 1024, 0, 100),
    (MapType.HASH, 4, 8, 1024, BPF_F_NO_PREALLOC, 100),
    (MapType.LRU_HASH, 4, 8, 1024, 0, 100),
    (MapType.PERCPU_HASH, 4, 8, 1024, 0, 100),
    (MapType.ARRAY, 4, 8, 1024, 0, 0),
    (MapType.PERCPU_ARRAY, 4, 8, 256, 0, 0),
    (MapType.RINGBUF, 0, 0, 4096, 0, 0),
    (MapType.LPM_TRIE, 8, 8, 128, BPF_F_NO_PREALLOC, 0),
]


def create_maps(n: int) -> list[BpfMap]:
    maps = []
    for i in range(n):
        map_type, key_size, value_size, max_entries, flags, fill = MIX[i % len(MIX)]
        m = BpfMap.create(map_type, key_size, value_size, max_entries, name=f"bench_{i}", flags=flags)
        value = bytes(m.value_buffer_size)
        for k in range(fill):
            m.update(struct.pack("=I", k), value)
        maps.append(m)
    return maps


def time_collect(source: MapPressure, rounds: int) -> dict:
    source.collect(time.time_ns())  # warm-up
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        source.collect(time.time_ns())
        samples.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": round(statistics.median(samples), 2), "min_ms": round(min(samples), 2),
            "max_ms": round(max(samples), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    # Each created map is an fd in this process.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.maps + 1024)), hard))

    maps = create_maps(args.maps)
    config = MapPressureConfig(enabled=True, interval=None, warning=0.7, critical=0.9, include=(), exclude=())
    results = {"maps_created": args.maps, "rounds": args.rounds, "kernel": platform.release()}
    iterator = MapPressure(config)
    try:
        results["maps_on_host"] = len(
            {dict(p.attributes)["bpf.map.id"] for m in iterator.collect(time.time_ns()) for p in m.points}
        )
        results["iterator"] = time_collect(iterator, args.rounds) if iterator.method == "iterator" else None
    finally:
        iterator.close()
    with MapPressureFallback(config) as fallback:
        results["syscalls_fallback"] = time_collect(fallback, args.rounds)
    for name in ("iterator", "syscalls_fallback"):
        if results[name]:
            results[name]["per_map_us"] = round(results[name]["median_ms"] * 1e3 / results["maps_on_host"], 1)
    for m in maps:
        m.close()
    print(json.dumps(results))


class MapPressureFallback(MapPressure):
    """MapPressure pointed at a directory without the iterator object: the < 6.6 / no-BTF path."""

    def __init__(self, config: MapPressureConfig) -> None:
        super().__init__(config, build_dir=Path("/nonexistent"))

    def __enter__(self) -> MapPressureFallback:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    main()
