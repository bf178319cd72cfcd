"""static_map: replace known values by names from a fixed table.

``{ name = "static_map", static_map = { "1" = "read", "2" = "write" }, allow_unknown = true }``.
Keys are matched against the text of the previous decoder's output (usually ``uint``). A value
missing from the table drops the series; with ``allow_unknown = true`` it is kept unchanged
instead, and with ``unknown_prefix = "unknown:"`` it becomes ``unknown:<value>`` — what
ebpf_exporter does without ``allow_unknown`` (its YAML configs get this prefix).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otelbpf.decoders.base import Decoder, unknown_prefix


class StaticMapDecoder(Decoder):
    name = "static_map"
    option_names = ("static_map", "allow_unknown", "unknown_prefix")

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(options)
        table = options.get("static_map")
        if not isinstance(table, Mapping) or not table:
            raise ValueError('static_map needs a non-empty table: static_map = { "1" = "read" }')
        self.table: dict[bytes, bytes] = {}
        for key, value in table.items():
            if not isinstance(value, str):
                raise ValueError(f'static_map value for "{key}" must be a string (quote it)')
            self.table[str(key).encode()] = value.encode()
        allow = options.get("allow_unknown", False)
        if not isinstance(allow, bool):
            raise ValueError("allow_unknown must be true or false")
        self.allow_unknown = allow
        self.unknown_prefix = unknown_prefix(options) if "unknown_prefix" in options else None
        if self.unknown_prefix is not None and allow:
            raise ValueError("allow_unknown keeps unknown values unchanged; unknown_prefix "
                             "prefixes them: use one of the two")

    def decode(self, raw: bytes) -> bytes | None:
        value = self.table.get(raw)
        if value is None:
            if self.allow_unknown:
                return raw
            if self.unknown_prefix is not None:
                return self.unknown_prefix + raw
        return value
