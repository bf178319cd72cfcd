"""ksym: a kernel address → the name of the kernel symbol containing it.

Symbols come from /proc/kallsyms (read once, on first use, shared by ksym and kstack). An
address resolves to the nearest text symbol at or below it (within 1 MiB). Without readable
addresses (kptr_restrict, no CAP_SYSLOG) or outside the known symbols (a module loaded after the
first lookup, garbage), the address is shown as ``0x…``.
"""

from __future__ import annotations

import bisect
import threading
from pathlib import Path

from otelbpf.decoders.base import Decoder, as_int

KALLSYMS = Path("/proc/kallsyms")
_TEXT_TYPES = frozenset("tTwW")
# No kernel function is this large: an address further past the nearest symbol is outside the
# known text (a module loaded later, a user address, garbage) and is shown as a number.
_MAX_SYMBOL_SIZE = 1 << 20


class KernelSymbols:
    """Sorted text symbols: ``lookup(addr)`` finds the nearest one at or below ``addr``."""

    def __init__(self, symbols: list[tuple[int, str]]):
        symbols.sort()
        self.addresses = [a for a, _ in symbols]
        self.names = [n.encode() for _, n in symbols]

    @classmethod
    def parse(cls, text: str) -> KernelSymbols:
        symbols = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3 or parts[1] not in _TEXT_TYPES:
                continue
            try:
                address = int(parts[0], 16)
            except ValueError:
                continue
            if address:
                symbols.append((address, parts[2]))
        return cls(symbols)

    @classmethod
    def load(cls, path: Path = KALLSYMS) -> KernelSymbols:
        try:
            return cls.parse(path.read_text(errors="replace"))
        except OSError:
            return cls([])

    def lookup(self, address: int) -> bytes:
        i = bisect.bisect_right(self.addresses, address) - 1
        if i < 0 or address - self.addresses[i] > _MAX_SYMBOL_SIZE:
            return f"0x{address:x}".encode()
        return self.names[i]


_symbols: KernelSymbols | None = None
_lock = threading.Lock()


def kernel_symbols() -> KernelSymbols:
    global _symbols
    with _lock:
        if _symbols is None:
            _symbols = KernelSymbols.load()
        return _symbols


class KsymDecoder(Decoder):
    name = "ksym"

    def decode(self, raw: bytes) -> bytes:
        return kernel_symbols().lookup(as_int(raw))
