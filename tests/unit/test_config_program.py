"""Program config: the ebpf_exporter-style keys, stream layouts, and every static check."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelbpf.config.program import (
    ProgramConfig,
    StreamConfig,
    StreamFieldConfig,
    load_program_config,
    parse_field_type,
    parse_program_config,
)
from otelbpf.errors import ConfigErrors

OBJECTS = Path("/objects")

EXAMPLE = """
object = "syscalls.bpf.o"
[parameters]
target_tgid = 0
verbose = true
comm = "bash"
[[counters]]
name = "syscalls.count"
help = "Syscalls entered"
unit = "{call}"
map = "syscall_counts"
per_cpu = "label"
labels = [ { name = "syscall", size = 4, padding = 4, decoders = [ { name = "uint" }, { name = "syscall" } ] } ]
[[histograms]]
name = "bio.latency"
description = "Block I/O latency"
unit = "us"
map = "bio_latency"
bucket_type = "exp2"
bucket_min = 0
bucket_max = 26
bucket_multiplier = 0.5
labels = [ {name="device", size=4, decoders=[{name="majorminor"}]}, {name="bucket", size=8, decoders=[{name="uint"}]} ]
[[histograms]]
name = "sizes"
bucket_type = "fixed"
bucket_keys = [512, 4096, 65536]
labels = [ {name="bucket", size=4} ]
[[counters]]
name = "ops"
labels = [ { name = "op", size = 1, decoders = [ { name = "uint" }, { name = "static_map", static_map = { "1" = "read" }, allow_unknown = true } ] } ]
[[streams]]
map = "events"
fields = [ { name = "tgid", type = "u32" }, { name = "comm", type = "char[16]" }, { name = "latency_ns", type = "u64", offset = 24 }, { name = "rate", type = "u16" }, { name = "addr", type = "u8[6]" }, { name = "delta", type = "s32" } ]
sample_rate = "rate"
cardinality_limit = 500
idle_intervals = 6
[[streams.counters]]
name = "exec.count"
[[streams.counters]]
name = "exec.bytes"
value = "latency_ns"
unit = "By"
labels = [ { field = "comm", name = "command" } ]
[[streams.histograms]]
name = "wakeup.latency"
unit = "ns"
value = "latency_ns"
scale = 3
max_size = 80
labels = [ { field = "comm", decoders = [ { name = "string" }, { name = "regexp", regexps = ["^ssh"] } ] }, { field = "tgid" }, { field = "addr" }, { field = "delta" } ]
"""


def parse(text: str, name: str = "prog") -> ProgramConfig:
    return parse_program_config(text, Path(f"/conf.d/{name}.toml"), OBJECTS)


def errors_of(text: str) -> list:
    with pytest.raises(ConfigErrors) as info:
        parse(text)
    return info.value.errors


def test_example_loads():
    cfg = parse(EXAMPLE, "syscalls")
    assert cfg.name == "syscalls" and cfg.object == OBJECTS / "syscalls.bpf.o"
    assert dict(cfg.parameters) == {"target_tgid": 0, "verbose": True, "comm": "bash"}
    counter = cfg.counters[0]
    assert (counter.name, counter.help, counter.unit, counter.map, counter.per_cpu) == (
        "syscalls.count", "Syscalls entered", "{call}", "syscall_counts", "label")
    assert counter.entry == 'counters[0] "syscalls.count"'
    label = counter.labels[0]
    assert (label.name, label.size, label.padding) == ("syscall", 4, 4)
    assert [d.name for d in label.decoders] == ["uint", "syscall"]
    ops = cfg.counters[1]
    assert ops.map == "ops"  # defaults to the name
    assert dict(ops.labels[0].decoders[1].options) == {"static_map": {"1": "read"}, "allow_unknown": True}
    hist = cfg.histograms[0]
    assert (hist.help, hist.bucket_type, hist.bucket_min, hist.bucket_max, hist.bucket_multiplier) == (
        "Block I/O latency", "exp2", 0, 26, 0.5)
    assert hist.bucket_label.name == "bucket" and [l.name for l in hist.series_labels] == ["device"]
    fixed = cfg.histograms[1]
    assert fixed.bucket_keys == (512, 4096, 65536) and fixed.bucket_label.decoders == ()
    stream = cfg.streams[0]
    assert stream.entry == 'streams[0] "events"'
    assert stream.sample_rate == "rate" and stream.cardinality_limit == 500 and stream.idle_intervals == 6
    assert [(f.name, f.offset) for f in stream.fields] == [
        ("tgid", 0), ("comm", 4), ("latency_ns", 24), ("rate", 32), ("addr", 34), ("delta", 40)]
    assert stream.layout_end == 44 and stream.record_size == 48
    assert stream.counters[0].value is None and stream.counters[0].labels == ()
    assert stream.counters[1].labels[0].name == "command"
    assert stream.counters[1].labels[0].decoders[0].name == "string"  # default for char[N]
    h = stream.histograms[0]
    assert (h.value, h.scale, h.max_size) == ("latency_ns", 3, 80)
    assert [[d.name for d in l.decoders] for l in h.labels] == [
        ["string", "regexp"], ["uint"], ["hex"], ["int"]]
    assert h.entry == 'streams[0] "events".histograms[0] "wakeup.latency"'
    assert cfg.maps == ("syscall_counts", "ops", "bio_latency", "sizes", "events")


def test_object_defaults_and_absolute(tmp_path):
    path = tmp_path / "biolatency.toml"
    path.write_text('[[counters]]\nname = "x"\nlabels = []\n')
    assert load_program_config(path, OBJECTS).object == OBJECTS / "biolatency.bpf.o"
    cfg = parse('object = "/abs/o.bpf.o"\n[[counters]]\nname = "x"')
    assert cfg.object == Path("/abs/o.bpf.o")


def test_stream_defaults():
    cfg = parse('[[streams]]\nmap = "rb"\nfields = [{name="v", type="u64"}]\n'
                '[[streams.histograms]]\nname = "h"\nvalue = "v"')
    s = cfg.streams[0]
    assert s.sample_rate == 1 and s.cardinality_limit is None and s.idle_intervals == 60
    assert (s.histograms[0].scale, s.histograms[0].max_size) == (20, 160)


@pytest.mark.parametrize("text,kind,size,align", [
    ("u8", "uint", 1, 1), ("u64", "uint", 8, 8), ("s16", "int", 2, 2),
    ("char[16]", "char", 16, 1), ("u8[6]", "bytes", 6, 1),
])
def test_field_types(text, kind, size, align):
    t = parse_field_type(text)
    assert (t.kind, t.size, t.alignment) == (kind, size, align)


@pytest.mark.parametrize("text", ["u128", "char[0]", "char", "f64", "u16[2]", "int"])
def test_bad_field_types(text):
    with pytest.raises(ValueError):
        parse_field_type(text)


def test_record_size_rounds_to_alignment():
    s = StreamConfig("m", (StreamFieldConfig("a", "u64", 0), StreamFieldConfig("b", "u8", 8)))
    assert (s.layout_end, s.record_size) == (9, 16)


# (config text, entry, field, message fragment)
ERRORS = [
    ("", None, None, "defines no metrics"),
    ('objekt = "x"\n[[counters]]\nname="a"', None, "objekt", "unknown key"),
    ('[parameters]\nx = 1.5\n[[counters]]\nname="a"', "parameters", "x", "integer, boolean or string"),
    ('[parameters]\nx = [1]\n[[counters]]\nname="a"', "parameters", "x", "integer, boolean or string"),
    ('[[counters]]\nname = ""', 'counters[0]', "name", "must not be empty"),
    ('[[counters]]\nname = "9lives"\nmap = "m"', 'counters[0] "9lives"', "name", "not a valid OpenTelemetry"),
    ('[[counters]]\nname = "a.b"', 'counters[0] "a.b"', "map", "defaults to the metric name"),
    ('[[counters]]\nname = "a"\nmap = "a-b"', 'counters[0] "a"', "map", "not a valid map name"),
    ('[[counters]]\nname = "a"\n[[counters]]\nname = "a"', 'counters[1] "a"', "name", 'already used by counters[0] "a"'),
    ('[[counters]]\nname = "a"\nhelp = "x"\ndescription = "y"', 'counters[0] "a"', "description", "same setting"),
    ('[[counters]]\nname = "a"\nunit = "µs"', 'counters[0] "a"', "unit", "ASCII"),
    ('[[counters]]\nname = "a"\nper_cpu = "each"', 'counters[0] "a"', "per_cpu", "not one of"),
    ('[[counters]]\nname = "a"\nlables = []', 'counters[0] "a"', "lables", "unknown key"),
    ('[[counters]]\nname = "a"\nlabels = [{name="x", size=4}]', 'counters[0] "a".labels[0] "x"', "decoders", "is required"),
    ('[[counters]]\nname = "a"\nlabels = [{name="x", size=0, decoders=[{name="uint"}]}]', 'counters[0] "a".labels[0] "x"', "size", "out of range"),
    ('[[counters]]\nname = "a"\nlabels = [{name="x", size=4, padding=-1, decoders=[{name="uint"}]}]', 'counters[0] "a".labels[0] "x"', "padding", "out of range"),
    ('[[counters]]\nname = "a"\nlabels = [{name="x", size=4, decoders=[{name="uint"}]}, {name="x", size=4, decoders=[{name="uint"}]}]', 'counters[0] "a".labels[1] "x"', "name", "appears twice"),
    ('[[counters]]\nname = "a"\nlabels = [{name="x", size=4, offset=-4, decoders=[{name="uint"}]}]', 'counters[0] "a".labels[0] "x"', "offset", "out of range"),
    ('[[counters]]\nname = "a"\nlabels = [{name="x", size=4, offset="0", decoders=[{name="uint"}]}]', 'counters[0] "a".labels[0] "x"', "offset", "expected an integer"),
    ('[[counters]]\nname = "a"\nvalue_offset = 4', 'counters[0] "a"', "value_offset", "not a multiple of 8"),
    ('alternatives = "a"\n[[counters]]\nname="a"', None, "alternatives", "expected an array of arrays"),
    ('alternatives = [["a"]]\n[[counters]]\nname="a"', None, "alternatives[0]", "two or more BPF program names"),
    ('alternatives = [["a", 1]]\n[[counters]]\nname="a"', None, "alternatives[0]", "two or more BPF program names"),
    ('alternatives = [["a", "b"], ["c", "b"]]\n[[counters]]\nname="a"', None, "alternatives[1]", '"b" is listed twice'),
    ('alternatives = [["a", "a"]]\n[[counters]]\nname="a"', None, "alternatives[0]", '"a" is listed twice'),
    ('[[counters]]\nname = "a"\nvalue_offset = -8', 'counters[0] "a"', "value_offset", "out of range"),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nbucket_max = 3\nvalue_offset = 8\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "value_offset", "unknown key"),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nbucket_max = 3\nlabels = [{name="b", size=4, offset=0}]', 'histograms[0] "h".labels[0] "b"', "offset", "read where the other labels end"),
    ('[[counters]]\nname = "a"\nlabels = [{name="x", size=4, decoders=[{name="ksm"}]}]', 'counters[0] "a".labels[0] "x".decoders[0] "ksm"', "name", "unknown decoder"),
    ('[[counters]]\nname = "a"\nlabels = [{name="x", size=4, decoders=[{name="regexp", regexps=["("]}]}]', 'counters[0] "a".labels[0] "x".decoders[0] "regexp"', None, "invalid regexp"),
    ('[[counters]]\nname = "a"\nlabels = [{name="x", size=4, decoders=[{name="uint", wat=1}]}]', 'counters[0] "a".labels[0] "x".decoders[0] "uint"', None, 'no option "wat"'),
    ('[[counters]]\nname = "a"\nlabels = [{name="x", size=4, decoders=["uint"]}]', 'counters[0] "a".labels[0] "x"', "decoders[0]", "expected a table"),
    ('[[counters]]\nname = "a"\nper_cpu = "label"\nlabels = [{name="cpu", size=4, decoders=[{name="uint"}]}]', 'counters[0] "a"', "per_cpu", 'label named "cpu"'),
    ('[[histograms]]\nname = "h"\nbucket_max = 3\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "bucket_type", "is required"),
    ('[[histograms]]\nname = "h"\nbucket_type = "log2"\nbucket_max = 3\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "bucket_type", "not one of"),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "bucket_max", "is required"),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nbucket_max = 256\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "bucket_max", "out of range"),
    ('[[histograms]]\nname = "h"\nbucket_type = "linear"\nbucket_min = 5\nbucket_max = 3\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "bucket_min", "above bucket_max"),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nbucket_max = 3\nbucket_multiplier = 0\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "bucket_multiplier", "out of range"),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nbucket_max = 3\nbucket_keys = [1]\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "bucket_keys", 'only used by bucket_type "fixed"'),
    ('[[histograms]]\nname = "h"\nbucket_type = "fixed"\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "bucket_keys", "non-empty array"),
    ('[[histograms]]\nname = "h"\nbucket_type = "fixed"\nbucket_keys = [1, 5, 5]\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "bucket_keys[2]", "does not increase"),
    ('[[histograms]]\nname = "h"\nbucket_type = "fixed"\nbucket_keys = [1, 2.5]\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "bucket_keys", "integers only"),
    ('[[histograms]]\nname = "h"\nbucket_type = "fixed"\nbucket_keys = [1]\nbucket_max = 3\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "bucket_max", 'not used by bucket_type "fixed"'),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nbucket_max = 3', 'histograms[0] "h"', "labels", "is required"),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nbucket_max = 3\nlabels = []', 'histograms[0] "h"', "labels", "at least the bucket label"),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nbucket_max = 3\nlabels = [{name="b", size=3}]', 'histograms[0] "h".labels[0] "b"', "size", "bucket label"),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nbucket_max = 3\nlabels = [{name="b", size=4, decoders=[{name="hex"}]}]', 'histograms[0] "h".labels[0] "b"', "decoders", "read as a number"),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nbucket_max = 255\nlabels = [{name="b", size=1}]', 'histograms[0] "h"', "labels", "cannot hold slot 256"),
    # fixed slots are keyed by value: the sum of bucket_keys = [10, 255] sits at slot 256
    ('[[histograms]]\nname = "h"\nbucket_type = "fixed"\nbucket_keys = [10, 255]\nlabels = [{name="b", size=1}]', 'histograms[0] "h"', "labels", "cannot hold slot 256"),
    ('[[histograms]]\nname = "h"\nbucket_type = "fixed"\nbucket_keys = [-1, 5]\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "bucket_keys[0]", "is negative"),
    ('[[streams]]\nfields = [{name="v", type="u64"}]\n[[streams.counters]]\nname="c"', 'streams[0]', "map", "is required"),
    ('[[streams]]\nmap = "rb"\n[[streams.counters]]\nname="c"', 'streams[0] "rb"', "fields", "is required"),
    ('[[streams]]\nmap = "rb"\nfields = []\n[[streams.counters]]\nname="c"', 'streams[0] "rb"', "fields", "is empty"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="v", type="u64"}]', 'streams[0] "rb"', None, "defines no metrics"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="v", type="float"}]\n[[streams.counters]]\nname="c"', 'streams[0] "rb".fields[0] "v"', "type", "not a known field type"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="v", type="u64"}, {name="v", type="u8"}]\n[[streams.counters]]\nname="c"', 'streams[0] "rb".fields[1] "v"', "name", "appears twice"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}, {name="b", type="u32", offset=4}]\n[[streams.counters]]\nname="c"', 'streams[0] "rb".fields[1] "b"', "offset", "overlap"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64", size=8}]\n[[streams.counters]]\nname="c"', 'streams[0] "rb".fields[0] "a"', "size", "unknown key"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\nsample_rate = 0\n[[streams.counters]]\nname="c"', 'streams[0] "rb"', "sample_rate", "out of range"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\nsample_rate = "rat"\n[[streams.counters]]\nname="c"', 'streams[0] "rb"', "sample_rate", 'no field "rat"'),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\ncardinality_limit = 0\n[[streams.counters]]\nname="c"', 'streams[0] "rb"', "cardinality_limit", "out of range"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="char[4]"}]\n[[streams.counters]]\nname="c"\nvalue="a"', 'streams[0] "rb".counters[0] "c"', "value", "not a number"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.histograms]]\nname="h"', 'streams[0] "rb".histograms[0] "h"', "value", "is required"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.histograms]]\nname="h"\nvalue="b"', 'streams[0] "rb".histograms[0] "h"', "value", 'no field "b"'),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.histograms]]\nname="h"\nvalue="a"\nscale=21', 'streams[0] "rb".histograms[0] "h"', "scale", "out of range"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.histograms]]\nname="h"\nvalue="a"\nscale=-11', 'streams[0] "rb".histograms[0] "h"', "scale", "out of range"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.histograms]]\nname="h"\nvalue="a"\nmax_size=1', 'streams[0] "rb".histograms[0] "h"', "max_size", "out of range"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.counters]]\nname="c"\nlabels=[{field="b"}]', 'streams[0] "rb".counters[0] "c".labels[0] "b"', "field", 'no field "b"'),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.counters]]\nname="c"\nlabels=[{field="a"}, {field="a"}]', 'streams[0] "rb".counters[0] "c".labels[1] "a"', "name", "appears twice"),
    ('[[counters]]\nname = "c"\nmap = "rb"\n[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.counters]]\nname="s"', 'streams[0] "rb"', "map", 'already read by counters[0] "c"'),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nbucket_max = 3\naggregation = "native"\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "aggregation", "not one of"),
    ('[[histograms]]\nname = "h"\nbucket_type = "linear"\nbucket_max = 3\naggregation = "exponential"\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "aggregation", "not powers of two"),
    ('[[histograms]]\nname = "h"\nbucket_type = "exp2"\nbucket_max = 3\nbucket_multiplier = 1000\naggregation = "exponential"\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "aggregation", "not a power of two"),
    ('[[histograms]]\nname = "h"\nbucket_type = "fixed"\nbucket_keys = [1]\naggregation = "exponential"\nlabels = [{name="b", size=4}]', 'histograms[0] "h"', "aggregation", "not powers of two"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.histograms]]\nname="h"\nvalue="a"\naggregation="exponential"\nbounds=[1, 2]', 'streams[0] "rb".histograms[0] "h"', "bounds", 'only used by aggregation "explicit"'),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.histograms]]\nname="h"\nvalue="a"\nbounds=[]', 'streams[0] "rb".histograms[0] "h"', "bounds", "non-empty array"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.histograms]]\nname="h"\nvalue="a"\nbounds=[1, 1]', 'streams[0] "rb".histograms[0] "h"', "bounds[1]", "does not increase"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.histograms]]\nname="h"\nvalue="a"\nbounds=[1, "x"]', 'streams[0] "rb".histograms[0] "h"', "bounds[1]", "finite number"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.histograms]]\nname="h"\nvalue="a"\nbounds=[1, inf]', 'streams[0] "rb".histograms[0] "h"', "bounds[1]", "finite number"),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.histograms]]\nname="h"\nvalue="a"\naggregation="explicit"\nscale=3', 'streams[0] "rb".histograms[0] "h"', "scale", 'only used by aggregation "exponential"'),
    ('[[streams]]\nmap = "rb"\nfields = [{name="a", type="u64"}]\n[[streams.histograms]]\nname="h"\nvalue="a"\nbounds=[5]\nmax_size=20', 'streams[0] "rb".histograms[0] "h"', "max_size", 'only used by aggregation "exponential"'),
    ('counters = 5', None, "counters", "expected an array of tables"),
    ('counters = [5]', None, "counters[0]", "expected a table"),
]


@pytest.mark.parametrize("text,entry,field,fragment", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_errors_name_entry_and_field(text, entry, field, fragment):
    errors = errors_of(text)
    assert any(e.entry == entry and e.field == field and fragment in e.message for e in errors), \
        "\n".join(f"{e.entry!r} {e.field!r} {e.message}" for e in errors)
    assert all(str(e.path) == "/conf.d/prog.toml" for e in errors)


def test_aggregation_choices():
    base = '[[histograms]]\nname = "h"\nbucket_type = "{t}"\nbucket_max = 3\n{extra}labels = [{{name="b", size=4}}]'
    assert parse(base.format(t="exp2", extra="")).histograms[0].aggregation == "auto"
    for choice in ("auto", "explicit", "exponential"):
        h = parse(base.format(t="exp2", extra=f'aggregation = "{choice}"\n')).histograms[0]
        assert h.aggregation == choice
    assert parse(base.format(t="linear", extra='aggregation = "explicit"\n')).histograms[0].aggregation == "explicit"
    stream = ('[[streams]]\nmap = "rb"\nfields = [{{name="a", type="u64"}}]\n'
              '[[streams.histograms]]\nname="h"\nvalue="a"\n{extra}')
    h = parse(stream.format(extra="")).streams[0].histograms[0]
    assert (h.aggregation, h.bounds, h.scale, h.max_size) == ("auto", (), 20, 160)
    h = parse(stream.format(extra="bounds = [1, 2.5, 1000]")).streams[0].histograms[0]
    assert (h.aggregation, h.bounds) == ("explicit", (1.0, 2.5, 1000.0))  # bounds make it explicit
    h = parse(stream.format(extra='aggregation = "explicit"')).streams[0].histograms[0]
    assert (h.aggregation, h.bounds) == ("explicit", ())  # () = the OpenTelemetry SDK's default bounds


def test_several_errors_at_once():
    errors = errors_of('[[counters]]\nname = ""\nper_cpu = 1\n[[histograms]]\nname = "h"\nbucket_type = "x"\nbucket_max = 3\nlabels=[{name="b",size=4}]\nextra = 1')
    assert len(errors) >= 4


def test_unknown_key_suggestion():
    (error,) = errors_of('[[counters]]\nname = "a"\nhepl = "x"')
    assert error.fix == 'did you mean "help"?'


def test_alternatives_are_groups_of_program_names_best_first():
    cfg = parse('alternatives = [["a_fentry", "a_kprobe", "a_tp"], ["b_kprobe", "b_tp"]]\n'
                '[[counters]]\nname = "a"')
    assert cfg.alternatives == (("a_fentry", "a_kprobe", "a_tp"), ("b_kprobe", "b_tp"))
    assert parse('[[counters]]\nname = "a"').alternatives == ()
