"""ebpf_exporter YAML → ProgramConfig: the translation, its errors, and the agent-side settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelbpf.cli import main
from otelbpf.config.agent import parse_agent_config
from otelbpf.config.ebpf_exporter import (EbpfExporterConfig, go_duration,
                                          load_ebpf_exporter_config, read_ebpf_exporter_configs)
from otelbpf.errors import ConfigErrors

PERCPU_ARRAY, HASH = 6, 1

COUNTER = """
metrics:
  counters:
    - name: softirqs_total
      help: per cpu
      labels:
        - name: vec
          size: 4
          decoders:
            - name: uint
        - name: cpu
          size: 2
          decoders:
            - name: uint
"""


def write(tmp_path: Path, text: str, name: str = "demo") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def errors_of(path: Path, **kwargs) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_ebpf_exporter_config(path, map_types=kwargs.pop("map_types", {}), **kwargs)
    return [str(e) for e in info.value.errors]


def test_trailing_cpu_label_on_a_per_cpu_map_is_one_series_per_cpu(tmp_path):
    path = write(tmp_path, COUNTER)
    per_cpu = load_ebpf_exporter_config(path, map_types={"softirqs_total": PERCPU_ARRAY})
    (counter,) = per_cpu.counters
    assert counter.per_cpu == "label" and [label.name for label in counter.labels] == ["vec"]
    assert counter.name == "ebpf_exporter_softirqs_total" and counter.map == "softirqs_total"
    assert counter.entry == 'metrics.counters[0] "softirqs_total"'
    assert per_cpu.name == "demo" and per_cpu.object == tmp_path / "demo.bpf.o"
    # On a map that is not per-CPU, "cpu" is an ordinary field of the key.
    plain = load_ebpf_exporter_config(path, map_types={"softirqs_total": HASH})
    assert [label.name for label in plain.counters[0].labels] == ["vec", "cpu"]
    assert plain.counters[0].per_cpu == "sum"


def test_histograms_prefix_and_aggregation(tmp_path):
    path = write(tmp_path, """
metrics:
  histograms:
    - name: lat_seconds
      help: x
      bucket_type: fixed
      bucket_keys: [1.0, 10, 100]
      labels:
        - {name: bucket, size: 4, decoders: [{name: uint}]}
    - name: size_bytes
      help: x
      bucket_type: exp2
      bucket_max: 10
      bucket_multiplier: 0
      labels:
        - {name: bucket, size: 4, decoders: [{name: uint}]}
""")
    cfg = load_ebpf_exporter_config(path, map_types={}, prefix="ebpf_")
    fixed, exp2 = cfg.histograms
    assert fixed.name == "ebpf_lat_seconds" and fixed.bucket_keys == (1, 10, 100)
    assert exp2.bucket_multiplier == 1.0  # ebpf_exporter reads 0 as 1
    assert exp2.below_bucket_min == "drop"  # ebpf_exporter counts slots bucket_min..max only
    assert fixed.aggregation == exp2.aggregation == "explicit"
    auto = load_ebpf_exporter_config(path, map_types={}, aggregation="auto")
    assert {h.aggregation for h in auto.histograms} == {"auto"}


def test_perf_event_array_counter_is_a_stream_of_label_fields(tmp_path):
    path = write(tmp_path, """
metrics:
  counters:
    - name: oom_kills
      help: x
      perf_event_array: true
      flush_interval: 1m30s
      labels:
        - {name: cgroup, size: 8, decoders: [{name: uint}]}
        - {name: comm, size: 16, padding: 8, decoders: [{name: string}]}
        - {name: pid, size: 4, decoders: [{name: uint}]}
