"""cloudflare/ebpf_exporter configs (``NAME.yaml`` next to ``NAME.bpf.o``) → `ProgramConfig`.

The YAML is rewritten into the table a native ``NAME.toml`` would hold and read by the native
reader (`parse_program_config`), so both formats share every check and everything downstream.
What ebpf_exporter does differently from otelbpf's defaults is spelled out in that table:

- metric names get a prefix (``ebpf_exporter_`` by default) and the map keeps the YAML name, so a
  Prometheus-style backend stores ``ebpf_exporter_<name>`` as ebpf_exporter serves it;
- a per-CPU map whose last label is ``cpu`` keeps one series per CPU (``per_cpu = "label"``),
  otherwise the CPUs are summed;
- ``perf_event_array`` counters become a stream counting records by their label fields, whose
  series restart every ``flush_interval`` (default one hour);
- ``static_map`` labels unknown values ``unknown:<value>`` (unless ``allow_unknown``), ``regexp``
  keeps what matched, ``cgroup`` gives the absolute path or ``unknown_cgroup_id:<id>``;
- ``kaddrs``, ``tracing.spans`` and ``cgroup_id_map`` are native keys too (``kaddrs``,
  ``[[spans]]``, ``[cgroup_id_map]``), so ``otelbpf convert`` writes every config.

Unknown keys are errors naming the config, never silently dropped. Errors name the YAML's own
entries (``metrics.counters[0] "name"``).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from otelbpf.aggregate.buckets import AGGREGATIONS
from otelbpf.config.program import KALLSYMS, ProgramConfig, parse_program_config
from otelbpf.config.tables import ErrorList, Table, describe, did_you_mean
from otelbpf.errors import ConfigError, ConfigErrors, OtelbpfError

_log = logging.getLogger(__name__)

DEFAULT_PREFIX = "ebpf_exporter_"
DEFAULT_AGGREGATION = "explicit"
DEFAULT_FLUSH_INTERVAL = 3600.0  # seconds: ebpf_exporter restarts perf_event_array counters hourly
PERCPU_MAP_TYPES = frozenset({5, 6, 10})  # PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH

_TOP_KEYS = ("metrics", "tracing", "kaddrs", "cgroup_id_map")
_COUNTER_KEYS = ("name", "help", "perf_event_array", "flush_interval", "labels")
_HISTOGRAM_KEYS = ("name", "help", "bucket_type", "bucket_multiplier", "bucket_min", "bucket_max",
                   "bucket_keys", "labels")
_LABEL_KEYS = ("name", "size", "padding", "decoders")
_DECODER_KEYS = ("name", "static_map", "regexps", "allow_unknown")
_CGROUP_ID_MAP_KEYS = ("name", "type", "regexps")
_SPAN_KEYS = ("ringbuf", "name", "service", "labels")
_TRACING_KEYS = ("spans",)
_SOURCES = ("counters", "histograms", "streams", "spans")


def yaml_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}.yaml"


def load_ebpf_exporter_config(path: Path, *, prefix: str = DEFAULT_PREFIX,
                              aggregation: str = DEFAULT_AGGREGATION,
                              map_types: Mapping[str, int] | None = None,
                              kallsyms: Path = KALLSYMS) -> ProgramConfig:
    """Read ``DIR/NAME.yaml`` as ebpf_exporter would (its object is ``DIR/NAME.bpf.o``).

    Histograms get ``aggregation`` (default "explicit": ``le`` bounds equal to ebpf_exporter's,
    so existing PromQL keeps working; "auto" sends exponential histograms where exact).

    ``map_types`` (map name → kernel map type) decides whether a trailing ``cpu`` label is the
    CPU of a per-CPU map; without it they are read from the object's ELF when it exists.
    ``kaddrs`` are looked up in ``kallsyms``. Raises ``ConfigErrors`` listing every problem.
    """
    path = Path(path)
    data = read_yaml(path)
    if map_types is None:
        map_types = object_map_types(path.with_name(path.name.removesuffix(".yaml") + ".bpf.o"))
    table, entries, errors, left_out = translate(data, path, prefix=prefix, map_types=map_types)
    for histogram in table.get("histograms", ()):
        histogram["aggregation"] = aggregation
    if left_out and not any(table.get(k) for k in _SOURCES):
        errors.raise_if_any()  # translate made them errors: nothing is left to run
    for problem in left_out:
        _log.warning("%s", problem)
    config = None
    try:
        config = parse_program_config(table, path, path.parent, kallsyms=kallsyms)
    except ConfigErrors as exc:
        errors.extend(replace(e, entry=_yaml_entry(e.entry, entries)) for e in exc.errors)
    errors.raise_if_any()
    return _with_yaml_entries(config, entries)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigErrors([ConfigError(path, None, None,
                                        f"cannot read the file: {exc.strerror or exc}",
                                        "check the path and its permissions")]) from None
    except UnicodeDecodeError:
        raise ConfigErrors([ConfigError(path, None, None, "the file is not valid UTF-8",
                                        "save the file as UTF-8")]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        entry = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigErrors([ConfigError(path, entry, None, f"invalid YAML: {problem}",
                                        "fix the YAML syntax at that position")]) from None


def object_map_types(object_path: Path) -> dict[str, int]:
    """Map name → type from the object's ELF (nothing is loaded); {} when it cannot be opened
    (loading the program reports that later, with its own message)."""
    from otelbpf.kernel.object import BpfObject  # libbpf only when a real object is read

    if not object_path.is_file():
        return {}
    try:
        with BpfObject.open(object_path) as obj:
            return {name: int(m.type) for name, m in obj.maps.items()}
    except Exception:  # noqa: BLE001 - any open failure is reported when the program loads
        return {}


# -- YAML → native table ------------------------------------------------------------------------

def translate(data: Any, path: Path, *, prefix: str, map_types: Mapping[str, int]
              ) -> tuple[dict[str, Any], dict[str, str], ErrorList, list[ConfigError]]:
    """The native program table for an ebpf_exporter config, the native entry → YAML entry
    names, the problems only the YAML shows (unknown keys, unsupported features), and the
    metrics and spans left out because ebpf_exporter cannot decode their labels."""
    errors = ErrorList(path)
    translator = _Translator(errors, prefix, map_types)
    table = translator.program(data, path)
    if translator.left_out and not any(table.get(k) for k in _SOURCES):
        # Nothing would be left: the config is an error, not a program that exports nothing.
        errors.extend(translator.left_out)
    return table, translator.entries, errors, translator.left_out


class _Translator:
    def __init__(self, errors: ErrorList, prefix: str, map_types: Mapping[str, int]):
        self.errors = errors
        self.prefix = prefix
        self.map_types = map_types
        self.entries: dict[str, str] = {}
        self.left_out: list[ConfigError] = []

    def known_keys(self, data: Mapping, allowed: tuple[str, ...], entry: str | None) -> None:
        for key in data:
            if key not in allowed:
                self.errors.add(entry, str(key), "is not an ebpf_exporter config key",
                                did_you_mean(str(key), allowed)
                                or "known keys: " + ", ".join(allowed))

    def mapping(self, value: Any, entry: str | None, field: str | None) -> Mapping:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.errors.add(entry, field, f"expected a mapping, got {describe(value)}",
                            "indent the keys below it")
            return {}
        return value

    def sequence(self, value: Any, entry: str | None, field: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.errors.add(entry, field, f"expected a list, got {describe(value)}",
                            "write each item on its own line starting with '- '")
            return []
        return value

    def program(self, data: Any, path: Path) -> dict[str, Any]:
        root = self.mapping(data, None, None)
        self.known_keys(root, _TOP_KEYS, None)
        metrics = self.mapping(root.get("metrics"), None, "metrics")
        self.known_keys(metrics, ("counters", "histograms"), "metrics")
        table: dict[str, Any] = {"object": str(path.with_name(path.name[:-len(".yaml")]
                                                              + ".bpf.o"))}
        counters, streams, histograms = [], [], []
        for i, item in enumerate(self.sequence(metrics.get("counters"), "metrics", "counters")):
            counter = self.mapping(item, f"metrics.counters[{i}]", None)
            entry = _entry("metrics.counters", i, counter)
            self.known_keys(counter, _COUNTER_KEYS, entry)
            if "flush_interval" in counter and not counter.get("perf_event_array"):
                self.errors.add(entry, "flush_interval", "only applies to perf_event_array "
                                "counters", "remove flush_interval")
            if not self.decodable(counter, entry, "metric"):
                continue
            if counter.get("perf_event_array"):
                streams.append(self.perf_event_counter(counter, entry, len(streams)))
            else:
                native = self.map_metric(counter, entry, f"counters[{len(counters)}]")
                if not native["labels"]:
                    # ebpf_exporter reads a label-less map as the one u32 key 0.
                    native["single_key"] = True
                counters.append(native)
        for i, item in enumerate(self.sequence(metrics.get("histograms"), "metrics",
                                               "histograms")):
            histogram = self.mapping(item, f"metrics.histograms[{i}]", None)
            entry = _entry("metrics.histograms", i, histogram)
            self.known_keys(histogram, _HISTOGRAM_KEYS, entry)
            if not self.decodable(histogram, entry, "metric"):
                continue
            native = self.map_metric(histogram, entry, f"histograms[{len(histograms)}]")
            native.update(self.buckets(histogram, entry))
            histograms.append(native)
        for key, items in (("counters", counters), ("histograms", histograms),
                           ("streams", streams), ("spans", self.spans(root))):
            if items:
                table[key] = items
        if root.get("kaddrs"):
            table["kaddrs"] = root["kaddrs"]
        if root.get("cgroup_id_map"):
            id_map = self.mapping(root["cgroup_id_map"], None, "cgroup_id_map")
            self.known_keys(id_map, _CGROUP_ID_MAP_KEYS, "cgroup_id_map")
            table["cgroup_id_map"] = {k: v for k, v in id_map.items() if k in _CGROUP_ID_MAP_KEYS}
        return table

    def spans(self, root: Mapping) -> list[dict[str, Any]]:
        """``tracing.spans`` → native ``[[spans]]`` (OTLP traces, see `otelbpf.traces.spans`)."""
        tracing = self.mapping(root.get("tracing"), None, "tracing")
        self.known_keys(tracing, _TRACING_KEYS, "tracing")
        out = []
        for i, item in enumerate(self.sequence(tracing.get("spans"), "tracing", "spans")):
            span = self.mapping(item, f"tracing.spans[{i}]", None)
            entry = _entry("tracing.spans", i, span)
            self.known_keys(span, _SPAN_KEYS, entry)
            if not self.decodable(span, entry, "span"):
                continue
            native = {k: span[k] for k in ("ringbuf", "name", "service") if k in span}
            native["labels"] = [self.label(x, f"{entry}.labels[{j}]") for j, x in
                                enumerate(self.sequence(span.get("labels"), entry, "labels"))]
            self.entries[_entry("spans", len(out), span)] = entry
            out.append(native)
        return out

    def decodable(self, item: Mapping, entry: str, what: str) -> bool:
        """ebpf_exporter decodes a label only through its decoders: a label without any fails
        every key (or record), so the metric or span never has a value while the rest of the
        config runs. The same here: it is left out, with a warning saying so."""
        labels = item.get("labels")
        for j, label in enumerate(labels if isinstance(labels, list) else ()):
            if isinstance(label, Mapping) and not label.get("decoders"):
                self.left_out.append(ConfigError(
                    self.errors.path, _entry(f"{entry}.labels", j, label), "decoders",
                    f"is empty: ebpf_exporter cannot decode this label and exports nothing for "
                    f"this {what}, so otelbpf leaves the {what} out",
                    "add decoders: [{name: uint}] (or string, hex, ...)"))
                return False
        return True

    def metric_name(self, metric: Mapping, entry: str) -> str:
        name = metric.get("name")
        if not isinstance(name, str) or not name:
            self.errors.add(entry, "name", "is required (the name of the metric and its map)",
                            "add name: <map name>")
            return ""
        return name

    def map_metric(self, metric: Mapping, entry: str, native_entry: str) -> dict[str, Any]:
        name = self.metric_name(metric, entry)
        labels = [self.label(x, f"{entry}.labels[{j}]")
                  for j, x in enumerate(self.sequence(metric.get("labels"), entry, "labels"))]
        native: dict[str, Any] = {"name": self.prefix + name, "map": name, "labels": labels}
        if isinstance(metric.get("help"), str):
            native["help"] = metric["help"]
        # ebpf_exporter appends the CPU to each per-CPU key when the last label is "cpu".
        if (labels and labels[-1].get("name") == "cpu"
                and self.map_types.get(name) in PERCPU_MAP_TYPES):
            labels.pop()
            native["per_cpu"] = "label"
        self.entries[f'{native_entry} "{self.prefix + name}"'] = entry
        return native

    def label(self, item: Any, entry: str) -> dict[str, Any]:
        label = self.mapping(item, entry, None)
        self.known_keys(label, _LABEL_KEYS, entry)
        native = {k: label[k] for k in ("name", "size", "padding") if k in label}
        if "decoders" in label:
            native["decoders"] = [
                self.decoder(d, f"{entry}.decoders[{k}]")
                for k, d in enumerate(self.sequence(label["decoders"], entry, "decoders"))]
        return native

    def decoder(self, item: Any, entry: str) -> dict[str, Any]:
        decoder = self.mapping(item, entry, None)
        self.known_keys(decoder, _DECODER_KEYS, entry)
        return native_decoder(decoder)

    def buckets(self, histogram: Mapping, entry: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "bucket_type" in histogram:
            out["bucket_type"] = histogram["bucket_type"]
        if histogram.get("bucket_type") == "fixed":
            keys = self.sequence(histogram.get("bucket_keys"), entry, "bucket_keys")
            out["bucket_keys"] = [_integral(k) for k in keys]
        else:
            for key in ("bucket_min", "bucket_max"):
                if key in histogram:
                    out[key] = histogram[key]
            out["below_bucket_min"] = "drop"  # ebpf_exporter counts slots min..max only
            if "bucket_keys" in histogram:
                out["bucket_keys"] = histogram["bucket_keys"]
        # ebpf_exporter reads a missing (or zero) multiplier as 1.
        multiplier = histogram.get("bucket_multiplier")
        if multiplier not in (None, 0):
            out["bucket_multiplier"] = multiplier
        return out

    def perf_event_counter(self, counter: Mapping, entry: str, index: int) -> dict[str, Any]:
        """Each record of the perf buffer counts once for the labels its bytes decode to."""
        name = self.metric_name(counter, entry)
        flush_interval = DEFAULT_FLUSH_INTERVAL
        if "flush_interval" in counter:
            try:
                # ebpf_exporter reads a missing or zero interval as one hour.
                flush_interval = go_duration(counter["flush_interval"]) or DEFAULT_FLUSH_INTERVAL
            except ValueError as exc:
                self.errors.add(entry, "flush_interval", str(exc), 'write it like "1m" or "30s"')
        fields, labels, offset = [], [], 0
        for j, item in enumerate(self.sequence(counter.get("labels"), entry, "labels")):
            label = self.label(item, f"{entry}.labels[{j}]")
            size, padding = label.get("size"), label.get("padding", 0)
            if not (isinstance(size, int) and size > 0 and isinstance(padding, int)
                    and padding >= 0):
                self.errors.add(f"{entry}.labels[{j}]", "size",
                                "needs a positive size and a non-negative padding",
                                "set size: <bytes of this field>")
                continue
            field_name = str(label.get("name", ""))
            fields.append({"name": field_name, "type": f"u8[{size}]", "offset": offset})
            labels.append({"field": field_name, "name": field_name,
                           "decoders": label.get("decoders", [])})
            offset += size + padding
        native_counter: dict[str, Any] = {"name": self.prefix + name, "labels": labels}
        if isinstance(counter.get("help"), str):
            native_counter["help"] = counter["help"]
        self.entries[f'streams[{index}] "{name}"'] = entry
        return {"map": name, "fields": fields, "flush_interval": flush_interval,
                "counters": [native_counter]}


def native_decoder(decoder: Mapping) -> dict[str, Any]:
    """One ebpf_exporter decoder entry → the native decoder table with its behaviour."""
    name = decoder.get("name")
    out: dict[str, Any] = {"name": name}
    if name == "static_map":
        table = decoder.get("static_map") or {}
        if isinstance(table, Mapping):
            # YAML reads `1: read` as an integer key; ebpf_exporter compares text.
            out["static_map"] = {_text(k): _text(v) for k, v in table.items()}
        else:
            out["static_map"] = table
        if decoder.get("allow_unknown"):
            out["allow_unknown"] = True
        else:
            out["unknown_prefix"] = "unknown:"
    elif name == "regexp":
        out["regexps"] = decoder.get("regexps")
        out["value"] = "match"
    elif name == "cgroup":
        out.update(path="absolute", unknown_prefix="unknown_cgroup_id:")
    elif name == "majorminor":
        out.update(encoding="userspace", unknown_prefix="unknown:")
    elif name == "errno":
        # ebpf_exporter names positive numbers only: -22 read as u32 is unknown:4294967274.
        out.update(unknown_prefix="unknown:", negative=False)
    elif name == "ifname":
        out["unknown_prefix"] = "unknown:"
    else:
        out.update({k: v for k, v in decoder.items() if k != "name"})
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _integral(value: Any) -> Any:
    """ebpf_exporter's bucket keys are floats; a whole number is the integer slot key."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _entry(section: str, index: int, item: Mapping) -> str:
    name = item.get("name")
    return f'{section}[{index}] "{name}"' if isinstance(name, str) and name else \
        f"{section}[{index}]"


