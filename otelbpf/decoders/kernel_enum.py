"""kernel_enum: a number → the name of the member of a kernel enum that has it, on the running kernel.

Some kernel enums are renumbered between versions (``enum skb_drop_reason`` gains reasons in the
middle), so a BPF program records the raw value and this decoder names it against the running
kernel's own BTF, read once per enum: every value is named correctly on every kernel, with no
table to keep up to date. Options: ``enum`` (required, the C name without ``enum``),
``strip_prefix`` (removed from names that start with it), ``lowercase`` (true/false).
Values the enum does not have become ``unknown_prefix`` + the number.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from otelbpf.decoders.base import Decoder, as_int, decimal, unknown_prefix
from otelbpf.kernel.btf import kernel_enum


@functools.cache
def _members(enum: str) -> dict[int, str] | None:
    return kernel_enum(enum)


class KernelEnumDecoder(Decoder):
    name = "kernel_enum"
    option_names = ("enum", "strip_prefix", "lowercase", "unknown_prefix")

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(options)
        enum = options.get("enum")
        if not isinstance(enum, str) or not enum:
            raise ValueError('decoder "kernel_enum" needs enum = "<C enum name>", e.g. enum = "skb_drop_reason"')
        prefix = options.get("strip_prefix", "")
        if not isinstance(prefix, str):
            raise ValueError('strip_prefix must be a string, e.g. "SKB_DROP_REASON_"')
        lowercase = options.get("lowercase", False)
        if not isinstance(lowercase, bool):
            raise ValueError("lowercase must be true or false")
        members = _members(enum)
        if members is None:
            raise ValueError(f"the running kernel's BTF (/sys/kernel/btf/vmlinux) has no enum {enum} "
                             f"(fix: check the name in the kernel's headers, or decode the number with uint)")
        self._unknown_prefix = unknown_prefix(options)
        self._names: dict[int, bytes] = {}
        for value, member in members.items():
            if prefix and member.startswith(prefix):
                member = member[len(prefix):]
            self._names[value] = (member.lower() if lowercase else member).encode()

    def decode(self, raw: bytes) -> bytes:
        number = as_int(raw)
        name = self._names.get(number)
        return name if name is not None else self._unknown_prefix + decimal(number)
