"""Load-time parameters (const volatile globals) set by name, checked against BTF, seen by the program."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from otelbpf.kernel import BpfObject

pytestmark = pytest.mark.kernel

# struct observed in kernel_params.bpf.c
OBSERVED = struct.Struct("=IiQqBBH16s")


def run_and_observe(objects: Path, **parameters) -> tuple:
    with BpfObject.open(objects / "kernel_params.bpf.o", parameters=parameters) as obj:
        obj.load()
        assert obj.programs["report_params"].test_run() == 0
        raw = obj.maps["observed"].lookup(b"\0" * 4)
        return OBSERVED.unpack(raw[: OBSERVED.size])


def test_defaults_when_not_set(objects: Path) -> None:
    assert run_and_observe(objects) == (1, -3, 2, -5, 4, 0, 80, b"default".ljust(16, b"\0"))


def test_every_kind_is_observed_by_the_program(objects: Path) -> None:
    got = run_and_observe(
        objects, p_u32=0xFFFFFFFF, p_u64=2**64 - 1, p_s32=-(2**31), p_u8=255, p_s64=-(2**63),
        p_bool=True, p_name="fifteen-chars!!", p_port=8080,
    )
    assert got == (0xFFFFFFFF, -(2**31), 2**64 - 1, -(2**63), 255, 1, 8080, b"fifteen-chars!!\0")


def test_layout_from_btf(objects: Path) -> None:
    with BpfObject.open(objects / "kernel_params.bpf.o") as obj:
        v = obj.rodata
        assert (v["p_u32"].size, v["p_u32"].signed, v["p_u32"].kind) == (4, False, "int")
        assert (v["p_s32"].size, v["p_s32"].signed) == (4, True)
        assert (v["p_s64"].size, v["p_s64"].signed) == (8, True)
        assert v["p_bool"].kind == "bool" and v["p_name"].kind == "char_array" and v["p_name"].size == 16
        assert v["p_port"].kind == "int" and v["p_port"].size == 2 and v["p_port"].type_name == "port_t"
        assert len({x.offset for x in v.values()}) == len(v)


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"p_nope": 1}, r"unknown parameter\(s\) p_nope; .*p_u32: __u32 \(unsigned 32-bit\)"),
        ({"p_u32": -1}, r"parameter 'p_u32' \(__u32 \(unsigned 32-bit\)\): -1 is out of range \[0, 4294967295\]"),
        ({"p_u8": 256}, r"256 is out of range \[0, 255\]"),
        ({"p_s32": 2**31}, r"out of range \[-2147483648, 2147483647\]"),
        ({"p_u64": "10"}, r"expected an integer, got '10'"),
        ({"p_u32": True}, r"expected an integer, got True"),
        ({"p_bool": 2}, r"expected true or false, got 2"),
        ({"p_name": "sixteen-chars!!!"}, r"'sixteen-chars!!!' is 16 bytes, at most 15 fit"),
        ({"p_name": 5}, r"expected a string"),
    ],
)
def test_bad_parameters_are_rejected_with_the_fix(objects: Path, parameters: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BpfObject.open(objects / "kernel_params.bpf.o", parameters=parameters)
