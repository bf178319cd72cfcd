"""uint: a little-endian unsigned integer of any width → its decimal text."""

from __future__ import annotations

from otelbpf.decoders.base import Decoder


class UintDecoder(Decoder):
    name = "uint"

    def decode(self, raw: bytes) -> bytes:
        return str(int.from_bytes(raw, "little")).encode()
