"""inet_ip: 4 or 16 bytes in network order → IPv4 or IPv6 text (IPv4-mapped IPv6 as
``::ffff:a.b.c.d``); other lengths → hex."""

from __future__ import annotations

import ipaddress

from otelbpf.decoders.base import Decoder


class InetIpDecoder(Decoder):
    name = "inet_ip"

    def decode(self, raw: bytes) -> bytes:
        if len(raw) == 4:
            return str(ipaddress.IPv4Address(raw)).encode()
        if len(raw) == 16:
            address = ipaddress.IPv6Address(raw)
            # Python before 3.13 prints mapped IPv4 in hex (::ffff:c0a8:102); use the dotted form.
            if address.ipv4_mapped is not None:
                return f"::ffff:{address.ipv4_mapped}".encode()
            return str(address).encode()
        return raw.hex().encode()
