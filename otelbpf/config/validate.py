"""Checks of a program config against the maps its BPF object really declares.

Run after the object is opened (map types and sizes come from its BTF/ELF) and before metrics
are read, so that a key layout that does not match the C struct is reported with numbers and a
fix instead of producing garbage labels.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from otelbpf.config.program import CounterConfig, HistogramConfig, LabelConfig, ProgramConfig, key_extent
from otelbpf.config.tables import did_you_mean
from otelbpf.errors import ConfigError
from otelbpf.kernel.maps import PERCPU_TYPES, MapType

HASH, ARRAY, PERF_EVENT_ARRAY, PERCPU_HASH, PERCPU_ARRAY = (
    MapType.HASH, MapType.ARRAY, MapType.PERF_EVENT_ARRAY, MapType.PERCPU_HASH, MapType.PERCPU_ARRAY)
LRU_HASH, LRU_PERCPU_HASH, RINGBUF = MapType.LRU_HASH, MapType.LRU_PERCPU_HASH, MapType.RINGBUF
CGRP_STORAGE = MapType.CGRP_STORAGE
HASH_MAP_TYPES = frozenset({HASH, LRU_HASH})

AGGREGATE_MAP_TYPES = frozenset({HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH})
PER_CPU_MAP_TYPES = AGGREGATE_MAP_TYPES & PERCPU_TYPES
STREAM_MAP_TYPES = frozenset({RINGBUF, PERF_EVENT_ARRAY})
ARRAY_MAP_TYPES = frozenset({ARRAY, PERCPU_ARRAY})

RINGBUF_RECORD_HEADER = 8  # struct bpf_ringbuf_hdr precedes every record


class MapLike(Protocol):
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int


def type_name(map_type: int) -> str:
    known = MapType.coerce(int(map_type))
    return known.name if isinstance(known, MapType) else f"type {int(map_type)}"


def _names(types: frozenset[int]) -> str:
    return ", ".join(sorted(type_name(t) for t in types))


def validate_against_object(cfg: ProgramConfig, maps: Mapping[str, MapLike],
                            programs: Collection[str] | None = None) -> list[ConfigError]:
    """Every mismatch between ``cfg`` and the object's ``maps`` (and BPF ``programs``, when
    given); an empty list means usable."""
    errors: list[ConfigError] = []

    def error(entry: str, field: str, message: str, fix: str) -> None:
        errors.append(ConfigError(cfg.path, entry, field, message, fix))

    def find(entry: str, name: str) -> MapLike | None:
        bpf_map = maps.get(name)
        if bpf_map is None:
            hint = did_you_mean(name, maps)
            known = ", ".join(sorted(maps)) or "none"
            error(entry, "map", f'{cfg.object.name} has no map "{name}" (its maps: {known})',
                  hint or "set map to one of the object's maps")
        return bpf_map

    for metric in (*cfg.counters, *cfg.histograms):
        bpf_map = find(metric.entry, metric.map)
        if bpf_map is None:
            continue
        kind = int(bpf_map.type)
        if kind not in AGGREGATE_MAP_TYPES:
            error(metric.entry, "map", f'map "{metric.map}" is {type_name(kind)}',
                  f"counters and histograms read {_names(AGGREGATE_MAP_TYPES)} maps"
                  + ("; use [[streams]] for ring/perf buffers" if kind in STREAM_MAP_TYPES else ""))
            continue
        if isinstance(metric, CounterConfig):
            offset = metric.value_offset
            if bpf_map.value_size % 8 or bpf_map.value_size < offset + 8:
                error(metric.entry, "value_offset" if offset else "map",
                      f'map "{metric.map}" has {bpf_map.value_size}-byte values; this counter reads '
                      f"the u64 at byte {offset}",
                      "declare the map's value as __u64, or as a struct of __u64 counts and set "
                      "value_offset to this counter's field")
        elif bpf_map.value_size != 8:
            error(metric.entry, "map", f'map "{metric.map}" has {bpf_map.value_size}-byte values',
                  "declare the map's value as __u64 (8 bytes)")
        _check_key(metric.entry, metric.map, metric.labels, bpf_map, error)
        _check_lookups(metric.entry, metric.labels, maps, error)
        if metric.per_cpu == "label" and kind not in PER_CPU_MAP_TYPES:
            error(metric.entry, "per_cpu", f'"label" needs a per-CPU map; "{metric.map}" is '
                  f"{type_name(kind)}", 'remove per_cpu or make the map PERCPU_HASH/PERCPU_ARRAY')
        # An array keyed by the bucket alone must have room for every slot and the sum slot.
        if (isinstance(metric, HistogramConfig) and kind in ARRAY_MAP_TYPES
                and len(metric.labels) == 1):
            slots = (metric.bucket_keys[-1] + 1 if metric.bucket_type == "fixed"
                     else metric.bucket_max + 1)  # fixed: keyed by value
            if bpf_map.max_entries < slots + 1:
                error(metric.entry, "map",
                      f'array "{metric.map}" has {bpf_map.max_entries} entries, '
                      f"but {slots} buckets plus the sum slot need {slots + 1}",
                      f"set max_entries to {slots + 1} or lower bucket_max")

    for stream in cfg.streams:
        for metric in (*stream.counters, *stream.histograms):
            _refuse_lookups(metric.entry, metric.labels, error)
        bpf_map = find(stream.entry, stream.map)
        if bpf_map is None:
            continue
        kind = int(bpf_map.type)
        if kind not in STREAM_MAP_TYPES:
            error(stream.entry, "map", f'map "{stream.map}" is {type_name(kind)}',
                  "streams read RINGBUF or PERF_EVENT_ARRAY maps; use [[counters]] or "
                  "[[histograms]] for the others")
            continue
        if kind == RINGBUF and stream.record_size + RINGBUF_RECORD_HEADER > bpf_map.max_entries:
            error(stream.entry, "fields", f"a {stream.record_size}-byte record does not fit in "
                  f'ring buffer "{stream.map}" ({bpf_map.max_entries} bytes)',
                  "check the field offsets, or enlarge the ring buffer's max_entries")
    id_map = cfg.cgroup_id_map
    if id_map is not None:
        bpf_map = find(id_map.entry, id_map.name)
        # ebpf_exporter's layouts: u64 cgroup id → u64, or cgroup (fd) → u64 in CGRP_STORAGE.
        want = {"hash": (HASH_MAP_TYPES, 8), "cgrp_storage": (frozenset({CGRP_STORAGE}), 4)}
        types, key_size = want[id_map.type]
        if bpf_map is not None and (int(bpf_map.type) not in types
                                    or bpf_map.key_size != key_size or bpf_map.value_size != 8):
            error(id_map.entry, "type", f'map "{id_map.name}" is {type_name(bpf_map.type)} with '
                  f"{bpf_map.key_size}-byte keys and {bpf_map.value_size}-byte values",
                  f'type "{id_map.type}" needs a '
                  + ("HASH or LRU_HASH map with u64 keys" if id_map.type == "hash"
                     else "CGRP_STORAGE map with int keys") + " and u64 values")
    for span in cfg.spans:
        _refuse_lookups(span.entry, span.labels, error)
        bpf_map = find(span.entry, span.ringbuf)
        if bpf_map is not None and int(bpf_map.type) != RINGBUF:
            error(span.entry, "ringbuf", f'map "{span.ringbuf}" is {type_name(bpf_map.type)}',
                  "spans are read from a BPF_MAP_TYPE_RINGBUF map")
    for i, group in enumerate(cfg.alternatives if programs is not None else ()):
        for name in group:
            if name not in programs:
                known = ", ".join(sorted(programs)) or "none"
                error(None, f"alternatives[{i}]", f'{cfg.object.name} has no BPF program "{name}" '
                      f"(its programs: {known})",
                      did_you_mean(name, programs) or "list the object's BPF program (function) names")
    return errors


LOOKUP_MAP_TYPES = frozenset({HASH, ARRAY, LRU_HASH})


def _check_lookups(entry: str, labels: Sequence[LabelConfig], maps: Mapping[str, MapLike],
                   error) -> None:
    """A ``lookup`` decoder reads a map the agent can read one key of, keyed by the label's bytes."""
    for label in labels:
        for decoder in label.decoders:
            if decoder.name != "lookup":
                continue
            name = decoder.options["map"]
            bpf_map = maps.get(name)
            where = f'label "{label.name}": decoder "lookup"'
            if bpf_map is None:
                hint = did_you_mean(name, maps)
                error(entry, "labels", f'{where} reads map "{name}", which the object does not have '
                      f"(its maps: {', '.join(sorted(maps)) or 'none'})", hint or "name one of the object's maps")
            elif int(bpf_map.type) not in LOOKUP_MAP_TYPES:
                error(entry, "labels", f'{where} reads map "{name}", which is {type_name(bpf_map.type)}',
                      f"a lookup map is one of {_names(LOOKUP_MAP_TYPES)} (one value per key, not per CPU)")
            elif bpf_map.key_size != label.size:
                error(entry, "labels", f'{where} reads map "{name}", whose keys are {bpf_map.key_size} '
                      f"bytes, with the label's {label.size} bytes",
                      f"make the label size {bpf_map.key_size} or the map's key the label's type")