""")
    (stream,) = load_ebpf_exporter_config(path, map_types={}).streams
    assert stream.map == "oom_kills"
    assert [(f.name, f.type, f.offset) for f in stream.fields] == [
        ("cgroup", "u8[8]", 0), ("comm", "u8[16]", 8), ("pid", "u8[4]", 32)]
    (counter,) = stream.counters
    assert counter.name == "ebpf_exporter_oom_kills" and counter.value is None
    assert [label.decoders[0].name for label in counter.labels] == ["uint", "string", "uint"]
    assert go_duration("1m30s") == 90.0 and go_duration("250ms") == 0.25
    assert stream.flush_interval == 90.0


@pytest.mark.parametrize("flush", ["", "      flush_interval: 0\n"])
def test_perf_event_array_counter_flushes_hourly_by_default(tmp_path, flush):
    path = write(tmp_path, "metrics:\n  counters:\n    - name: c\n      help: x\n"
                 "      perf_event_array: true\n" + flush +
                 "      labels: [{name: pid, size: 4, decoders: [{name: uint}]}]\n")
    (stream,) = load_ebpf_exporter_config(path, map_types={}).streams
    assert stream.flush_interval == 3600.0


@pytest.mark.parametrize("text,expected", [
    ("metrics:\n  counters:\n    - name: x\n      helpp: a\n      labels: []\n",
     'demo.yaml: metrics.counters[0] "x": helpp: is not an ebpf_exporter config key (fix: did you mean "help"?)'),
    ("metrics:\n  counters:\n    - name: x\n      labels:\n        - {name: a, size: 4, decoders: [{name: unit}]}\n",
     'demo.yaml: metrics.counters[0] "x".labels[0] "a".decoders[0] "unit": name: unknown decoder "unit" (fix: did you mean "uint"?)'),
    ("metrics:\n  histograms:\n    - name: h\n      bucket_type: fixed\n      bucket_keys: [1, 0.5]\n      labels: [{name: b, size: 4, decoders: [{name: uint}]}]\n",
     'demo.yaml: metrics.histograms[0] "h": bucket_keys: must hold integers only'),
    ("tracing:\n  spans:\n    - name: s\n      labels: []\n",
     'demo.yaml: tracing.spans[0] "s": ringbuf: is required'),
    ("tracing:\n  spans:\n    - name: s\n      ringbuf: r\n      labels:\n        - {name: trace_id, size: 16, decoders: [{name: hexx}]}\n",
     'demo.yaml: tracing.spans[0] "s".labels[0] "trace_id".decoders[0] "hexx": name: unknown decoder "hexx" (fix: did you mean "hex"?)'),
    ("cgroup_id_map:\n  name: m\n  type: array\n  regexps: [x]\nmetrics:\n  counters:\n    - {name: c, labels: []}\n",
     'demo.yaml: cgroup_id_map: type: "array" is not one of "hash", "cgrp_storage" (fix: use one of "hash", "cgrp_storage")'),
    ("cgroup_id_map:\n  name: m\n  regexp: [x]\nmetrics:\n  counters:\n    - {name: c, labels: []}\n",
     'demo.yaml: cgroup_id_map: regexp: is not an ebpf_exporter config key (fix: did you mean "regexps"?)'),
    ("metrics:\n  counters: [\n", "demo.yaml: line 3, column 1: invalid YAML"),
    ("metrics:\n  counters:\n    - help: no name\n", "demo.yaml: metrics.counters[0]: name: is required"),
    ("metrics:\n  counters:\n    - {name: c, flush_interval: 1m, labels: []}\n",
     'demo.yaml: metrics.counters[0] "c": flush_interval: only applies to perf_event_array counters'),
])
def test_errors_name_file_entry_field_and_fix(tmp_path, text, expected):
    messages = errors_of(write(tmp_path, text))
    assert any(m.startswith(str(tmp_path / expected.split(": ", 1)[0])) and expected.split(": ", 1)[1] in m
               for m in messages), messages


def fake_kallsyms(tmp_path: Path, address: str) -> Path:
    path = tmp_path / "kallsyms"
    path.write_text(f"{address} T schedule\n{address} t other\n")
    return path


def test_kaddrs_become_parameters(tmp_path):
    path = write(tmp_path, "kaddrs: [schedule]\n" + COUNTER)
    cfg = load_ebpf_exporter_config(path, map_types={},
                                    kallsyms=fake_kallsyms(tmp_path, "ffffffff81a0b0c0"))
    assert dict(cfg.parameters) == {"kaddr_schedule": 0xffffffff81a0b0c0}


def test_kaddrs_hidden_or_missing_are_clear_errors(tmp_path):
    path = write(tmp_path, "kaddrs: [schedule, nope]\n" + COUNTER)
    messages = errors_of(path, kallsyms=fake_kallsyms(tmp_path, "0000000000000000"))
    assert any("address 0" in m and "CAP_SYSLOG" in m for m in messages), messages
    assert any('"nope" is not in' in m for m in messages), messages


def test_directory_names_programs_apart_from_native_ones(tmp_path):
    write(tmp_path, COUNTER, "softirqs")
    configs, errors = read_ebpf_exporter_configs(EbpfExporterConfig(tmp_path, ("softirqs", "gone")))
    assert list(configs) == ["ebpf_exporter-softirqs"] and configs["ebpf_exporter-softirqs"].name \
        == "ebpf_exporter-softirqs"
    assert "gone.yaml: does not exist" in str(errors["ebpf_exporter-gone"])


def test_agent_config_table(tmp_path):
    cfg = parse_agent_config('[ebpf_exporter]\ndir = "ee"\nnames = ["a", "b"]\nprefix = "x_"\n'
                             'aggregation = "auto"\n', tmp_path / "otelbpf.toml", environ={})
    assert cfg.ebpf_exporter == EbpfExporterConfig(tmp_path / "ee", ("a", "b"), "x_", "auto")
    assert parse_agent_config("", tmp_path / "otelbpf.toml", environ={}).ebpf_exporter is None
    with pytest.raises(ConfigErrors, match=r"ebpf_exporter: names\[0\]: \"a.yaml\" is not a config name"):
        parse_agent_config('[ebpf_exporter]\ndir = "ee"\nnames = ["a.yaml"]\n',
                           tmp_path / "otelbpf.toml", environ={})


def test_cli_names_need_a_directory(capsys):
    assert main(["run", "--names", "a,b"]) == 2
    assert "--names and --ebpf-exporter-prefix need --ebpf-exporter-dir" in capsys.readouterr().err


def comparable(cfg):
    """A ProgramConfig without what names its source (file, entries): the metrics it defines."""
    from dataclasses import replace

    def strip(items):
        return tuple(replace(m, entry="") for m in items)
    streams = tuple(replace(s, entry="", counters=strip(s.counters)) for s in cfg.streams)
    return (cfg.object, dict(cfg.parameters), strip(cfg.counters), strip(cfg.histograms), streams,
            strip(cfg.spans), cfg.cgroup_id_map)


CONVERTIBLE = COUNTER + """
    - name: oom_kills
      help: "quotes \\" and unicode \u00e9"
      perf_event_array: true
      labels:
        - {name: comm, size: 16, padding: 8, decoders: [{name: string}, {name: regexp, regexps: ["^(k).*"]}]}
  histograms:
    - name: lat_seconds
      help: x
      bucket_type: fixed
      bucket_keys: [1, 10, 100]
      bucket_multiplier: 0.001
      labels:
        - {name: op, size: 4, decoders: [{name: uint}, {name: static_map, static_map: {1: read, 2: write}}]}
        - {name: bucket, size: 4, decoders: [{name: uint}]}
    - name: size_bytes
      help: x
      bucket_type: exp2zero
      bucket_min: 1
      bucket_max: 30
      labels:
        - {name: cg, size: 8, decoders: [{name: cgroup}]}
        - {name: bucket, size: 4, decoders: [{name: uint}]}
