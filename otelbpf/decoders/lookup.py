"""lookup: the label's bytes are a key of another map of the same program; its value (raw bytes)
goes on to the next decoder.

For programs that intern a wide key: a counter kept in an array indexed by a small slot number,
and a second map naming what each slot stands for (``bpf/timers.bpf.c`` counts expirations per
slot and keeps each slot's callback address in ``timer_functions``; ``lookup`` then ``ksym``
names it). A key the map does not hold drops the series. A map's contents can change, so the
decoder is unstable: label caches look keys up again now and then.

The map holds one value per key (an ARRAY or a hash, not per CPU) and is keyed by exactly the
label's bytes: ``otelbpf check`` says so against the object. Each new key costs one lookup
system call; decoded labels are cached like any other. It is pinned
and started afresh together with the maps whose labels it names (``BpfObject.set_pin_paths``),
so a kept counter never meets a table that forgot what its slots meant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otelbpf.decoders.base import Decoder


class LookupDecoder(Decoder):
    name = "lookup"
    option_names = ("map",)
    stable = False

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(options)
        name = options.get("map")
        if not isinstance(name, str) or not name:
            raise ValueError('decoder "lookup" needs map = "NAME", a map of the same program '
                             "whose keys are this label's bytes")
        self.map_name = name
        self._map = None

    def bind(self, maps: Mapping[str, Any] | None) -> None:
        bpf_map = (maps or {}).get(self.map_name)
        if bpf_map is None:
            raise ValueError(f'decoder "lookup": the program has no map "{self.map_name}" to read')
        self._map = bpf_map

    def decode(self, raw: bytes) -> bytes | None:
        if self._map is None or len(raw) != self._map.key_size:
            return None
        return self._map.lookup(raw)
