"""int: a little-endian two's complement signed integer of any width → its decimal text."""

from __future__ import annotations

from otelbpf.decoders.base import Decoder, decimal


class IntDecoder(Decoder):
    name = "int"

    def decode(self, raw: bytes) -> bytes:
        return decimal(int.from_bytes(raw, "little", signed=True))