def _yaml_entry(entry: str | None, entries: Mapping[str, str]) -> str | None:
    if entry is None:
        return None
    for native, yaml_entry in sorted(entries.items(), key=lambda kv: -len(kv[0])):
        if entry == native or entry.startswith(native + "."):
            rest = entry[len(native):]
            # a perf_event_array counter is one stream holding one counter: name it once
            rest = re.sub(r'^\.counters\[0\] "[^"]*"', "", rest)
            return yaml_entry + rest
    return entry


def _with_yaml_entries(config: ProgramConfig, entries: Mapping[str, str]) -> ProgramConfig:
    """Metric configs carry their YAML entry, so later errors (object checks) name it."""
    def fix(items):
        return tuple(replace(m, entry=_yaml_entry(m.entry, entries)) for m in items)
    streams = tuple(replace(s, counters=fix(s.counters)) for s in fix(config.streams))
    return replace(config, counters=fix(config.counters), histograms=fix(config.histograms),
                   streams=streams, spans=fix(config.spans))


_GO_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(value: Any) -> float:
    """A Go ``time.Duration`` as YAML holds it ("1m30s", or a number of nanoseconds) → seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value * 1e-9
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a duration, got {describe(value)}")
    pos, seconds = 0, 0.0
    for match in _GO_DURATION.finditer(value):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) and value != "0":
        raise ValueError(f'cannot read "{value}" as a duration')
    return seconds


# -- running a directory of them --------------------------------------------------------------

# Programs from YAML are named apart from native ones (a checkout's conf.d has a "syscalls" of
# its own); bpffs forbids '.' in pin names, hence '-'.
PROGRAM_PREFIX = "ebpf_exporter-"


@dataclass(frozen=True)
class EbpfExporterConfig:
    """``[ebpf_exporter]`` in the agent config, or ``run --ebpf-exporter-dir``: which configs."""

    dir: Path
    names: tuple[str, ...] | None = None  # None: every NAME.yaml in dir
    prefix: str = DEFAULT_PREFIX
    aggregation: str = DEFAULT_AGGREGATION

    def paths(self) -> list[Path]:
        if self.names is None:
            return sorted(self.dir.glob("*.yaml"))
        return [yaml_path(self.dir, name) for name in self.names]


def read_ebpf_exporter_table(t: Table, base: Path) -> EbpfExporterConfig | None:
    """The agent config's ``[ebpf_exporter]`` table (None when absent)."""
    if not t.data:
        t.finish()
        return None
    directory = Path(os.path.normpath(base / t.string("dir", non_empty=True)))
    names = None
    if t.has("names"):
        names = t.strings("names", (), unique=True)
        for i, name in enumerate(names):
            if not name or "/" in name or name.endswith(".yaml") or name.startswith("."):
                t.error(f"names[{i}]", f'"{name}" is not a config name',
                        'give the NAME of dir/NAME.yaml, e.g. "biolatency"')
    prefix = t.string("prefix", DEFAULT_PREFIX)
    aggregation = t.string("aggregation", DEFAULT_AGGREGATION, choices=AGGREGATIONS)
    t.finish()
    return EbpfExporterConfig(directory, names, prefix, aggregation)


