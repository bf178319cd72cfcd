"""Program config: one ``NAME.toml`` per BPF object, describing which maps become which metrics.

Key names and concepts follow cloudflare/ebpf_exporter (counters, histograms, labels with
size/padding and decoder chains, bucket_type/bucket_min/bucket_max) so existing configs translate
almost line by line; ``streams`` (ring buffer / perf buffer records aggregated in user space) and
``per_cpu`` are otelbpf additions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from otelbpf.aggregate.buckets import AGGREGATIONS, exponential_unavailable
from otelbpf.config.tables import (ErrorList, Table, describe, did_you_mean, entry_name, freeze,
                                   parse_toml, read_toml)
from otelbpf.config.trust import check_trusted

# Instances are frozen; every sequence is a tuple and every mapping read-only, so a loaded config
# can be shared between threads and compared against a reloaded one with ==.


@dataclass(frozen=True)
class DecoderConfig:
    """One step of a label's decoder chain: ``{ name = "static_map", static_map = {...} }``.

    ``options`` holds every key of the table besides ``name``.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class LabelConfig:
    """A slice of a map key: ``size`` bytes decoded into a label, then ``padding`` bytes skipped.

    ``offset``: where the slice starts in the key; None (the default) is where the previous label
    and its padding end. Two labels may read the same bytes (an IRQ number as a number and as its
    handlers' names).
    """

    name: str
    size: int
    padding: int = 0
    decoders: tuple[DecoderConfig, ...] = ()
    offset: int | None = None


def label_slices(labels: Sequence[LabelConfig]) -> tuple[slice, ...]:
    """Each label's bytes in the key, in label order (the one rule for where a label lies)."""
    slices, position = [], 0
    for label in labels:
        start = position if label.offset is None else label.offset
        slices.append(slice(start, start + label.size))
        position = start + label.size + label.padding
    return tuple(slices)


def key_extent(labels: Sequence[LabelConfig]) -> int:
    """How many key bytes the labels span, paddings included."""
    return max((part.stop + label.padding for label, part in zip(labels, label_slices(labels))),
               default=0)


PER_CPU_MODES = ("sum", "label")


@dataclass(frozen=True)
class CounterConfig:
    """A map whose u64 values are monotonic counts, one series per decoded key."""

    name: str
    help: str
    unit: str
    map: str
    labels: tuple[LabelConfig, ...]
    per_cpu: str = "sum"
    entry: str = ""
    # Each count times this, as a double: a map of nanoseconds exported in seconds ("s").
    multiplier: float = 1.0
    # Without labels: read only the u32 key 0; any other key fails the read (ebpf_exporter's
    # rule). Otherwise every key of a label-less map is summed into the one series.
    single_key: bool = False
    # Keys that have counted nothing (0 on every CPU) are not series: an array map indexed by
    # something sparse (state pairs, reasons) exports only the indexes its program counted.
    skip_zero: bool = False
    # Where this counter's u64 lies in the map's value: a value that is a struct of counts (a
    # time and a run count updated together) holds several counters, one per offset.
    value_offset: int = 0


BUCKET_TYPES = ("exp2", "exp2zero", "linear", "fixed", "exponential")
BELOW_BUCKET_MIN = ("lowest", "drop")


@dataclass(frozen=True)
class HistogramConfig:
    """A map of histogram slots; the last label of the key is the slot number.

    ``aggregation``: "auto" (exponential where exact, else explicit; an agent-wide default may
    make it explicit), "exponential" or "explicit" (see `otelbpf.aggregate.buckets`).
    """

    name: str
    help: str
    unit: str
    map: str
    labels: tuple[LabelConfig, ...]
    bucket_type: str
    bucket_min: int = 0
    bucket_max: int = 0
    bucket_keys: tuple[int, ...] = ()
    bucket_multiplier: float = 1.0
    per_cpu: str = "sum"
    entry: str = ""
    aggregation: str = "auto"
    # bucket_type "exponential": the kernel's OpenTelemetry scale, and the most buckets a series
    # may export before it is downscaled.
    bucket_scale: int = 0
    max_size: int = 160
    # Events in slots below bucket_min (a program that does not clamp): "lowest" counts them in
    # the lowest bucket (they are at or below its bound), "drop" leaves them out as
    # ebpf_exporter does. Either way they are counted in otelbpf.histogram.out_of_range.
    below_bucket_min: str = "lowest"

    @property
    def bucket_label(self) -> LabelConfig:
        return self.labels[-1]

    @property
    def series_labels(self) -> tuple[LabelConfig, ...]:
        """Labels that identify a series (every label but the bucket)."""
        return self.labels[:-1]


_SCALAR_SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "s8": 1, "s16": 2, "s32": 4, "s64": 8}
_ARRAY_TYPE = re.compile(r"(char|u8)\[([0-9]{1,5})\]")
MAX_ARRAY_LENGTH = 65536


@dataclass(frozen=True)
class FieldType:
    """A parsed stream field type: ``kind`` is "uint", "int", "char" (text) or "bytes"."""

    kind: str
    size: int
    alignment: int

    @property
    def numeric(self) -> bool:
        return self.kind in ("uint", "int")


