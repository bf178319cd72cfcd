"""Programs left attached by an earlier process, known only through their pinned links: detached
and attached again by program fd (what a start-time swap falls back on), once the libbpf object
that loaded them is gone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kernel_triggers import getpgid_calls

from otelbpf.kernel import BpfMap, BpfObject
from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.pinned_programs import PinnedProgram

pytestmark = pytest.mark.kernel

HITS = {"on_tracepoint": 0, "on_raw_tp": 1, "on_tp_btf": 2}  # enum hit in kernel_attach.bpf.c


def hits(pin: Path, program: str) -> int:
    with BpfMap.from_pin(pin) as m:
        return int.from_bytes(m.lookup(HITS[program].to_bytes(4, "little")), "little")


def left_attached(objects: Path, pin_dir: Path, program: str) -> Path:
    """Attach ``program``, pin its link and its map, and close everything else (the process that
    loaded it is gone): returns the link's pin."""
    pin_dir.mkdir(exist_ok=True)
    obj = BpfObject.open(objects / "kernel_attach.bpf.o", parameters={"target_tgid": os.getpid()},
                         pin_maps={"hits": pin_dir / "hits"})
    obj.load()
    obj.attach(program).pin(pin_dir / program)
    assert lb.bpf_obj_pin(obj.programs[program].fd, os.fsencode(pin_dir / f"prog-{program}")) == 0
    obj.close()
    return pin_dir / program


@pytest.mark.parametrize("program", sorted(HITS))
def test_detached_program_attaches_again_by_fd(objects: Path, pin_dir: Path, program: str) -> None:
    pin = left_attached(objects, pin_dir, program)
    getpgid_calls(0, 3)
    counted = hits(pin_dir / "hits", program)
    assert counted >= 3
    left = PinnedProgram.open(pin, pin_dir / f"prog-{program}")
    try:
        assert left.why_not_reattachable is None, left.target
        with BpfMap.from_pin(pin_dir / "hits") as m:
            assert m.id in left.map_ids
        left.detach()
        assert not pin.exists()
        stopped = hits(pin_dir / "hits", program)
        getpgid_calls(0, 4)
        assert hits(pin_dir / "hits", program) == stopped  # detached: nothing counted
        left.attach_again()
    finally:
        left.close()  # the new pinned link holds the program now
    assert pin.exists()
    getpgid_calls(0, 5)
    assert hits(pin_dir / "hits", program) >= stopped + 5
    again = PinnedProgram.open(pin, pin_dir / "not-pinned")  # by id: this test has CAP_SYS_ADMIN
    try:
        assert again.target == left.target and again.why_not_reattachable is None
    finally:
        again.close()


def test_an_iterator_link_is_not_attached_again(objects: Path, pin_dir: Path) -> None:
    pin = left_attached(objects, pin_dir, "dump_maps")
    left = PinnedProgram.open(pin, pin_dir / "prog-dump_maps")
    try:
        assert left.why_not_reattachable == "a iter link cannot be attached again by program fd"
    finally:
        left.close()
    assert pin.exists()  # opening and closing it left the pin alone