"""


# What native TOML gained so that every config converts: kaddrs, [[spans]], [cgroup_id_map].
KADDRS_TRACING_CGROUPS = """
kaddrs: [schedule, other]
cgroup_id_map:
  name: cgroup_filter
  type: cgrp_storage
  regexps: ["^/sys/fs/cgroup/system.slice/.*[.]service$"]
tracing:
  spans:
    - name: exec
      ringbuf: exec_spans
      service: exec-trace
      labels:
        - {name: trace_id, size: 16, decoders: [{name: hex}]}
        - {name: span_id, size: 8, decoders: [{name: hex}]}
        - {name: comm, size: 16, decoders: [{name: string}]}
"""


@pytest.mark.parametrize("aggregation", ["explicit", "auto"])
@pytest.mark.parametrize("extra", ["", KADDRS_TRACING_CGROUPS])
def test_convert_gives_the_same_program_config(tmp_path, aggregation, extra):
    from otelbpf.config.ebpf_exporter import native_toml
    from otelbpf.config.program import parse_program_config

    path = write(tmp_path, extra + CONVERTIBLE)
    types = {"softirqs_total": PERCPU_ARRAY}
    kallsyms = fake_kallsyms(tmp_path, "ffffffff81a0b0c0")
    from_yaml = load_ebpf_exporter_config(path, map_types=types, aggregation=aggregation,
                                          kallsyms=kallsyms)
    text = native_toml(path, map_types=types, aggregation=aggregation)
    from_toml = parse_program_config(text, tmp_path / "demo.toml", tmp_path, kallsyms=kallsyms)
    assert comparable(from_toml) == comparable(from_yaml)
    if extra:
        assert 'kaddrs = ["schedule", "other"]' in text  # names: addresses change every boot
        assert dict(from_toml.parameters) == {"kaddr_schedule": 0xffffffff81a0b0c0,
                                              "kaddr_other": 0xffffffff81a0b0c0}
        assert from_toml.cgroup_id_map.type == "cgrp_storage" and from_toml.spans[0].ringbuf \
            == "exec_spans"
        # The TOML looks addresses up again at each load, as the YAML does.
        later = fake_kallsyms(tmp_path, "ffffffff82000000")
        assert parse_program_config(text, tmp_path / "demo.toml", tmp_path, kallsyms=later) \
            .parameters["kaddr_schedule"] == 0xffffffff82000000


def test_tracing_only_config_converts(tmp_path):
    from otelbpf.config.ebpf_exporter import native_toml
    from otelbpf.config.program import parse_program_config

    path = write(tmp_path, "tracing:" + KADDRS_TRACING_CGROUPS.split("tracing:")[1])
    from_yaml = load_ebpf_exporter_config(path, map_types={})
    from_toml = parse_program_config(native_toml(path, map_types={}), tmp_path / "demo.toml",
                                     tmp_path)
    assert comparable(from_toml) == comparable(from_yaml) and len(from_toml.spans) == 1


def test_convert_command_writes_a_loadable_file(tmp_path, capsys):
    from otelbpf.config.program import load_program_config

    path = write(tmp_path, COUNTER, "softirqs")
    out = tmp_path / "softirqs.toml"
    assert main(["convert", str(path), "-o", str(out)]) == 0
    cfg = load_program_config(out, tmp_path)
    assert cfg.object == tmp_path / "softirqs.bpf.o" and 'object = "softirqs.bpf.o"' in out.read_text()
    assert cfg.counters[0].name == "ebpf_exporter_softirqs_total"
    # kaddrs convert as names without reading /proc/kallsyms (looked up when the TOML loads).
    write(tmp_path, "kaddrs: [no_such_symbol_here]\n" + COUNTER, "withkaddrs")
    assert main(["convert", str(tmp_path / "withkaddrs.yaml")]) == 0
    assert 'kaddrs = ["no_such_symbol_here"]' in capsys.readouterr().out


def test_tracing_spans_become_span_configs(tmp_path):
    path = write(tmp_path, """