def parse_field_type(text: str) -> FieldType:
    """``"u32"`` → FieldType("uint", 4, 4); ``"char[16]"`` → FieldType("char", 16, 1).

    Raises ValueError for anything else (including zero-length arrays).
    """
    if text in _SCALAR_SIZES:
        size = _SCALAR_SIZES[text]
        return FieldType("uint" if text[0] == "u" else "int", size, size)
    match = _ARRAY_TYPE.fullmatch(text)
    if match and 0 < int(match.group(2)) <= MAX_ARRAY_LENGTH:
        return FieldType("char" if match.group(1) == "char" else "bytes", int(match.group(2)), 1)
    raise ValueError(f"unknown field type {text!r}")


FIELD_TYPE_NAMES = tuple(_SCALAR_SIZES) + ("char[N]", "u8[N]")


@dataclass(frozen=True)
class StreamFieldConfig:
    """One field of a stream record.

    ``offset`` is the byte offset in the record. Configs may leave it out; the loader then places
    the field like a C compiler would (after the previous field, aligned to its natural
    alignment), so after loading ``offset`` is always an int.
    """

    name: str
    type: str
    offset: int | None = None

    @property
    def field_type(self) -> FieldType:
        return parse_field_type(self.type)

    @property
    def size(self) -> int:
        return self.field_type.size

    @property
    def end(self) -> int:
        return (self.offset or 0) + self.size


@dataclass(frozen=True)
class StreamLabelConfig:
    """A label taken from a record field; ``name`` defaults to the field name."""

    field: str
    name: str
    decoders: tuple[DecoderConfig, ...] = ()


@dataclass(frozen=True)
class StreamCounterConfig:
    """Counts records per label set, or sums the numeric field ``value`` when set."""

    name: str
    help: str
    unit: str
    value: str | None = None
    labels: tuple[StreamLabelConfig, ...] = ()
    entry: str = ""


@dataclass(frozen=True)
class StreamHistogramConfig:
    """A histogram of the numeric field ``value`` per label set.

    ``aggregation``: "auto" (exponential unless the agent-wide default is explicit),
    "exponential" (``scale``, ``max_size``) or "explicit" (``bounds``, ascending upper bounds;
    empty: the OpenTelemetry SDK's default bounds). A config that sets ``bounds`` is "explicit".
    """

    name: str
    help: str
    unit: str
    value: str
    scale: int = 20
    max_size: int = 160
    labels: tuple[StreamLabelConfig, ...] = ()
    entry: str = ""
    aggregation: str = "auto"
    bounds: tuple[float, ...] = ()


DEFAULT_IDLE_INTERVALS = 60


@dataclass(frozen=True)
class StreamConfig:
    """Records from a RINGBUF or PERF_EVENT_ARRAY map, aggregated in user space.

    ``sample_rate`` is either a number (each record stands for that many events) or the name of a
    numeric record field carrying the rate per record.
    """

    map: str
    fields: tuple[StreamFieldConfig, ...]
    sample_rate: float | str = 1
    cardinality_limit: int | None = None
    counters: tuple[StreamCounterConfig, ...] = ()
    histograms: tuple[StreamHistogramConfig, ...] = ()
    entry: str = ""
    # A label set without records for this many collections leaves the cardinality budget.
    idle_intervals: int = DEFAULT_IDLE_INTERVALS
    # Seconds: every series restarts from zero (new start time) at the first collection this
    # long after the last restart (ebpf_exporter's perf_event_array ``flush_interval``).
    flush_interval: float | None = None

    def field(self, name: str) -> StreamFieldConfig:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def layout_end(self) -> int:
        """Bytes of a record the fields span (end of the furthest field)."""
        return max((f.end for f in self.fields), default=0)

    @property
    def record_size(self) -> int:
        """Size of the record as a C struct with these fields: ``layout_end`` rounded up to the
        largest field alignment. A record shorter than ``layout_end`` cannot be decoded."""
        align = max((f.field_type.alignment for f in self.fields), default=1)
        return -(-self.layout_end // align) * align


@dataclass(frozen=True)
class SpanConfig:
    """Spans from a RINGBUF map, one per record (ebpf_exporter's ``tracing.spans``): ``labels``
    lay out the record; see `otelbpf.traces.spans` for the labels that make the span."""

    ringbuf: str
    name: str
    service: str
    labels: tuple[LabelConfig, ...]
    config_name: str = ""  # the ebpf_exporter config, sent as attribute ebpf_exporter.config
    entry: str = ""


CGROUP_ID_MAP_TYPES = ("hash", "cgrp_storage")


@dataclass(frozen=True)
class CgroupIdMapConfig:
    """A map otelbpf keeps filled with the cgroups whose path matches ``regexps`` (ebpf_exporter's
    ``cgroup_id_map``): ``hash`` maps are keyed by cgroup id, ``cgrp_storage`` by cgroup; the
    value is 1. See `otelbpf.agent.cgroup_id_map`."""

    name: str
    type: str
    regexps: tuple[str, ...]
    entry: str = "cgroup_id_map"


@dataclass(frozen=True)
class ProgramConfig:
    """Everything one ``NAME.toml`` says about ``NAME.bpf.o``."""

    name: str
    path: Path
    object: Path
    parameters: Mapping[str, int | bool | str]
    counters: tuple[CounterConfig, ...] = ()
    histograms: tuple[HistogramConfig, ...] = ()
    streams: tuple[StreamConfig, ...] = ()
    spans: tuple[SpanConfig, ...] = ()
    cgroup_id_map: CgroupIdMapConfig | None = None
    # Groups of BPF programs that do one job, best first (fentry, kprobe, then a tracepoint):
    # the agent runs the first of each group that loads and attaches, and no other.
    alternatives: tuple[tuple[str, ...], ...] = ()

    @property
    def maps(self) -> tuple[str, ...]:
        """Every map name the config reads, in config order, without duplicates."""
        names = [m.map for m in self.counters] + [m.map for m in self.histograms]
        names += [s.map for s in self.streams] + [s.ringbuf for s in self.spans]
        return tuple(dict.fromkeys(names))


# -- loading ----------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# OpenTelemetry instrument name syntax (API spec, "Instrument name syntax").
_METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_./-]{0,254}")
_BUCKET_LABEL_SIZES = (1, 2, 4, 8)
MIN_SCALE, MAX_SCALE = -10, 20
# Bounds that keep every bucket bound and scaled count a finite float.
MAX_MULTIPLIER = 1e15
MAX_SAMPLE_RATE = 1e12
MAX_BOUNDS = 4096


