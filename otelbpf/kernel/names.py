"""Kernel map and program type names as libbpf (and bpftool) spell them: "lru_hash", "tracepoint"."""

from __future__ import annotations

import functools

from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.maps import MapType


@functools.cache
def map_type_name(map_type: int) -> str:
    name = lb.libbpf_bpf_map_type_str(map_type)
    if name:
        return name.decode()
    # Types newer than the system libbpf (arena is unknown to libbpf 1.1).
    known = MapType.coerce(map_type)
    return known.name.lower() if isinstance(known, MapType) else f"unknown_{map_type}"


@functools.cache
def prog_type_name(prog_type: int) -> str:
    name = lb.libbpf_bpf_prog_type_str(prog_type)
    return name.decode() if name else f"unknown_{prog_type}"
