"""Record layouts: the C struct a BPF program writes into a stream, as a numpy structured dtype.

A stream's `fields` name the struct members with C types (`u8`..`u64`, `s8`..`s64`, `char[N]`,
`u8[N]`, parsed by `config.program.parse_field_type`). The config loader fills in offsets the way
a C compiler lays out the struct; a field without one (a config built in code) is placed the same
way here, so a layout can always be written by copying the struct definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from otelbpf.config.program import FieldType, parse_field_type


def field_dtype(ft: FieldType) -> np.dtype:
    """Little-endian integers, `S<n>` for char[N], an (N,) uint8 sub-array for u8[N]."""
    if ft.kind == "uint":
        return np.dtype(f"<u{ft.size}")
    if ft.kind == "int":
        return np.dtype(f"<i{ft.size}")
    if ft.kind == "char":
        return np.dtype(f"S{ft.size}")
    return np.dtype((np.uint8, (ft.size,)))


@dataclass(frozen=True)
class FieldLayout:
    name: str
    type: FieldType
    offset: int

    @property
    def size(self) -> int:
        return self.type.size

    @property
    def dtype(self) -> np.dtype:
        return field_dtype(self.type)


@dataclass(frozen=True)
class RecordLayout:
    """The fields of one record and the numpy dtype that views a record buffer in place."""

    fields: tuple[FieldLayout, ...]
    size: int  # sizeof(struct), including tail padding to the largest alignment

    @property
    def dtype(self) -> np.dtype:
        return self.dtype_with_itemsize(self.size)

    def dtype_with_itemsize(self, itemsize: int) -> np.dtype:
        """The record dtype stretched to `itemsize` bytes (records padded in the ring view as one array)."""
        return np.dtype({
            "names": [f.name for f in self.fields],
            "formats": [f.dtype for f in self.fields],
            "offsets": [f.offset for f in self.fields],
            "itemsize": itemsize,
        })

    @property
    def min_record_size(self) -> int:
        """Bytes a record must hold for every field to be inside it (the struct without tail padding)."""
        return max((f.offset + f.size for f in self.fields), default=0)

    def field(self, name: str) -> FieldLayout:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def build_layout(fields: Sequence[tuple[str, str, int | None]]) -> RecordLayout:
    """Lay out (name, C type, offset or None) fields like a C compiler: a field without an offset
    goes at the next offset aligned to its natural alignment; the size is rounded up to the
    largest alignment, like sizeof(). ValueError for unknown types, duplicates and overlaps."""
    out: list[FieldLayout] = []
    end = 0
    max_align = 1
    for name, ctype, offset in fields:
        if any(f.name == name for f in out):
            raise ValueError(f"field {name!r} is declared twice")
        ft = parse_field_type(ctype.strip())
        max_align = max(max_align, ft.alignment)
        if offset is None:
            offset = -(-end // ft.alignment) * ft.alignment
        for other in out:
            if offset < other.offset + other.size and other.offset < offset + ft.size:
                raise ValueError(f"field {name!r} at offset {offset} overlaps field {other.name!r}")
        out.append(FieldLayout(name, ft, offset))
        end = max(end, offset + ft.size)
    return RecordLayout(tuple(out), -(-end // max_align) * max_align)


def layout_from_config(fields) -> RecordLayout:
    """RecordLayout from `StreamFieldConfig(name, type, offset)` entries."""
    return build_layout([(f.name, f.type, f.offset) for f in fields])