KALLSYMS = Path("/proc/kallsyms")


def load_program_config(path: Path, objects_dir: Path) -> ProgramConfig:
    """Read and statically check ``path`` (``NAME.toml``); raises ``ConfigErrors`` listing every
    problem found. Checks against the object's maps happen later, in ``validate``."""
    path = Path(path)
    if path.exists():
        check_trusted(path, "program config")
    config = parse_program_config(read_toml(path), path, Path(objects_dir))
    if config.object.exists():
        check_trusted(config.object, "BPF object")
    return config


def parse_program_config(data: Mapping[str, Any] | bytes | str, path: Path,
                         objects_dir: Path, *, kallsyms: Path | None = KALLSYMS
                         ) -> ProgramConfig:
    """Like ``load_program_config`` for TOML text (or an already parsed table). ``kaddrs`` are
    looked up in ``kallsyms`` (None: only checked, no parameters set)."""
    if not isinstance(data, Mapping):
        data = parse_toml(data, path)
    errors = ErrorList(path)
    config = _ProgramReader(Table(data, errors, ""), path, objects_dir, kallsyms).read()
    errors.raise_if_any()
    return config


def resolve_kaddrs(symbols: Sequence[str], t: Table, kallsyms: Path = KALLSYMS) -> dict[str, int]:
    """``kaddrs = [sym, ...]`` → ``{"kaddr_sym": address}`` from /proc/kallsyms, read at every
    load because addresses change with each boot (any symbol type: ebpf_exporter's examples read
    data symbols)."""
    if not symbols:
        return {}
    try:
        text = kallsyms.read_text(errors="replace")
    except OSError as exc:
        t.error("kaddrs", f"cannot read {kallsyms}: {exc.strerror or exc}",
                "run otelbpf where /proc is mounted")
        return {}
    wanted = set(symbols)
    found: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in wanted and parts[2] not in found:
            found[parts[2]] = int(parts[0], 16)
    out = {}
    for symbol in symbols:
        if symbol not in found:
            t.error("kaddrs", f'kernel symbol "{symbol}" is not in {kallsyms}',
                    "check the name; data symbols need CONFIG_KALLSYMS_ALL")
        elif found[symbol] == 0:
            t.error("kaddrs", f'{kallsyms} shows address 0 for "{symbol}": kernel addresses are '
                    "hidden (kernel.kptr_restrict) from processes without CAP_SYSLOG",
                    "run otelbpf with CAP_SYSLOG, or set kernel.kptr_restrict=0")
        else:
            out[f"kaddr_{symbol}"] = found[symbol]
    return out


