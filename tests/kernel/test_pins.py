"""Pinned maps: counts survive close + reopen; an incompatible pin is replaced, never reused."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from kernel_triggers import getpgid_calls

from otelbpf.kernel import BpfMap, BpfObject

pytestmark = pytest.mark.kernel

KEY = struct.pack("I", 5)


def run_once(objects: Path, name: str, pin: Path, calls: int) -> tuple[BpfObject, dict[str, str]]:
    obj = BpfObject.open(objects / name, parameters={"target_tgid": os.getpid()},
                         pin_maps={"pinned_counts": pin})
    obj.load()
    obj.attach("count_getpgid")
    getpgid_calls(5, calls)
    return obj, dict(obj.pin_states)


def count(obj: BpfObject, name: str) -> int:
    raw = obj.maps[name].lookup(KEY)
    return 0 if raw is None else struct.unpack_from("Q", raw)[0]


def test_counts_survive_reopen(objects: Path, pin_dir: Path) -> None:
    pin = pin_dir / "nested" / "pinned_counts"
    obj, states = run_once(objects, "kernel_pins.bpf.o", pin, 3)
    assert states == {"pinned_counts": "created"}
    first_id = obj.maps["pinned_counts"].id
    obj.close()
    assert pin.exists()  # the pin keeps the map alive without us

    obj, states = run_once(objects, "kernel_pins.bpf.o", pin, 2)
    try:
        assert states == {"pinned_counts": "reused"}
        assert obj.maps["pinned_counts"].id == first_id
        assert count(obj, "pinned_counts") == 5
        assert count(obj, "fresh_counts") == 2  # not pinned: starts from zero
    finally:
        obj.close()
    with BpfMap.from_pin(pin) as m:
        assert m.id == first_id and struct.unpack("Q", m.lookup(KEY))[0] == 5


def test_incompatible_pin_is_replaced(objects: Path, pin_dir: Path) -> None:
    pin = pin_dir / "pinned_counts"
    obj, _ = run_once(objects, "kernel_pins.bpf.o", pin, 4)
    old_id = obj.maps["pinned_counts"].id
    obj.close()

    obj, states = run_once(objects, "kernel_pins_v2.bpf.o", pin, 1)
    try:
        assert states == {"pinned_counts": "replaced: value_size 8 -> 16"}
        assert obj.maps["pinned_counts"].id != old_id and obj.maps["pinned_counts"].value_size == 16
        assert count(obj, "pinned_counts") == 1  # a fresh map, not the old counts
        new_id = obj.maps["pinned_counts"].id
    finally:
        obj.close()
    with BpfMap.from_pin(pin) as m:
        assert m.id == new_id

    obj, states = run_once(objects, "kernel_pins.bpf.o", pin, 0)
    obj.close()
    assert states == {"pinned_counts": "replaced: value_size 16 -> 8"}


def test_pin_that_is_not_a_map_is_replaced(objects: Path, pin_dir: Path) -> None:
    pin = pin_dir / "pinned_counts"
    with BpfObject.open(objects / "kernel_pins.bpf.o") as other:
        other.load()
        other.attach("count_getpgid").pin(pin)  # a link where the map pin should be
    obj, states = run_once(objects, "kernel_pins.bpf.o", pin, 1)
    obj.close()
    assert states == {"pinned_counts": "replaced: the pinned object is not a map"}


def test_unknown_pin_map_is_rejected(objects: Path, pin_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot pin unknown map\(s\) nope; maps: fresh_counts, pinned_counts"):
        BpfObject.open(objects / "kernel_pins.bpf.o", pin_maps={"nope": pin_dir / "nope"})


def test_a_map_read_with_another_is_kept_only_with_it(objects: Path, pin_dir: Path) -> None:
    """Counts by slot and the table of what the slots mean (decoder "lookup") are reused
    together: a table that starts empty takes the counts with it; counts that start empty keep
    the table (slots that still mean the same, counted from zero)."""
    pins = {"pinned_counts": pin_dir / "pinned_counts", "fresh_counts": pin_dir / "fresh_counts"}

    def run(calls: int, fresh: dict[str, str] | None = None) -> dict[str, str]:
        obj = BpfObject.open(objects / "kernel_pins.bpf.o", parameters={"target_tgid": os.getpid()})
        try:
            obj.set_pin_paths(pins, fresh, together={"pinned_counts": ("fresh_counts",)})
            obj.load()
            obj.attach("count_getpgid")
            getpgid_calls(5, calls)
            return {**obj.pin_states, "counts": count(obj, "pinned_counts"), "table": count(obj, "fresh_counts")}
        finally:
            obj.close()

    assert run(3) == {"pinned_counts": "created", "fresh_counts": "created", "counts": 3, "table": 3}
    assert run(2) == {"pinned_counts": "reused", "fresh_counts": "reused", "counts": 5, "table": 5}
    os.unlink(pins["fresh_counts"])
    assert run(1) == {"pinned_counts": 'replaced: map "fresh_counts" it is read with starts empty',
                      "fresh_counts": "created", "counts": 1, "table": 1}
    assert run(1, fresh={"pinned_counts": "its layout changed"}) == {
        "pinned_counts": "replaced: its layout changed", "fresh_counts": "reused", "counts": 1, "table": 2}


def test_maps_kept_together_are_pinned(objects: Path, pin_dir: Path) -> None:
    with BpfObject.open(objects / "kernel_pins.bpf.o") as obj, \
            pytest.raises(ValueError, match="maps kept together must be pinned too: fresh_counts"):
        obj.set_pin_paths({"pinned_counts": pin_dir / "pinned_counts"},
                          together={"pinned_counts": ("fresh_counts",)})