def _refuse_lookups(entry: str, labels, error) -> None:
    """Labels of record fields (streams, spans) have no map key for ``lookup`` to read."""
    if any(d.name == "lookup" for label in labels for d in label.decoders):
        error(entry, "labels", 'decoder "lookup" reads map keys, not record fields',
              "use it in the labels of [[counters]] or [[histograms]]")


def _check_key(entry: str, map_name: str, labels: Sequence[LabelConfig], bpf_map: MapLike,
               error) -> None:
    covered = key_extent(labels)
    # Without labels the map is one series whatever its key (an array's u32 index 0, as
    # ebpf_exporter reads label-less maps).
    if covered == bpf_map.key_size or not labels:
        return
    parts = " + ".join((f"{label.name} at {label.offset}: {label.size}" if label.offset is not None
                        else f"{label.name} {label.size}")
                       + (f"+{label.padding} padding" if label.padding else "")
                       for label in labels) or "no labels"
    diff = bpf_map.key_size - covered
    if diff > 0:
        fix = (f"add {diff} bytes: widen a label or add padding (the C compiler pads structs to "
               "their alignment)")
    else:
        fix = f"remove {-diff} bytes from the labels' size/padding, or check the key struct"
    error(entry, "labels", f'labels cover {covered} bytes ({parts}), but map "{map_name}" has '
          f"{bpf_map.key_size}-byte keys", fix)
