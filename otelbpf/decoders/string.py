"""string: a C string (``char comm[16]``) → the bytes before the first NUL."""

from __future__ import annotations

from otelbpf.decoders.base import Decoder


class StringDecoder(Decoder):
    name = "string"

    def decode(self, raw: bytes) -> bytes:
        end = raw.find(b"\0")
        return raw if end < 0 else raw[:end]
