"""The signal decoder: numbers from the kernel → this host's signal names."""

import signal

import pytest

from otelbpf.config.program import DecoderConfig
from otelbpf.decoders import build, build_chain


@pytest.mark.parametrize(("raw", "expected"), [
    (str(int(signal.SIGTERM)).encode(), b"SIGTERM"),                 # decimal text from uint
    (int(signal.SIGWINCH).to_bytes(4, "little"), b"SIGWINCH"),       # raw u32
    (str(int(signal.SIGRTMIN)).encode(), b"SIGRTMIN"),
    (str(int(signal.SIGRTMIN) + 3).encode(), b"SIGRTMIN+3"),
    (b"0", b"0"),                                                    # no signal 0: stays a number
    (b"999", b"999"),
    ((2**32 - 1).to_bytes(4, "little"), b"4294967295"),
])
def test_signal_names(raw, expected):
    assert build(DecoderConfig("signal", {})).decode(raw) == expected


def test_chained_after_uint():
    chain = build_chain([DecoderConfig("uint", {}), DecoderConfig("signal", {})])
    assert chain(int(signal.SIGKILL).to_bytes(4, "little")) == b"SIGKILL"
