"""dname: a DNS name in wire format (length-prefixed labels, a zero ends them) → a dotted name.

Bytes outside printable ASCII, dots and backslashes inside labels are escaped as ``\\DDD`` (the
presentation format of RFC 1035 / dig). The root name is ``.``. Decoding stops at the end of
the input, at a compression pointer or at an invalid length, keeping the labels read so far.
"""

from __future__ import annotations

from otelbpf.decoders.base import Decoder

_MAX_LABEL = 63  # RFC 1035: higher lengths are pointers or reserved


def _escape(label: bytes) -> bytes:
    out = bytearray()
    for byte in label:
        if 0x21 <= byte <= 0x7E and byte not in b".\\":
            out.append(byte)
        else:
            out += b"\\%03d" % byte
    return bytes(out)


class DnameDecoder(Decoder):
    name = "dname"

    def decode(self, raw: bytes) -> bytes:
        labels = []
        pos = 0
        while pos < len(raw):
            length = raw[pos]
            if length == 0 or length > _MAX_LABEL or pos + 1 + length > len(raw):
                break
            labels.append(_escape(raw[pos + 1:pos + 1 + length]))
            pos += 1 + length
        return b".".join(labels) if labels else b"."