class _ProgramReader:
    def __init__(self, root: Table, path: Path, objects_dir: Path,
                 kallsyms: Path | None = KALLSYMS):
        self.root = root
        self.path = path
        self.objects_dir = objects_dir
        self.kallsyms = kallsyms
        self.metric_entries: dict[str, str] = {}

    def read(self) -> ProgramConfig:
        root = self.root
        name = re.sub(r"\.(toml|yaml)$", "", self.path.name)  # .yaml: an ebpf_exporter config
        object_path = self.objects_dir / f"{name}.bpf.o"
        object_text = root.string("object", "", non_empty=root.has("object"))
        if object_text:
            object_path = self.objects_dir / object_text  # absolute paths stay absolute
        parameters = self.parameters(root.table("parameters", entry="parameters"))
        parameters.update(self.kaddrs(root, parameters))
        counters = tuple(self.counter(t) for t in root.tables("counters", _entry("counters")))
        histograms = tuple(self.histogram(t)
                           for t in root.tables("histograms", _entry("histograms")))
        streams = tuple(self.stream(t) for t in root.tables("streams", _entry("streams", "map")))
        spans = tuple(self.span(t, name) for t in root.tables("spans", _entry("spans")))
        id_map = (self.cgroup_id_map(root.table("cgroup_id_map"))
                  if root.has("cgroup_id_map") else None)
        alternatives = self.alternatives(root)
        root.finish()
        if not (counters or histograms or streams or spans):
            root.error(None, "defines no metrics",
                       "add a [[counters]], [[histograms]], [[streams]] or [[spans]] entry")
        self.check_maps_used_once(counters, histograms, streams)
        return ProgramConfig(name, self.path, object_path, MappingProxyType(parameters),
                             counters, histograms, streams, spans, id_map, alternatives)

    def alternatives(self, root: Table) -> tuple[tuple[str, ...], ...]:
        value = root.raw("alternatives", [])
        fix = 'list groups of the object\'s BPF program names, best first: [["a_fentry", "a_tracepoint"]]'
        if not isinstance(value, list):
            root.error("alternatives", f"expected an array of arrays, got {describe(value)}", fix)
            return ()
        groups: list[tuple[str, ...]] = []
        seen: set[str] = set()
        for i, group in enumerate(value):
            if (not isinstance(group, list) or len(group) < 2
                    or not all(isinstance(n, str) and _IDENTIFIER.fullmatch(n) for n in group)):
                root.error(f"alternatives[{i}]", f"expected two or more BPF program names, got {describe(group)}", fix)
                continue
            again = [n for n in group if n in seen or group.count(n) > 1]
            if again:
                root.error(f"alternatives[{i}]", f'"{again[0]}" is listed twice',
                           "a BPF program belongs to one group, once")
                continue
            seen.update(group)
            groups.append(tuple(group))
        return tuple(groups)

    def kaddrs(self, root: Table, parameters: Mapping[str, Any]) -> dict[str, int]:
        symbols = root.strings("kaddrs", (), unique=True)
        for symbol in symbols:
            if not _IDENTIFIER.fullmatch(symbol):
                root.error("kaddrs", f'"{symbol}" is not a kernel symbol name',
                           "list symbols as /proc/kallsyms names them, e.g. bpf_jit_current")
                return {}
            if f"kaddr_{symbol}" in parameters:
                root.error("kaddrs", f'"{symbol}" sets kaddr_{symbol}, which [parameters] sets too',
                           f"remove kaddr_{symbol} from [parameters]")
                return {}
        return {} if self.kallsyms is None else resolve_kaddrs(symbols, root, self.kallsyms)

    # -- traces and cgroup filters --------------------------------------------------------------

    def span(self, t: Table, config_name: str) -> SpanConfig:
        ringbuf = t.string("ringbuf", non_empty=True)
        if ringbuf and not _IDENTIFIER.fullmatch(ringbuf):
            t.error("ringbuf", f'"{ringbuf}" is not a valid map name', "use the map's C identifier")
        name = t.string("name", "")
        service = t.string("service", "")
        labels = self.map_labels(t, bucket=False)
        t.finish()
        return SpanConfig(ringbuf, name, service, labels, config_name, t.entry)

    def cgroup_id_map(self, t: Table) -> CgroupIdMapConfig | None:
        name = t.string("name", non_empty=True)
        kind = t.string("type", "hash", choices=CGROUP_ID_MAP_TYPES)
        regexps = t.strings("regexps", ())
        for i, expr in enumerate(regexps):
            try:
                re.compile(expr)
            except re.error as exc:
                t.error(f"regexps[{i}]", f"invalid regexp {expr!r}: {exc}",
                        "write a regular expression matched against the cgroup's path")
        t.finish()
        return CgroupIdMapConfig(name, kind, regexps, t.entry)

    # -- parameters ---------------------------------------------------------------------------

    def parameters(self, table: Table) -> dict[str, int | bool | str]:
        out: dict[str, int | bool | str] = {}
        for key in table.data:
            value = table.raw(key)
            if not _IDENTIFIER.fullmatch(key):
                table.error(key, "is not a C identifier",
                            "use the name of a const volatile global in the BPF program")
            elif not isinstance(value, (int, bool, str)):
                table.error(key, f"expected an integer, boolean or string, got {describe(value)}")
            else:
                out[key] = value
        return out

    # -- metrics shared parts -----------------------------------------------------------------

    def metric_head(self, t: Table) -> tuple[str, str, str]:
        name = t.string("name", non_empty=True)
        if name and not _METRIC_NAME.fullmatch(name):
            t.error("name", f'"{name}" is not a valid OpenTelemetry metric name',
                    "start with a letter, then letters, digits, '_', '.', '-' or '/' "
                    "(at most 255 characters), e.g. \"bio.latency\"")
        elif name in self.metric_entries:
            t.error("name", f'"{name}" is already used by {self.metric_entries[name]}',
                    "give every metric of a program its own name")
        elif name:
            self.metric_entries[name] = t.entry
        if t.has("help") and t.has("description"):
            t.error("description", "help and description are the same setting", "keep only one")
        help_text = t.string("help", "") if t.has("help") else t.string("description", "")
        unit = t.string("unit", "")
        if len(unit) > 63 or not unit.isascii():
            t.error("unit", "must be ASCII and at most 63 characters",
                    'use a UCUM unit such as "ns", "By" or "{call}"')
            unit = ""
        return name, help_text, unit

    def map_name(self, t: Table, default: str) -> str:
        if t.has("map"):
            name = t.string("map", "", non_empty=True)
        else:
            name = default
            if default and not _IDENTIFIER.fullmatch(default):
                t.error("map", f'defaults to the metric name "{default}", which is not a map name',
                        'name the map: map = "..."')
                return ""
        if name and not _IDENTIFIER.fullmatch(name):
            t.error("map", f'"{name}" is not a valid map name', "use the map's C identifier")
        return name

    def decoders(self, t: Table) -> tuple[DecoderConfig, ...]:
        from otelbpf import decoders as registry  # the registry imports this module

        out = []
        for d in t.tables("decoders", _entry(f"{t.entry}.decoders")):
            name = d.string("name", non_empty=True)
            options = {k: freeze(d.raw(k)) for k in d.data if k != "name"}
            config = DecoderConfig(name, MappingProxyType(options))
            if not name:
                continue
            if name not in registry.names():
                d.error("name", registry.unknown_decoder_message(name).split(" (")[0],
                        (did_you_mean(name, registry.names())
                         or "known decoders: " + ", ".join(registry.names())))
                continue
            try:
                registry.build(config)
            except ValueError as exc:
                d.error(None, str(exc), f'see the "{name}" decoder in docs/configuration.md')
                continue
            out.append(config)
        return tuple(out)

    def per_cpu(self, t: Table) -> str:
        return t.string("per_cpu", "sum", choices=PER_CPU_MODES)

    def map_labels(self, t: Table, *, bucket: bool, signed_bucket: bool = False) -> tuple[LabelConfig, ...]:
        tables = t.tables("labels", _entry(f"{t.entry}.labels"), required=bucket)
        labels = []
        seen: set[str] = set()
        for i, lt in enumerate(tables):
            is_bucket = bucket and i == len(tables) - 1
            name = lt.string("name", non_empty=True)
            if name in seen:
                lt.error("name", f'label "{name}" appears twice', "rename one of them")
            seen.add(name)
            size = lt.integer("size", min=1, max=1 << 16)
            padding = lt.integer("padding", 0, min=0, max=1 << 16)
            offset = lt.integer("offset", None, min=0, max=1 << 16)
            if is_bucket and offset is not None:
                lt.error("offset", "the bucket label (the last label) is read where the other labels end",
                         "remove offset from the bucket label")
            chain = self.decoders(lt)
            if is_bucket and signed_bucket:
                self.check_exponential_bucket_label(lt, size, chain)
            elif is_bucket:
                self.check_bucket_label(lt, size, chain)
            elif not chain and lt.raw("decoders", []) == []:
                lt.error("decoders", "is required for a label",
                         'add decoders = [{ name = "uint" }] (or "string", "hex", ...)')
            lt.finish(("name", "size", "padding", "offset", "decoders"))
            labels.append(LabelConfig(name, size, padding, chain, offset))
        return tuple(labels)

    def check_bucket_label(self, lt: Table, size: int, chain: tuple[DecoderConfig, ...]) -> None:
        if size not in _BUCKET_LABEL_SIZES:
            lt.error("size", f"the bucket label (the last label) is {size} bytes",
                     "make the bucket slot a u8, u16, u32 or u64 (size 1, 2, 4 or 8)")
        if any(d.name != "uint" for d in chain):
            lt.error("decoders", "the bucket label (the last label) is read as a number",
                     'use decoders = [{ name = "uint" }] or leave decoders out')

    def check_exponential_bucket_label(self, lt: Table, size: int, chain: tuple[DecoderConfig, ...]) -> None:
        if size != 4:
            lt.error("size", f"the bucket label (the last label) is {size} bytes",
                     'bucket_type "exponential" keys buckets by a signed 32-bit index: size = 4')
        if any(d.name != "int" for d in chain):
            lt.error("decoders", "the exponential bucket index is a signed number",
                     'use decoders = [{ name = "int" }] or leave decoders out')

    # -- counters and histograms --------------------------------------------------------------

    def counter(self, t: Table) -> CounterConfig:
        name, help_text, unit = self.metric_head(t)
        map_name = self.map_name(t, name)
        per_cpu = self.per_cpu(t)
        labels = self.map_labels(t, bucket=False)
        self.check_cpu_label(t, per_cpu, labels)
        multiplier = t.number("multiplier", 1.0, min=0, max=MAX_MULTIPLIER, min_exclusive=True)
        single_key = t.boolean("single_key", False)
        if single_key and labels:
            t.error("single_key", "applies to counters without labels (a map with the one key 0)",
                    "remove single_key, or the labels")
        skip_zero = t.boolean("skip_zero", False)
        value_offset = t.integer("value_offset", 0, min=0, max=1 << 16)
        if value_offset % 8:
            t.error("value_offset", f"{value_offset} is not a multiple of 8",
                    "counts are u64: give the byte offset of a __u64 field of the map's value")
        t.finish(("help", "description"))
        return CounterConfig(name, help_text, unit, map_name, labels, per_cpu, t.entry, multiplier,
                             single_key, skip_zero, value_offset)

    def check_cpu_label(self, t: Table, per_cpu: str, labels: tuple[LabelConfig, ...]) -> None:
        if per_cpu == "label" and any(label.name == "cpu" for label in labels):
            t.error("per_cpu", '"label" adds a label named "cpu", which the key already has',
                    'rename the key label or use per_cpu = "sum"')

    def histogram(self, t: Table) -> HistogramConfig:
        name, help_text, unit = self.metric_head(t)
        map_name = self.map_name(t, name)
        bucket_type = t.string("bucket_type", choices=BUCKET_TYPES)
        fixed = bucket_type == "fixed"
        exponential = bucket_type == "exponential"
        bucket_min = bucket_max = 0
        bucket_keys: tuple[int, ...] = ()
        bucket_scale, max_size = 0, 160
        if exponential:
            bucket_scale, max_size = self.exponential_buckets(t)
        elif fixed:
            for key in ("bucket_min", "bucket_max"):
                if t.has(key):
                    t.raw(key)
                    t.error(key, 'is not used by bucket_type "fixed"', "use bucket_keys instead")
            bucket_keys = self.bucket_keys(t)
        else:
            if t.has("bucket_keys"):
                t.raw("bucket_keys")
                t.error("bucket_keys", f'is only used by bucket_type "fixed", not "{bucket_type}"',
                        "use bucket_min and bucket_max instead")
            bucket_min = t.integer("bucket_min", 0, min=0, max=255)
            bucket_max = t.integer("bucket_max", min=0, max=255)
            if bucket_min > bucket_max:
                t.error("bucket_min", f"bucket_min {bucket_min} is above bucket_max {bucket_max}",
                        "make bucket_min <= bucket_max")
        multiplier = t.number("bucket_multiplier", 1.0, min=0, max=MAX_MULTIPLIER,
                              min_exclusive=True)
        aggregation = t.string("aggregation", "auto", choices=AGGREGATIONS)
        if exponential:
            if multiplier != 1.0:
                # v·m does not fall in the bucket of v scaled: the kernel's index would be wrong.
                t.error("bucket_multiplier", 'cannot rescale bucket_type "exponential" buckets',
                        "record the value in the unit you export (e.g. ns) and remove bucket_multiplier")
            if aggregation == "explicit":
                t.error("aggregation", '"explicit" cannot be exact for bucket_type "exponential" '
                        "(its bucket bounds 2^(i/2^scale) are not exact numbers)",
                        'use bucket_type = "exp2" for explicit buckets, or leave aggregation out')
        else:
            why_not = exponential_unavailable(bucket_type, multiplier)
            if aggregation == "exponential" and why_not:
                t.error("aggregation", f'"exponential" cannot be exact here: {why_not}',
                        'use aggregation = "explicit" (or "auto"): explicit bounds equal to the slots')
        per_cpu = self.per_cpu(t)
        labels = self.map_labels(t, bucket=True, signed_bucket=exponential)
        if labels and exponential:
            self.check_cpu_label(t, per_cpu, labels[:-1])
        elif labels:
            self.check_cpu_label(t, per_cpu, labels[:-1])
            size = labels[-1].size
            # fixed slots are keyed by the bucket value (ebpf_exporter's semantics)
            slots = bucket_keys[-1] + 1 if fixed and bucket_keys else bucket_max + 1
            # The sum of observed values sits in the slot after the last bucket.
            if size in _BUCKET_LABEL_SIZES and slots >= 1 << (8 * size):
                t.error("labels", f"the {size}-byte bucket label cannot hold slot {slots} "
                        "(the slot after the last bucket holds the sum)",
                        "make the bucket label wider")
        elif t.raw("labels") == []:
            t.error("labels", "a histogram needs at least the bucket label (the last label)",
                    'add labels = [{ name = "bucket", size = 4 }]')
        below_min = t.string("below_bucket_min", "lowest", choices=BELOW_BUCKET_MIN)
        t.finish(("help", "description"))
        return HistogramConfig(name, help_text, unit, map_name, labels, bucket_type, bucket_min,
                               bucket_max, bucket_keys, multiplier, per_cpu, t.entry, aggregation,
                               bucket_scale, max_size, below_min)

    def exponential_buckets(self, t: Table) -> tuple[int, int]:
        """bucket_scale and max_size of a bucket_type "exponential" histogram."""
        for key in ("bucket_min", "bucket_max", "bucket_keys"):
            if t.has(key):
                t.raw(key)
                t.error(key, 'is not used by bucket_type "exponential"',
                        "the kernel writes OpenTelemetry bucket indexes: set bucket_scale instead")
        if not t.has("bucket_scale"):
            t.error("bucket_scale", 'bucket_type "exponential" needs the scale the program computes',
                    "add bucket_scale = 3 (the scale passed to increment_exp_histogram)")
        scale = t.integer("bucket_scale", 0, min=MIN_SCALE, max=MAX_SCALE)
        # OpenTelemetry's smallest useful max_size: two buckets still allow a downscale.
        max_size = t.integer("max_size", 160, min=2, max=16384)
        return scale, max_size

    def bucket_keys(self, t: Table) -> tuple[int, ...]:
        found = t.has("bucket_keys")
        value = t.raw("bucket_keys")
        if not found or not isinstance(value, list) or not value:
            t.error("bucket_keys", 'bucket_type "fixed" needs a non-empty array of integers',
                    "add bucket_keys = [1, 10, 100]")
            return ()
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in value):
            t.error("bucket_keys", "must hold integers only", "write bucket_keys = [1, 10, 100]")
            return ()
        if value[0] < 0:
            t.error("bucket_keys[0]", f"{value[0]} is negative",
                    "fixed slots are keyed by the bucket value, a non-negative integer")
            return ()
        for i in range(1, len(value)):
            if value[i] <= value[i - 1]:
                t.error(f"bucket_keys[{i}]", f"{value[i]} does not increase over {value[i - 1]}",
                        "list the bucket upper bounds in strictly increasing order")
                return ()
        return tuple(value)

    # -- streams ------------------------------------------------------------------------------

    def stream(self, t: Table) -> StreamConfig:
        map_name = t.string("map", non_empty=True)
        if map_name and not _IDENTIFIER.fullmatch(map_name):
            t.error("map", f'"{map_name}" is not a valid map name', "use the map's C identifier")
        fields = self.stream_fields(t)
        by_name = {f.name: f for f in fields}
        sample_rate: float | str = 1.0
        raw_rate = t.raw("sample_rate", 1)
        if isinstance(raw_rate, str):
            sample_rate = raw_rate
            self.check_numeric_field(t, "sample_rate", raw_rate, by_name)
        else:
            sample_rate = t.number("sample_rate", 1.0, min=0, max=MAX_SAMPLE_RATE,
                                   min_exclusive=True)
        limit = t.integer("cardinality_limit", None, min=1) if t.has("cardinality_limit") else None
        idle = t.integer("idle_intervals", DEFAULT_IDLE_INTERVALS, min=1)
        flush = t.duration("flush_interval", None)
        counters = tuple(self.stream_counter(c, by_name)
                         for c in t.tables("counters", _entry(f"{t.entry}.counters")))
        histograms = tuple(self.stream_histogram(h, by_name)
                           for h in t.tables("histograms", _entry(f"{t.entry}.histograms")))
        if not (counters or histograms):
            t.error(None, "defines no metrics",
                    "add a [[streams.counters]] or [[streams.histograms]]")
        t.finish()
        return StreamConfig(map_name, fields, sample_rate, limit, counters, histograms, t.entry,
                            idle_intervals=idle, flush_interval=flush)

    def stream_fields(self, t: Table) -> tuple[StreamFieldConfig, ...]:
        fields: list[StreamFieldConfig] = []
        end = 0
        for ft in t.tables("fields", _entry(f"{t.entry}.fields"), required=True):
            name = ft.string("name", non_empty=True)
            if name and not _IDENTIFIER.fullmatch(name):
                ft.error("name", f'"{name}" is not an identifier', "use the C member name")
            if any(f.name == name for f in fields):
                ft.error("name", f'field "{name}" appears twice', "rename one of them")
            type_text = ft.string("type")
            try:
                field_type = parse_field_type(type_text)
            except ValueError:
                ft.error("type", f'"{type_text}" is not a known field type',
                         "use u8, u16, u32, u64, s8, s16, s32, s64, char[N] or u8[N]")
                ft.finish(("offset",))
                continue
            if ft.has("offset"):
                offset = ft.integer("offset", min=0, max=1 << 24)
            else:
                offset = -(-end // field_type.alignment) * field_type.alignment
            ft.finish()
            for other in fields:
                other_start = other.offset or 0
                if offset < other.end and other_start < offset + field_type.size:
                    ft.error("offset", f"bytes {offset}..{offset + field_type.size - 1} overlap "
                             f'field "{other.name}" (bytes {other_start}..{other.end - 1})',
                             "fix the offsets to match the C struct")
                    break
            fields.append(StreamFieldConfig(name, type_text, offset))
            end = offset + field_type.size
        if not fields and t.has("fields"):
            t.error("fields", "is empty",
                    'describe the record: fields = [{ name = "pid", type = "u32" }]')
        return tuple(fields)

    def check_numeric_field(self, t: Table, key: str, name: str,
                            by_name: Mapping[str, StreamFieldConfig]) -> bool:
        f = by_name.get(name)
        if f is None:
            t.error(key, f'no field "{name}" in this stream',
                    did_you_mean(name, by_name) or "add it to the stream's fields")
            return False
        if not f.field_type.numeric:
            t.error(key, f'field "{name}" is {f.type}, not a number',
                    "use an integer field (u8..u64, s8..s64)")
            return False
        return True

    def stream_labels(self, t: Table, by_name: Mapping[str, StreamFieldConfig]
                      ) -> tuple[StreamLabelConfig, ...]:
        labels = []
        seen: set[str] = set()
        for lt in t.tables("labels", _entry(f"{t.entry}.labels", "field")):
            field_name = lt.string("field", non_empty=True)
            name = lt.string("name", field_name, non_empty=True)
            chain = self.decoders(lt)
            lt.finish()
            f = by_name.get(field_name)
            if field_name and f is None:
                lt.error("field", f'no field "{field_name}" in this stream',
                         did_you_mean(field_name, by_name) or "add it to the stream's fields")
                continue
            if name in seen:
                lt.error("name", f'label "{name}" appears twice', 'rename one with name = "..."')
            seen.add(name)
            if f is not None and not chain:
                chain = default_decoders(f.field_type)
            labels.append(StreamLabelConfig(field_name, name, chain))
        return tuple(labels)

    def stream_counter(self, t: Table, by_name: Mapping[str, StreamFieldConfig]
                       ) -> StreamCounterConfig:
        name, help_text, unit = self.metric_head(t)
        value = None
        if t.has("value"):
            value = t.string("value", None)
            if value is not None and not self.check_numeric_field(t, "value", value, by_name):
                value = None
        labels = self.stream_labels(t, by_name)
        t.finish(("help", "description"))
        return StreamCounterConfig(name, help_text, unit, value, labels, t.entry)

    def stream_histogram(self, t: Table, by_name: Mapping[str, StreamFieldConfig]
                         ) -> StreamHistogramConfig:
        name, help_text, unit = self.metric_head(t)
        value = t.string("value", non_empty=True)
        if value:
            self.check_numeric_field(t, "value", value, by_name)
        aggregation = t.string("aggregation", "auto", choices=AGGREGATIONS)
        bounds: tuple[float, ...] = ()
        if t.has("bounds"):
            bounds = self.bounds(t)
            if aggregation == "exponential":
                t.error("bounds", 'is only used by aggregation "explicit"',
                        'remove bounds or write aggregation = "explicit"')
            else:
                aggregation = "explicit"
        if aggregation == "explicit":
            for key in ("scale", "max_size"):
                if t.has(key):
                    t.raw(key)
                    t.error(key, 'is only used by aggregation "exponential"',
                            "remove it; explicit buckets are set with bounds = [...]")
        scale = t.integer("scale", 20, min=MIN_SCALE, max=MAX_SCALE)
        max_size = t.integer("max_size", 160, min=2, max=1 << 14)
        labels = self.stream_labels(t, by_name)
        t.finish(("help", "description"))
        return StreamHistogramConfig(name, help_text, unit, value, scale, max_size, labels, t.entry,
                                     aggregation, bounds)

    def bounds(self, t: Table) -> tuple[float, ...]:
        value = t.raw("bounds")
        example = "write bounds = [0.001, 0.01, 0.1, 1]"
        if not isinstance(value, list) or not value:
            t.error("bounds", "must be a non-empty array of numbers", example)
            return ()
        if len(value) > MAX_BOUNDS:
            t.error("bounds", f"has {len(value)} bounds", f"use at most {MAX_BOUNDS}")
            return ()
        for i, bound in enumerate(value):
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
                t.error(f"bounds[{i}]", f"expected a finite number, got {describe(bound)}", example)
                return ()
            if i and bound <= value[i - 1]:
                t.error(f"bounds[{i}]", f"{bound} does not increase over {value[i - 1]}",
                        "list the bucket upper bounds in strictly increasing order")
                return ()
        return tuple(float(b) for b in value)

    # -- whole program ------------------------------------------------------------------------

    def check_maps_used_once(self, counters, histograms, streams) -> None:
        """A stream map has one reader; it cannot also feed another stream or a map metric."""
        users: dict[str, str] = {}
        for m in (*counters, *histograms):
            users.setdefault(m.map, m.entry)
        for s in streams:
            if s.map and s.map in users:
                self.root.errors.add(s.entry, "map",
                                     f'map "{s.map}" is already read by {users[s.map]}',
                                     "each ring/perf buffer map can feed one [[streams]] entry")
            users[s.map] = s.entry


def default_decoders(field_type: FieldType) -> tuple[DecoderConfig, ...]:
    """The chain a stream label gets without ``decoders``: numbers as decimal, text up to the
    NUL, byte arrays as hex."""
    name = {"uint": "uint", "int": "int", "char": "string", "bytes": "hex"}[field_type.kind]
    return (DecoderConfig(name, MappingProxyType({})),)


def _entry(section: str, key: str = "name"):
    return lambda index, item: entry_name(section, index, item, key)
