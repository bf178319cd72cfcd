"""BpfObject bookkeeping: what is known before load, program attributes, load-once, pins with isolation."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelbpf.kernel import BpfMap, BpfObject, MapType, features

pytestmark = pytest.mark.kernel

BPF_PROG_TYPE_TRACEPOINT, BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_PROG_TYPE_TRACING = 5, 17, 26
BPF_TRACE_RAW_TP, BPF_TRACE_ITER = 23, 28


def test_maps_are_described_before_load(objects: Path) -> None:
    # The agent validates its config against map layouts before it loads anything.
    with BpfObject.open(objects / "kernel_maps.bpf.o") as obj:
        m = obj.maps["percpu_triples"]
        assert (m.type, m.key_size, m.value_size, m.max_entries) == (MapType.PERCPU_HASH, 4, 12, 64)
        assert m.fd == -1 and m.id == 0
        with pytest.raises(ValueError, match="not loaded yet"):
            m.read_all()
        obj.load()
        assert obj.maps["percpu_triples"] is m and m.fd >= 0 and m.id > 0


def test_program_attributes(objects: Path) -> None:
    with BpfObject.open(objects / "kernel_attach.bpf.o") as obj:
        p = obj.programs
        assert (p["on_tracepoint"].section, p["on_tracepoint"].prog_type) == (
            "tracepoint/syscalls/sys_enter_getpgid", BPF_PROG_TYPE_TRACEPOINT)
        assert p["on_raw_tp"].prog_type == BPF_PROG_TYPE_RAW_TRACEPOINT
        assert (p["on_tp_btf"].prog_type, p["on_tp_btf"].expected_attach_type) == (
            BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP)
        assert (p["dump_maps"].prog_type, p["dump_maps"].expected_attach_type) == (
            BPF_PROG_TYPE_TRACING, BPF_TRACE_ITER)
        assert [p[n].kind for n in ("on_tracepoint", "on_raw_tp", "on_kprobe", "on_fentry", "dump_maps")] == [
            "tracepoint", "raw_tp", "kprobe", "fentry", "iter"]
        assert not any(prog.loaded for prog in p.values())
        obj.load()
        assert p["on_tracepoint"].loaded and p["on_tracepoint"].id > 0


def test_load_only_once(objects: Path) -> None:
    with BpfObject.open(objects / "kernel_maps.bpf.o") as obj:
        obj.load()
        with pytest.raises(ValueError, match="already called"):
            obj.load()


def test_attach_before_load_and_unknown_program(objects: Path) -> None:
    with BpfObject.open(objects / "kernel_maps.bpf.o") as obj:
        with pytest.raises(ValueError, match="load"):
            obj.attach("fill_maps")
        obj.load()
        with pytest.raises(KeyError, match="no program 'nope'; programs: fill_maps"):
            obj.attach("nope")


def test_pins_survive_the_isolation_reopen(objects: Path, pin_dir: Path) -> None:
    # Where on_fentry fails to load, load() re-opens the object: the pin must still be created
    # once and be the map the loaded programs use.
    pin = pin_dir / "hits"
    with BpfObject.open(objects / "kernel_attach.bpf.o", pin_maps={"hits": pin}) as obj:
        obj.load()
        assert obj.pin_states == {"hits": "created"}
        assert ("on_fentry" in obj.program_errors) == (not features.probe().fentry)
        with BpfMap.from_pin(pin) as pinned:
            assert pinned.id == obj.maps["hits"].id
    with BpfObject.open(objects / "kernel_attach.bpf.o", pin_maps={"hits": pin}) as obj:
        obj.load()
        assert obj.pin_states == {"hits": "reused"}