tracing:
  spans:
    - name: exec
      ringbuf: exec_spans
      service: exec-trace
      labels:
        - {name: trace_id, size: 16, decoders: [{name: hex}]}
        - {name: span_id, size: 8, decoders: [{name: hex}]}
        - {name: comm, size: 16, decoders: [{name: string}]}
""")
    cfg = load_ebpf_exporter_config(path, map_types={})
    (span,) = cfg.spans
    assert (span.ringbuf, span.name, span.service, span.config_name) == (
        "exec_spans", "exec", "exec-trace", "demo")
    assert [(label.name, label.size) for label in span.labels] == [
        ("trace_id", 16), ("span_id", 8), ("comm", 16)]
    assert cfg.maps == ("exec_spans",) and cfg.counters == ()
    assert span.entry == 'tracing.spans[0] "exec"'


def test_native_kaddrs_errors_name_file_field_and_fix(tmp_path):
    from otelbpf.config.program import parse_program_config

    kallsyms = fake_kallsyms(tmp_path, "ffffffff81a0b0c0")
    counter = '\n[[counters]]\nname = "c"\n'
    with pytest.raises(ConfigErrors) as info:
        parse_program_config('kaddrs = ["schedule"]\n[parameters]\nkaddr_schedule = 1\n' + counter,
                             tmp_path / "p.toml", tmp_path, kallsyms=kallsyms)
    assert str(info.value.errors[0]).endswith(
        'p.toml: kaddrs: "schedule" sets kaddr_schedule, which [parameters] sets too '
        "(fix: remove kaddr_schedule from [parameters])")
    with pytest.raises(ConfigErrors, match=r'p.toml: kaddrs: kernel symbol "nope" is not in .*'
                                           r"\(fix: check the name"):
        parse_program_config('kaddrs = ["nope"]\n' + counter, tmp_path / "p.toml", tmp_path,
                             kallsyms=kallsyms)


UNDECODABLE = """
metrics:
  counters:
    - name: kept_total
      help: x
      labels:
        - {name: pid, size: 4, decoders: [{name: uint}]}
    - name: no_decoders_total
      help: x
      labels:
        - {name: pid, size: 4}
    - name: empty_decoders_total
      help: x
      perf_event_array: true
      labels:
        - {name: pid, size: 4, decoders: []}
  histograms:
    - name: bucket_without_decoders
      help: x
      bucket_type: exp2
      bucket_max: 4
      labels:
        - {name: bucket, size: 4}