def parse_names(text: str) -> tuple[str, ...]:
    """``--names a,b,c`` → ("a", "b", "c")."""
    return tuple(n.strip() for n in text.split(",") if n.strip())


def read_ebpf_exporter_configs(cfg: EbpfExporterConfig
                               ) -> tuple[dict[str, ProgramConfig], dict[str, OtelbpfError]]:
    """Every named config of ``cfg.dir`` as a program named ``ebpf_exporter-NAME``; a config
    that cannot be read is an error of that program only."""
    configs: dict[str, ProgramConfig] = {}
    errors: dict[str, OtelbpfError] = {}
    for path in cfg.paths():
        name = PROGRAM_PREFIX + path.name.removesuffix(".yaml")
        if not path.is_file():
            errors[name] = ConfigError(path, None, None, "does not exist",
                                       f"put {path.name} (and its .bpf.o) in {cfg.dir} or "
                                       f"remove {path.stem!r} from the names")
            continue
        try:
            config = load_ebpf_exporter_config(path, prefix=cfg.prefix,
                                               aggregation=cfg.aggregation)
            configs[name] = replace(config, name=name)
        except OtelbpfError as exc:
            errors[name] = exc
    return configs, errors


# -- convert ------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def native_toml(path: Path, *, prefix: str = DEFAULT_PREFIX,
                aggregation: str = DEFAULT_AGGREGATION, object_path: str | None = None,
                map_types: Mapping[str, int] | None = None) -> str:
    """The native ``NAME.toml`` equivalent to ebpf_exporter's ``path`` (``otelbpf convert``).

    The text is checked by loading it back: it must give the same metrics as the YAML. ``kaddrs``
    stay symbol names, looked up in /proc/kallsyms at every load of the TOML as of the YAML.
    """
    path = Path(path)
    data = read_yaml(path)
    if map_types is None:
        map_types = object_map_types(path.with_name(path.name.removesuffix(".yaml") + ".bpf.o"))
    table, entries, errors, left_out = translate(data, path, prefix=prefix, map_types=map_types)
    errors.raise_if_any()
    for histogram in table.get("histograms", ()):
        histogram["aggregation"] = aggregation
    table["object"] = object_path or table["object"]
    lines = [f"# Converted from {path.name} (cloudflare/ebpf_exporter format) by otelbpf convert."]
    lines += [f"# Left out: {problem}" for problem in left_out]
    for problem in left_out:
        _log.warning("%s", problem)
    lines.append(f"object = {_toml_value(table['object'])}")
    if "kaddrs" in table:
        lines.append(f"kaddrs = {_toml_value(table['kaddrs'])}")
    for section in ("counters", "histograms", "spans"):
        for item in table.get(section, ()):
            lines += ["", f"[[{section}]]"] + _toml_pairs(item)
    for stream in table.get("streams", ()):
        counters = stream.pop("counters")
        lines += ["", "[[streams]]"] + _toml_pairs(stream)
        for counter in counters:
            lines += ["", "[[streams.counters]]"] + _toml_pairs(counter)
    if "cgroup_id_map" in table:
        lines += ["", "[cgroup_id_map]"] + _toml_pairs(table["cgroup_id_map"])
    return "\n".join(lines) + "\n"


def _toml_pairs(table: Mapping[str, Any]) -> list[str]:
    out = []
    for key, value in table.items():
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            out.append(f"{_toml_key(key)} = [")
            out += [f"  {_toml_value(v)}," for v in value]
            out.append("]")
        else:
            out.append(f"{_toml_key(key)} = {_toml_value(value)}")
    return out


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    # JSON's string escapes (\" \\ \n \uXXXX) are all valid in TOML basic strings.
    import json

    return json.dumps(text, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ValueError(f"cannot write {describe(value)} as TOML")
