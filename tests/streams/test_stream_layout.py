"""Record layouts: C struct rules, explicit offsets, and the numpy views over raw records."""

from __future__ import annotations

import numpy as np
import pytest

from otelbpf.streams.layout import build_layout
from otelbpf.streams.records import RecordBatch


def test_natural_alignment_like_clang():
    # struct { u8 a; u32 b; char c[3]; u64 d; u16 e; } -> a@0 b@4 c@8 d@16 e@24, sizeof 32
    layout = build_layout([("a", "u8", None), ("b", "u32", None), ("c", "char[3]", None),
                           ("d", "u64", None), ("e", "u16", None)])
    assert [(f.name, f.offset) for f in layout.fields] == [("a", 0), ("b", 4), ("c", 8), ("d", 16), ("e", 24)]
    assert layout.size == 32
    assert layout.min_record_size == 26
    assert layout.dtype.itemsize == 32


def test_explicit_offsets_and_byte_arrays():
    layout = build_layout([("addr", "u8[16]", 8), ("port", "u16", 2), ("sig", "s32", None)])
    assert layout.field("addr").offset == 8
    assert layout.field("sig").offset == 24  # after the furthest field so far, aligned
    assert layout.dtype["addr"].shape == (16,)
    assert layout.dtype["sig"] == np.dtype("<i4")
    assert layout.size == 28


@pytest.mark.parametrize("fields, message", [
    ([("a", "u128", None)], "unknown field type"),
    ([("a", "char[0]", None)], "unknown field type"),
    ([("a", "u32", None), ("a", "u32", None)], "declared twice"),
    ([("a", "u64", 0), ("b", "u32", 4)], "overlaps"),
])
def test_bad_layouts(fields, message):
    with pytest.raises(ValueError, match=message):
        build_layout(fields)


def _batch(payloads: list[bytes], stride: int = 0) -> RecordBatch:
    data, offsets = b"", []
    for p in payloads:
        data += b"\xee" * 8  # a header's worth of bytes that must not leak into records
        offsets.append(len(data))
        data += p.ljust(-(-len(p) // 8) * 8, b"\0")
    return RecordBatch(np.frombuffer(data, np.uint8).copy(), np.array(offsets), np.array([len(p) for p in payloads]),
                       stride)


def test_view_uniform_records_is_zero_copy():
    layout = build_layout([("pid", "u32", None), ("comm", "char[4]", None)])
    payloads = [i.to_bytes(4, "little") + b"ab\0\0" for i in range(5)]
    batch = _batch(payloads, stride=16)
    records, short = batch.view(layout)
    assert short == 0
    assert np.shares_memory(records, batch.data)
    assert records["pid"].tolist() == [0, 1, 2, 3, 4]
    assert records["comm"].tolist() == [b"ab"] * 5


def test_view_mixed_lengths_gathers_and_skips_short_records():
    layout = build_layout([("pid", "u32", None), ("n", "u64", None)])
    payloads = [(7).to_bytes(4, "little") + b"\0" * 4 + (9).to_bytes(8, "little"),  # 16 bytes: ok
                b"\1\0\0\0",  # 4 bytes: too short
                (8).to_bytes(4, "little") + b"\0" * 4 + (10).to_bytes(8, "little") + b"extra..."]
    records, short = _batch(payloads).view(layout)
    assert short == 1
    assert records["pid"].tolist() == [7, 8]
    assert records["n"].tolist() == [9, 10]
