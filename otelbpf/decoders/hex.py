"""hex: raw bytes → lowercase hexadecimal text, in memory order."""

from __future__ import annotations

from otelbpf.decoders.base import Decoder


class HexDecoder(Decoder):
    name = "hex"

    def decode(self, raw: bytes) -> bytes:
        return raw.hex().encode()
