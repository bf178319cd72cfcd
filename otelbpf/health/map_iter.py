"""Reader for bpf/map_pressure.bpf.c: one run of the iter/bpf_map program lists every map on the host.

The program writes one fixed-size ``struct map_record`` per map with bpf_seq_write; a run is
read from a fresh iterator fd in large chunks and parsed as a numpy structured array, so the
Python cost per map is a few array operations, not a syscall.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from otelbpf.kernel.iterator import IteratorProgram

PROGRAM = "map_pressure"
OBJECT_FILE = "map_pressure.bpf.o"

# struct map_record in bpf/map_pressure.bpf.c (native byte order, no implicit padding).
MAP_RECORD = np.dtype(
    [
        ("id", "=u4"),
        ("type", "=u4"),
        ("key_size", "=u4"),
        ("value_size", "=u4"),
        ("max_entries", "=u4"),
        ("map_flags", "=u4"),
        ("elem_count", "=i8"),
        ("flags", "=u4"),
        ("_pad", "=u4"),
        ("name", "S16"),
        ("ringbuf_used", "=u8"),
    ]
)
assert MAP_RECORD.itemsize == 64
RECORD_HAS_COUNT = 1
RECORD_HAS_RINGBUF = 2


def parse_records(raw: bytes) -> np.ndarray:
    """Iterator output -> structured array of MAP_RECORD (a trailing partial record is an error)."""
    if len(raw) % MAP_RECORD.itemsize:
        raise ValueError(
            f"map iterator output is {len(raw)} bytes, not a multiple of the {MAP_RECORD.itemsize}-byte "
            "record: bpf/map_pressure.bpf.c and otelbpf/health/map_iter.py disagree on the layout"
        )
    return np.frombuffer(raw, MAP_RECORD)


class MapIterator(IteratorProgram):
    """The loaded and attached iter/bpf_map program; ``read()`` runs it once."""

    def __init__(self, object_path: Path) -> None:
        super().__init__(object_path, PROGRAM)

    def read(self) -> np.ndarray:
        return parse_records(self.run())
