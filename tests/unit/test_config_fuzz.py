"""Fuzzing the config loaders: any input either loads or raises ConfigErrors, nothing else.

Three generators: arbitrary text, structured TOML values built from the real key names (to get
past the type checks into the deeper validation), and mutations of valid example files.
Inputs that once broke the loaders live in ``regressions/config-*.toml`` and replay first.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otelbpf.config.agent import parse_agent_config
from otelbpf.config.program import parse_program_config
from otelbpf.errors import ConfigError, ConfigErrors

HERE = Path(__file__).parent
REGRESSIONS = HERE / "regressions"
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

PROGRAM_KEYS = [
    "object", "parameters", "counters", "histograms", "streams", "name", "help", "description",
    "unit", "map", "per_cpu", "labels", "size", "padding", "decoders", "bucket_type", "bucket_min",
    "bucket_max", "bucket_keys", "bucket_multiplier", "fields", "type", "offset", "sample_rate",
    "cardinality_limit", "idle_intervals", "field", "value", "scale", "max_size", "static_map", "allow_unknown",
    "regexps", "arch",
]
AGENT_KEYS = [
    "agent", "interval", "programs_dir", "objects_dir", "programs", "export", "protocol",
    "endpoint", "temporality", "headers", "compression", "timeout", "insecure", "certificate",
    "client_certificate", "client_key", "max_backoff", "resource", "state",
    "pin_dir", "state_dir", "limits", "cardinality", "label_cache", "builtin", "map_pressure",
    "program_stats", "enabled", "warning", "critical", "include", "exclude",
]
WORDS = ["uint", "string", "syscall", "static_map", "regexp", "exp2", "exp2zero", "linear", "fixed",
         "sum", "label", "u32", "u64", "char[16]", "u8[4]", "s8", "grpc", "http/protobuf", "console",
         "delta", "cumulative", "gzip", "none", "10s", "500ms", "http://127.0.0.1:4318", "a", "",
         "events", "(", "^a", "cpu", "1", "x.y"]

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, 2, 4, 8, 16, 255, 256, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.inf, -math.inf, math.nan, 0.0, 1.0]),
    st.booleans(),
    st.sampled_from(WORDS),
    st.text(max_size=12),
    st.just(datetime.datetime(2024, 1, 1)),
    st.just(datetime.time(1, 2)),
)


def toml_values(keys: list[str]):
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), inner, max_size=6),
        ),
        max_leaves=20,
    )


def documents(keys: list[str]):
    return st.dictionaries(st.sampled_from(keys), toml_values(keys), max_size=6)


def load_program(data) -> None:
    expect_only_config_errors(lambda: parse_program_config(data, Path("/c/fuzz.toml"), Path("/o")))


def load_agent(data) -> None:
    expect_only_config_errors(lambda: parse_agent_config(data, Path("/c/otelbpf.toml"), {}))


def expect_only_config_errors(load) -> None:
    try:
        load()
    except ConfigErrors as exc:
        assert exc.errors and all(isinstance(e, ConfigError) for e in exc.errors)
        str(exc)


def regression_files(kind: str) -> list[Path]:
    return sorted(REGRESSIONS.glob(f"config-{kind}-*.toml"))


@pytest.mark.parametrize("path", regression_files("program"), ids=lambda p: p.name)
def test_program_regressions(path):
    load_program(path.read_bytes())


@pytest.mark.parametrize("path", regression_files("agent"), ids=lambda p: p.name)
def test_agent_regressions(path):
    load_agent(path.read_bytes())


@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_program_arbitrary_bytes(data):
    load_program(data)


@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_agent_arbitrary_bytes(data):
    load_agent(data)


@FUZZ
@given(documents(PROGRAM_KEYS))
def test_program_structured(doc):
    load_program(doc)


@FUZZ
@given(documents(AGENT_KEYS))
def test_agent_structured(doc):
    load_agent(doc)


# Tables shaped like real entries, with every value drawn at random: reaches the checks that
# only run once the surrounding structure is right.
label_tables = st.fixed_dictionaries(
    {"name": scalars, "size": scalars},
    optional={"padding": scalars, "decoders": st.lists(st.fixed_dictionaries(
        {"name": st.sampled_from(WORDS + ["ksym", "errno", "dname"])},
        optional={"static_map": toml_values(WORDS), "allow_unknown": scalars,
                  "regexps": toml_values(WORDS), "arch": scalars}), max_size=3)})
metric_tables = st.fixed_dictionaries(
    {"name": scalars},
    optional={"map": scalars, "labels": st.lists(label_tables, max_size=3),
              "bucket_type": st.sampled_from(["exp2", "exp2zero", "linear", "fixed", "x"]),
              "bucket_min": scalars, "bucket_max": scalars, "bucket_keys": toml_values(WORDS),
              "bucket_multiplier": scalars, "per_cpu": scalars, "unit": scalars})
field_tables = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b", "c", ""]) | scalars,
     "type": st.sampled_from(["u8", "u16", "u32", "u64", "s32", "char[4]", "u8[3]", "x"])},
    optional={"offset": scalars})
stream_metric_tables = st.fixed_dictionaries(
    {"name": scalars},
    optional={"value": st.sampled_from(["a", "b", "c"]) | scalars, "scale": scalars,
              "max_size": scalars, "labels": st.lists(st.fixed_dictionaries(
                  {"field": st.sampled_from(["a", "b", "c"]) | scalars},
                  optional={"name": scalars, "decoders": toml_values(WORDS)}), max_size=3)})
stream_tables = st.fixed_dictionaries(
    {"map": scalars, "fields": st.lists(field_tables, max_size=4)},
    optional={"sample_rate": st.sampled_from(["a", "b"]) | scalars, "cardinality_limit": scalars,
              "idle_intervals": scalars, "counters": st.lists(stream_metric_tables, max_size=2),
              "histograms": st.lists(stream_metric_tables, max_size=2)})
programs = st.fixed_dictionaries({}, optional={
    "counters": st.lists(metric_tables, max_size=3),
    "histograms": st.lists(metric_tables, max_size=3),
    "streams": st.lists(stream_tables, max_size=2),
    "parameters": st.dictionaries(st.text(max_size=5), scalars, max_size=3),
    "object": scalars,
})


@FUZZ
@given(programs)
def test_program_shaped(doc):
    load_program(doc)


PROGRAM_EXAMPLE = """
object = "syscalls.bpf.o"
[parameters]
target_tgid = 0
[[counters]]
name = "syscalls.count"
help = "Syscalls entered"
map = "syscall_counts"
per_cpu = "label"
labels = [ { name = "syscall", size = 4, padding = 4, decoders = [ { name = "uint" }, { name = "syscall" } ] } ]
[[histograms]]
name = "bio.latency"
unit = "us"
map = "bio_latency"
bucket_type = "exp2"
bucket_max = 26
labels = [ {name="device", size=4, decoders=[{name="majorminor"}]}, {name="bucket", size=8} ]
[[histograms]]
name = "sizes"
bucket_type = "fixed"
bucket_keys = [512, 4096]
labels = [ {name="bucket", size=4} ]
[[streams]]
map = "events"
fields = [ { name = "tgid", type = "u32" }, { name = "comm", type = "char[16]" }, { name = "ns", type = "u64", offset = 24 } ]
sample_rate = "tgid"
[[streams.counters]]
name = "exec.count"
value = "ns"
labels = [ { field = "comm", name = "command" } ]
[[streams.histograms]]
name = "wakeup.latency"
value = "ns"
scale = 3
labels = [ { field = "comm", decoders = [ { name = "string" }, { name = "regexp", regexps = ["^ssh"] } ] } ]
"""

AGENT_EXAMPLE = """
[agent]
interval = "10s"
programs = ["syscalls"]
[export]
protocol = "grpc"
endpoint = "collector:4317"
headers = { "x-team" = "a" }
timeout = "5s"
[resource]
"deployment.environment.name" = "dev"
[state]
pin_dir = ""
[limits]
cardinality = 50
[builtin.map_pressure]
warning = 0.5
critical = 0.8
include = ["sys*"]
[builtin.program_stats]
interval = 20
"""


def mutations(text: str):
    """Delete, duplicate or replace a span, or insert TOML-ish tokens, a few times over."""
    tokens = ["=", "[", "]", "{", "}", ",", '"', "\n", "[[", "]]", ".", "0", "-1", "true", "x", "#"]

    @st.composite
    def mutate(draw):
        out = text
        for _ in range(draw(st.integers(1, 4))):
            if not out:
                break
            i = draw(st.integers(0, len(out) - 1))
            j = draw(st.integers(i, min(len(out), i + 20)))
            action = draw(st.sampled_from(["delete", "insert", "dup", "replace"]))
            if action == "delete":
                out = out[:i] + out[j:]
            elif action == "insert":
                out = out[:i] + draw(st.sampled_from(tokens)) + out[i:]
            elif action == "dup":
                out = out[:j] + out[i:j] + out[j:]
            else:
                out = out[:i] + draw(st.sampled_from(WORDS + tokens)) + out[j:]
        return out

    return mutate()


@FUZZ
@given(st.data())
def test_program_mutated_example(data):
    load_program(data.draw(mutations(PROGRAM_EXAMPLE)).encode())


@FUZZ
@given(st.data())
def test_agent_mutated_example(data):
    load_agent(data.draw(mutations(AGENT_EXAMPLE)).encode())
