"""Program config against the maps an object really declares."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import pytest

from otelbpf.config.program import parse_program_config
from otelbpf.config.validate import validate_against_object


class MapType(enum.IntEnum):  # stands in for otelbpf.kernel.maps.MapType
    HASH = 1
    ARRAY = 2
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    RINGBUF = 27


@dataclass
class FakeMap:
    name: str
    type: int
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0


CONFIG = """
[[counters]]
name = "syscalls.count"
map = "counts"
labels = [ { name = "syscall", size = 4, padding = 4, decoders = [ { name = "uint" } ] } ]
[[histograms]]
name = "lat"
bucket_type = "exp2"
bucket_max = 26
labels = [ { name = "bucket", size = 4 } ]
[[streams]]
map = "events"
fields = [ { name = "pid", type = "u32" }, { name = "v", type = "u64" } ]
[[streams.counters]]
name = "events"
"""


def cfg(text: str = CONFIG):
    return parse_program_config(text, Path("/c/p.toml"), Path("/o"))


def good_maps():
    return {
        "counts": FakeMap("counts", MapType.PERCPU_HASH, 8, 8, 1024),
        "lat": FakeMap("lat", MapType.ARRAY, 4, 8, 28),
        "events": FakeMap("events", MapType.RINGBUF, 0, 0, 4096),
    }


def test_matching_object_has_no_errors():
    assert validate_against_object(cfg(), good_maps()) == []


def check(maps, field, fragment, fix_fragment=None, config=None):
    errors = validate_against_object(config or cfg(), maps)
    assert any(e.field == field and fragment in e.message and
               (fix_fragment is None or fix_fragment in (e.fix or "")) for e in errors), \
        "\n".join(str(e) for e in errors)


def test_missing_map_suggests():
    maps = good_maps()
    maps["count"] = maps.pop("counts")
    check(maps, "map", 'has no map "counts"', 'did you mean "count"?')


def test_wrong_map_type():
    maps = good_maps()
    maps["counts"] = FakeMap("counts", MapType.RINGBUF, 0, 0, 4096)
    check(maps, "map", "is RINGBUF", "use [[streams]]")
    maps = good_maps()
    maps["events"] = FakeMap("events", MapType.HASH, 4, 8, 10)
    check(maps, "map", "is HASH", "RINGBUF or PERF_EVENT_ARRAY")


def test_value_size():
    maps = good_maps()
    maps["counts"].value_size = 4
    check(maps, "map", "4-byte values", "__u64")


def test_value_offset_reads_a_u64_field_of_a_struct_value():
    two = CONFIG.replace('map = "counts"\n', 'map = "counts"\nvalue_offset = 8\n')
    maps = good_maps()
    maps["counts"].value_size = 16
    assert validate_against_object(cfg(two), maps) == []
    assert validate_against_object(cfg(), maps) == []  # offset 0: the first field
    maps["counts"].value_size = 8
    (error,) = validate_against_object(cfg(two), maps)
    assert (error.entry, error.field) == ('counters[0] "syscalls.count"', "value_offset")
    assert "8-byte values; this counter reads the u64 at byte 8" in error.message
    assert "set value_offset to this counter's field" in error.fix
    maps["counts"].value_size = 12  # not a struct of u64s
    assert [e.field for e in validate_against_object(cfg(), maps)] == ["map"]
    maps["counts"].value_size = 8
    maps["lat"].value_size = 16  # a histogram's slots are one u64 each
    check(maps, "map", "16-byte values", "__u64")


def test_key_size_says_numbers():
    maps = good_maps()
    maps["counts"].key_size = 12
    check(maps, "labels", "labels cover 8 bytes (syscall 4+4 padding), but map \"counts\" has 12-byte keys",
          "add 4 bytes")
    maps["counts"].key_size = 4
    check(maps, "labels", "has 4-byte keys", "remove 4 bytes")


def test_labels_sharing_bytes_cover_the_key_once():
    shared = CONFIG.replace(
        'labels = [ { name = "syscall", size = 4, padding = 4, decoders = [ { name = "uint" } ] } ]',
        'labels = [ { name = "irq", size = 4, decoders = [ { name = "uint" } ] },\n'
        '           { name = "handler", offset = 0, size = 4, decoders = [ { name = "irq" } ] } ]')
    maps = good_maps()
    maps["counts"].key_size = 4
    assert validate_against_object(cfg(shared), maps) == []
    maps["counts"].key_size = 8
    check(maps, "labels", "labels cover 4 bytes (irq 4 + handler at 0: 4)", "add 4 bytes", config=cfg(shared))


LOOKUP = CONFIG.replace(
    'labels = [ { name = "syscall", size = 4, padding = 4, decoders = [ { name = "uint" } ] } ]',
    'labels = [ { name = "function", size = 4, padding = 4, decoders = [\n'
    '    { name = "lookup", map = "owners" }, { name = "ksym" } ] } ]')


def test_lookup_map_is_one_value_per_key_keyed_by_the_label():
    maps = good_maps()
    maps["owners"] = FakeMap("owners", MapType.ARRAY, 4, 8, 4096)
    assert validate_against_object(cfg(LOOKUP), maps) == []
    del maps["owners"]
    check(maps, "labels", 'decoder "lookup" reads map "owners", which the object does not have',
          "name one of the object's maps", config=cfg(LOOKUP))
    maps["owners"] = FakeMap("owners", MapType.PERCPU_ARRAY, 4, 8, 4096)
    check(maps, "labels", 'reads map "owners", which is PERCPU_ARRAY', "not per CPU", config=cfg(LOOKUP))
    maps["owners"] = FakeMap("owners", MapType.HASH, 8, 8, 4096)
    check(maps, "labels", "whose keys are 8 bytes, with the label's 4 bytes", "make the label size 8",
          config=cfg(LOOKUP))


def test_lookup_is_not_for_record_fields():
    text = CONFIG.replace('[[streams.counters]]\nname = "events"',
                          '[[streams.counters]]\nname = "events"\n'
                          'labels = [ { field = "pid", decoders = [ { name = "lookup", map = "lat" } ] } ]')
    check(good_maps(), "labels", 'decoder "lookup" reads map keys, not record fields', config=cfg(text))


def test_per_cpu_label_needs_per_cpu_map():
    text = CONFIG.replace('map = "counts"', 'map = "counts"\nper_cpu = "label"')
    maps = good_maps()
    assert validate_against_object(cfg(text), maps) == []
    maps["counts"] = FakeMap("counts", MapType.HASH, 8, 8, 10)
    check(maps, "per_cpu", "needs a per-CPU map", config=cfg(text))


def test_array_histogram_needs_sum_slot():
    maps = good_maps()
    maps["lat"].max_entries = 27
    check(maps, "map", "need 28", "set max_entries to 28")


def test_record_must_fit_ring_buffer():
    maps = good_maps()
    maps["events"].max_entries = 16
    check(maps, "fields", "16-byte record does not fit")


def test_perf_event_array_is_a_stream():
    maps = good_maps()
    maps["events"] = FakeMap("events", MapType.PERF_EVENT_ARRAY, 4, 4, 2)
    assert validate_against_object(cfg(), maps) == []


@pytest.mark.parametrize("kind", [MapType.HASH, MapType.ARRAY, MapType.LRU_HASH,
                                  MapType.LRU_PERCPU_HASH, MapType.PERCPU_ARRAY, 1])
def test_accepted_counter_map_types(kind):
    maps = good_maps()
    maps["counts"] = FakeMap("counts", kind, 8, 8, 100)
    assert validate_against_object(cfg(), maps) == []
