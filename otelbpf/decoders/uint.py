"""uint: a little-endian unsigned integer of any width → its decimal text."""

from __future__ import annotations

from otelbpf.decoders.base import Decoder, decimal


class UintDecoder(Decoder):
    name = "uint"

    def decode(self, raw: bytes) -> bytes:
        return decimal(int.from_bytes(raw, "little"))
