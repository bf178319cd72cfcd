"""Label decoders: one module per decoder, registered here by name.

A decoder turns the bytes of one label (a slice of a map key, or a record field) into the bytes
of its value; a label's decoders run as a chain, left to right, and a ``None`` anywhere drops
the series. Adding a decoder takes one new module and one line in ``_BUILTIN``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from otelbpf.config.program import DecoderConfig
from otelbpf.decoders.base import Decoder
from otelbpf.decoders.cgroup import CgroupDecoder
from otelbpf.decoders.dname import DnameDecoder
from otelbpf.decoders.errno import ErrnoDecoder
from otelbpf.decoders.hex import HexDecoder
from otelbpf.decoders.ifname import IfnameDecoder
from otelbpf.decoders.inet_ip import InetIpDecoder
from otelbpf.decoders.irq import IrqDecoder
from otelbpf.decoders.kernel_enum import KernelEnumDecoder
from otelbpf.decoders.kstack import KstackDecoder
from otelbpf.decoders.ksym import KsymDecoder
from otelbpf.decoders.lookup import LookupDecoder
from otelbpf.decoders.majorminor import MajorMinorDecoder
from otelbpf.decoders.pci import (PciClassDecoder, PciDeviceDecoder, PciSubclassDecoder,
                                  PciVendorDecoder)
from otelbpf.decoders.regexp import RegexpDecoder
from otelbpf.decoders.signal import SignalDecoder
from otelbpf.decoders.sint import IntDecoder
from otelbpf.decoders.static_map import StaticMapDecoder
from otelbpf.decoders.string import StringDecoder
from otelbpf.decoders.syscall import SyscallDecoder
from otelbpf.decoders.uint import UintDecoder

__all__ = ["Decoder", "DecoderChain", "build", "build_chain", "get", "label_value", "names",
           "register"]

_BUILTIN: tuple[type[Decoder], ...] = (
    CgroupDecoder,
    DnameDecoder,
    ErrnoDecoder,
    HexDecoder,
    IfnameDecoder,
    InetIpDecoder,
    IntDecoder,
    IrqDecoder,
    KernelEnumDecoder,
    KstackDecoder,
    KsymDecoder,
    LookupDecoder,
    MajorMinorDecoder,
    PciClassDecoder,
    PciDeviceDecoder,
    PciSubclassDecoder,
    PciVendorDecoder,
    RegexpDecoder,
    SignalDecoder,
    StaticMapDecoder,
    StringDecoder,
    SyscallDecoder,
    UintDecoder,
)

_registry: dict[str, type[Decoder]] = {}


def register(cls: type[Decoder]) -> type[Decoder]:
    """Make ``cls`` available under ``cls.name`` (usable as a class decorator)."""
    existing = _registry.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f'a decoder named "{cls.name}" is already registered '
                         f"({existing.__name__})")
    _registry[cls.name] = cls
    return cls


for _cls in _BUILTIN:
    register(_cls)


def names() -> tuple[str, ...]:
    return tuple(sorted(_registry))


def get(name: str) -> type[Decoder]:
    """The decoder class registered as ``name``; KeyError (with a suggestion) if there is none."""
    try:
        return _registry[name]
    except KeyError:
        raise KeyError(unknown_decoder_message(name)) from None


def unknown_decoder_message(name: str) -> str:
    close = difflib.get_close_matches(name, _registry, n=1)
    hint = f'did you mean "{close[0]}"?' if close else "known decoders: " + ", ".join(names())
    return f'unknown decoder "{name}" ({hint})'


def build(config: DecoderConfig) -> Decoder:
    """The decoder a config entry describes; ValueError for unknown names or bad options."""
    cls = _registry.get(config.name)
    if cls is None:
        raise ValueError(unknown_decoder_message(config.name))
    return cls(config.options)


class DecoderChain:
    """A label's decoders as one callable: bytes → bytes, or None when a decoder drops the series.

    ``stable`` is False when any decoder's answer may change over time (see ``Decoder.stable``).
    """

    __slots__ = ("decoders", "stable", "_steps")

    def __init__(self, decoders: Iterable[Decoder]):
        self.decoders = tuple(decoders)
        self.stable = all(d.stable for d in self.decoders)
        self._steps = tuple(d.decode for d in self.decoders)

    def refresh(self) -> None:
        for decoder in self.decoders:
            decoder.refresh()

    def bind(self, maps) -> None:
        for decoder in self.decoders:
            decoder.bind(maps)

    def __call__(self, raw: bytes) -> bytes | None:
        value: bytes | None = raw
        for step in self._steps:
            value = step(value)
            if value is None:
                return None
        return value

    def __repr__(self) -> str:
        return "<chain " + " | ".join(d.name for d in self.decoders) + ">"


def build_chain(configs: Iterable[DecoderConfig]) -> DecoderChain:
    """The chain of decoders ``configs`` describe, run left to right."""
    return DecoderChain(build(c) for c in configs)


def label_value(raw: bytes) -> str:
    """The final text of a decoded label: UTF-8 with invalid bytes replaced."""
    return raw.decode("utf-8", errors="replace")
