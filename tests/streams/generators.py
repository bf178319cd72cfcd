"""Drive bpf/tests/stream_test.bpf.c: the context its gen_* programs take, and what they write."""

from __future__ import annotations

import struct


def gen_args(count: int, *, first: int = 0, keys: int = 0, discard_every: int = 0, vary: int = 0,
             spin: int = 0) -> bytes:
    """The `struct gen_args` context of the gen_* programs."""
    return struct.pack("<6I", count, first, keys, discard_every, vary, spin)


def seqs(batch) -> list[int]:
    """The `seq` (first u32) of every record in a batch."""
    return [struct.unpack_from("<I", p)[0] for p in batch.payloads()]
