"""Fuzzing: no decoder may raise on any input, alone or chained; kept regressions replay first."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otelbpf import decoders
from otelbpf.config.program import DecoderConfig

REGRESSIONS = Path(__file__).parent / "regressions" / "decoder-inputs.txt"

OPTIONS = {
    "static_map": {"static_map": {"1": "one", "": "empty"}, "allow_unknown": True},
    "regexp": {"regexps": ["^a", "z$"]},
    "kernel_enum": {"enum": "bpf_map_type", "strip_prefix": "BPF_MAP_TYPE_", "lowercase": True},
    "lookup": {"map": "table"},
}


class FakeTable:
    """A program map for ``lookup``: u32 keys, some present."""

    key_size = 4

    def lookup(self, key: bytes) -> bytes | None:
        n = int.from_bytes(key, "little")
        return (n * 3).to_bytes(8, "little") if n % 2 else None


MAPS = {"table": FakeTable()}


def build(name: str) -> decoders.Decoder:
    decoder = decoders.build(DecoderConfig(name, MappingProxyType(OPTIONS.get(name, {}))))
    decoder.bind(MAPS)
    return decoder


ALL = {name: build(name) for name in decoders.names()}

# Inputs that look like what decoders receive: raw integers of the usual widths, decimal text
# (after uint), and arbitrary bytes.
inputs = st.one_of(
    st.binary(max_size=300),
    st.integers(min_value=0, max_value=2**64 - 1).map(lambda n: n.to_bytes(8, "little")),
    st.integers(min_value=0, max_value=2**32 - 1).map(lambda n: n.to_bytes(4, "little")),
    st.integers(min_value=-(2**70), max_value=2**70).map(lambda n: str(n).encode()),
    st.text(max_size=50).map(lambda s: s.encode("utf-8", "surrogatepass")),
)


def check(name: str, raw: bytes) -> None:
    out = ALL[name].decode(raw)
    assert out is None or isinstance(out, bytes), (name, raw, out)
    if out is not None:
        decoders.label_value(out)


def regression_inputs() -> list[tuple[str, bytes]]:
    cases = []
    for line in REGRESSIONS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, hexdata = line.partition(" ")
            cases.append((name, bytes.fromhex(hexdata.strip())))
    return cases


@pytest.mark.parametrize("name,raw", regression_inputs())
def test_decoder_regression_inputs(name, raw):
    check(name, raw)


@pytest.mark.parametrize("name", sorted(ALL))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=inputs)
def test_decoder_never_raises(name, raw):
    check(name, raw)


@settings(max_examples=300, deadline=None)
@given(chain=st.lists(st.sampled_from(sorted(ALL)), min_size=1, max_size=4), raw=inputs)
def test_chains_never_raise(chain, raw):
    run = decoders.build_chain(
        DecoderConfig(n, MappingProxyType(OPTIONS.get(n, {}))) for n in chain)
    run.bind(MAPS)
    out = run(raw)
    assert out is None or isinstance(out, bytes)