tracing:
  spans:
    - ringbuf: spans
      labels:
        - {name: span_id, size: 8}
"""


def test_labels_without_decoders_leave_their_metric_out_with_a_warning(tmp_path, caplog):
    """ebpf_exporter loads such a config, but a label without decoders fails every key or
    record, so those metrics and spans never have a value: the program runs with the others."""
    from otelbpf.config.ebpf_exporter import native_toml
    from otelbpf.config.program import parse_program_config

    path = write(tmp_path, UNDECODABLE)
    cfg = load_ebpf_exporter_config(path, map_types={})
    assert [c.map for c in cfg.counters] == ["kept_total"]
    assert (cfg.histograms, cfg.streams, cfg.spans) == ((), (), ())
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 4 and warnings[0].endswith(
        'demo.yaml: metrics.counters[1] "no_decoders_total".labels[0] "pid": decoders: is empty: '
        "ebpf_exporter cannot decode this label and exports nothing for this metric, so otelbpf "
        "leaves the metric out (fix: add decoders: [{name: uint}] (or string, hex, ...))")
    assert any('tracing.spans[0].labels[0] "span_id": decoders:' in w and "span out" in w
               for w in warnings)
    text = native_toml(path, map_types={})
    assert text.count("# Left out: ") == 4
    from_toml = parse_program_config(text, tmp_path / "demo.toml", tmp_path)
    assert comparable(from_toml) == comparable(cfg)


def test_a_config_with_only_undecodable_metrics_is_an_error(tmp_path):
    path = write(tmp_path, "metrics:\n  counters:\n    - name: c\n      help: x\n"
                           "      labels: [{name: pid, size: 4}]\n")
    assert errors_of(path) == [
        f'{path}: metrics.counters[0] "c".labels[0] "pid": decoders: is empty: ebpf_exporter '
        "cannot decode this label and exports nothing for this metric, so otelbpf leaves the "
        "metric out (fix: add decoders: [{name: uint}] (or string, hex, ...))"]


def test_label_less_counters_read_the_single_key_zero(tmp_path):
    """ebpf_exporter reads a map without labels (or a per-CPU one whose only label is cpu) as
    the one u32 key 0; native TOML keeps summing every key unless it says single_key."""
    from otelbpf.config.ebpf_exporter import native_toml
    from otelbpf.config.program import parse_program_config

    path = write(tmp_path, """
metrics:
  counters:
    - {name: total, help: x}
    - name: per_cpu_total
      help: x
      labels: [{name: cpu, size: 2, decoders: [{name: uint}]}]
""")
    types = {"per_cpu_total": PERCPU_ARRAY}
    cfg = load_ebpf_exporter_config(path, map_types=types)
    assert [(c.single_key, c.per_cpu, c.labels) for c in cfg.counters] == [
        (True, "sum", ()), (True, "label", ())]
    from_toml = parse_program_config(native_toml(path, map_types=types), tmp_path / "demo.toml",
                                     tmp_path)
    assert comparable(from_toml) == comparable(cfg)
    native = parse_program_config('[[counters]]\nname = "total"\n', tmp_path / "n.toml", tmp_path)
    assert native.counters[0].single_key is False
    with pytest.raises(ConfigErrors, match=r'counters\[0\] "c": single_key: applies to counters '
                                           r"without labels"):
        parse_program_config('[[counters]]\nname = "c"\nsingle_key = true\nlabels = [{ name = "a", '
                             'size = 4, decoders = [{ name = "uint" }] }]\n', tmp_path / "n.toml",
                             tmp_path)


def test_an_unknown_cgroup_id_map_key_is_reported_once(tmp_path):
    path = write(tmp_path, "cgroup_id_map:\n  name: m\n  regexp: [x]\n"
                           "metrics:\n  counters:\n    - {name: c, help: x}\n")
    assert [m.split(": ", 1)[1] for m in errors_of(path)] == [
        'cgroup_id_map: regexp: is not an ebpf_exporter config key (fix: did you mean "regexps"?)']
