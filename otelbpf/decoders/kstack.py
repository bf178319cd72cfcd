"""kstack: a kernel stack (array of u64 addresses, a zero ends it) → ``sym1;sym2;…``.

The innermost frame comes first, as ``bpf_get_stack`` stores it. Symbols resolve like ``ksym``.
"""

from __future__ import annotations

from otelbpf.decoders.base import Decoder
from otelbpf.decoders.ksym import kernel_symbols


class KstackDecoder(Decoder):
    name = "kstack"

    def decode(self, raw: bytes) -> bytes:
        symbols = kernel_symbols()
        frames = []
        for offset in range(0, len(raw) - 7, 8):
            address = int.from_bytes(raw[offset:offset + 8], "little")
            if address == 0:
                break
            frames.append(symbols.lookup(address))
        return b";".join(frames)
