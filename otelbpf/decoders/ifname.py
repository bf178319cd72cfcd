"""ifname: a network interface index → its name (``eth0``); unknown indexes stay numbers
(after ``unknown_prefix``: ebpf_exporter's ``unknown:<index>``).

Names can change and indexes are reused, so answers are kept for a few seconds only.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import Any

from otelbpf.decoders.base import Decoder, as_int, decimal, unknown_prefix

_TTL_SECONDS = 10.0


class IfnameDecoder(Decoder):
    name = "ifname"
    option_names = ("unknown_prefix",)
    stable = False

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(options)
        self._unknown_prefix = unknown_prefix(options)
        self._cache: dict[int, tuple[float, bytes]] = {}

    def decode(self, raw: bytes) -> bytes:
        index = as_int(raw)
        now = time.monotonic()
        hit = self._cache.get(index)
        if hit is not None and now - hit[0] < _TTL_SECONDS:
            return hit[1]
        name = self._unknown_prefix + decimal(index)
        if 0 < index < 1 << 32:
            try:
                name = socket.if_indextoname(index).encode()
            except OSError:
                pass
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[index] = (now, name)
        return name
