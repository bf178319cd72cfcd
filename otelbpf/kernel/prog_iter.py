"""Reader for bpf/prog_iter.bpf.c: one run of the iter/bpf_prog program lists every program on the host.

Listing programs by id (BPF_PROG_GET_NEXT_ID, BPF_PROG_GET_FD_BY_ID) needs CAP_SYS_ADMIN; this
iterator needs only CAP_BPF and CAP_PERFMON to load and read, so the agent can keep enumerating
programs after it dropped CAP_SYS_ADMIN. Each run writes one fixed-size record per program, read
in bulk and parsed with numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.info import ProgInfo
from otelbpf.kernel.iterator import IteratorProgram

PROGRAM = "prog_iter"
OBJECT_FILE = "prog_iter.bpf.o"
MAX_MAP_IDS = 64  # PROG_RECORD_MAX_MAPS

# struct prog_record in bpf/prog_iter.bpf.c (native byte order, no implicit padding).
PROG_RECORD = np.dtype(
    [
        ("id", "=u4"),
        ("type", "=u4"),
        ("tag", "V8"),
        ("name", "S16"),
        ("load_time", "=u8"),
        ("run_cnt", "=u8"),
        ("run_time_ns", "=u8"),
        ("recursion_misses", "=u8"),
        ("created_by_uid", "=u4"),
        ("verified_insns", "=u4"),
        ("btf_id", "=u4"),
        ("gpl_compatible", "=u4"),
        ("nr_map_ids", "=u4"),
        ("_pad", "=u4"),
        ("map_ids", "=u4", (MAX_MAP_IDS,)),
    ]
)
assert PROG_RECORD.itemsize == 344


def parse_records(raw: bytes) -> list[ProgInfo]:
    """Iterator output -> ProgInfo per program (a trailing partial record is an error)."""
    if len(raw) % PROG_RECORD.itemsize:
        raise ValueError(
            f"program iterator output is {len(raw)} bytes, not a multiple of the {PROG_RECORD.itemsize}-byte "
            "record: bpf/prog_iter.bpf.c and otelbpf/kernel/prog_iter.py disagree on the layout"
        )
    recs = np.frombuffer(raw, PROG_RECORD)
    out = []
    for r in recs.tolist():
        (prog_id, prog_type, tag, name, load_time, run_cnt, run_time_ns, misses, uid, insns,
         btf_id, gpl, nr_maps, _pad, map_ids) = r
        out.append(ProgInfo(
            type=prog_type,
            id=prog_id,
            tag=bytes(tag).hex(),
            name=name.decode("utf-8", "replace"),
            load_time=load_time,
            created_by_uid=uid,
            run_time_ns=run_time_ns,
            run_cnt=run_cnt,
            recursion_misses=misses,
            verified_insns=insns,
            map_ids=tuple(int(m) for m in map_ids[: min(nr_maps, MAX_MAP_IDS)]),
            btf_id=btf_id,
            gpl_compatible=bool(gpl),
        ))
    return out


class ProgIterator(IteratorProgram):
    """The loaded and attached iter/bpf_prog program; ``read()`` runs it once."""

    def __init__(self, object_path: Path) -> None:
        super().__init__(object_path, PROGRAM, {"nr_cpus": lb.num_possible_cpus()})

    def read(self) -> list[ProgInfo]:
        return parse_records(self.run())
