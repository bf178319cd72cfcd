"""syscall: a syscall number → its name on this machine's architecture (``unknown:<n>`` if none).

Tables are data files in ``tables/`` (number<TAB>name), one per architecture. The optional
``arch`` option ("x86_64" or "arm64") decodes numbers recorded on another architecture.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Mapping
from importlib import resources
from typing import Any

from otelbpf.decoders.base import Decoder, as_int, decimal

_ARCH_ALIASES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
ARCHITECTURES = ("x86_64", "arm64")


@functools.cache
def syscall_table(arch: str) -> dict[int, bytes]:
    text = resources.files("otelbpf.decoders").joinpath(f"tables/syscalls-{arch}.tsv").read_text()
    table = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            number, name = line.split("\t")
            table[int(number)] = name.encode()
    return table


class SyscallDecoder(Decoder):
    name = "syscall"
    option_names = ("arch",)

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(options)
        arch = options.get("arch", platform.machine())
        if not isinstance(arch, str) or arch not in _ARCH_ALIASES:
            raise ValueError(f"no syscall table for architecture {arch!r}: "
                             f'set arch to one of {", ".join(ARCHITECTURES)}')
        self.arch = _ARCH_ALIASES[arch]
        self.table = syscall_table(self.arch)

    def decode(self, raw: bytes) -> bytes:
        number = as_int(raw)
        name = self.table.get(number)
        return name if name is not None else b"unknown:" + decimal(number)
