"""BTF of a BPF object: where each ``const volatile`` global (load-time parameter) lives in .rodata;
and the running kernel's enums (``kernel_enum``), whose values differ between kernel versions.

BPF programs take load-time options as ``const volatile`` globals; clang places them in the
``.rodata`` section and describes them in BTF as a DATASEC of VARs. libbpf fixes the DATASEC's
offsets and sizes while opening the object, so after ``bpf_object__open`` the layout here is final.
Type records are read straight from libbpf's in-memory ``struct btf_type`` (include/uapi/linux/btf.h).
"""

from __future__ import annotations

import ctypes
import sys
from ctypes import Structure, c_int32, c_uint32
from dataclasses import dataclass

from otelbpf.kernel import libbpf as lb

# BTF_KIND_* (include/uapi/linux/btf.h)
KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM = 1, 2, 3, 4, 5, 6
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT = 8, 9, 10, 11
KIND_FUNC, KIND_VAR, KIND_DATASEC, KIND_FLOAT, KIND_TYPE_TAG, KIND_ENUM64 = 12, 14, 15, 16, 18, 19
_MODIFIERS = frozenset({KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG})

_VAR_GLOBAL_ALLOCATED = 1  # enum btf_func_linkage / BTF_VAR_GLOBAL_ALLOCATED

# BTF_INT_ENCODING bits
_INT_SIGNED, _INT_CHAR, _INT_BOOL = 1, 2, 4


class _BtfType(Structure):
    # `size` and `type` share one u32 (a union in the kernel header).
    _fields_ = [("name_off", c_uint32), ("info", c_uint32), ("size_or_type", c_uint32)]


class _BtfVarSecinfo(Structure):
    _fields_ = [("type", c_uint32), ("offset", c_uint32), ("size", c_uint32)]


class _BtfArray(Structure):
    _fields_ = [("type", c_uint32), ("index_type", c_uint32), ("nelems", c_uint32)]


class _BtfEnum(Structure):
    _fields_ = [("name_off", c_uint32), ("val", c_int32)]


class _BtfEnum64(Structure):
    _fields_ = [("name_off", c_uint32), ("val_lo32", c_uint32), ("val_hi32", c_uint32)]


@dataclass(frozen=True)
class RodataVar:
    """One ``const volatile`` global.

    ``kind``: "int" (incl. enums), "bool", "char_array" or "other" (structs, pointers, floats,
    other arrays: not settable as a parameter). ``type_name`` is the C type as written, e.g. "__u32".
    """

    name: str
    offset: int
    size: int
    kind: str
    signed: bool
    type_name: str

    def describe(self) -> str:
        if self.kind == "char_array":
            return f"char[{self.size}]"
        if self.kind == "int":
            return f"{self.type_name} ({'signed' if self.signed else 'unsigned'} {self.size * 8}-bit)"
        return self.type_name


class Btf:
    """A read-only view of a ``struct btf *`` owned by libbpf (not freed here)."""

    def __init__(self, ptr: int):
        self.ptr = ptr

    def _type(self, type_id: int) -> tuple[int, _BtfType]:
        addr = lb.check_ptr(lb.btf__type_by_id(self.ptr, type_id), f"btf__type_by_id({type_id})")
        return addr, _BtfType.from_address(addr)

    def name(self, name_off: int) -> str:
        raw = lb.btf__name_by_offset(self.ptr, name_off)
        return raw.decode() if raw else ""

    @staticmethod
    def kind(t: _BtfType) -> int:
        return (t.info >> 24) & 0x1F

    @staticmethod
    def vlen(t: _BtfType) -> int:
        return t.info & 0xFFFF

    def find(self, name: str, kind: int) -> int | None:
        ret = lb.btf__find_by_name_kind(self.ptr, name.encode(), kind)
        return ret if ret > 0 else None

    def resolve(self, type_id: int) -> tuple[int, _BtfType, str]:
        """Skip typedef/const/volatile/restrict/type_tag; return (address, type, first-named-type)."""
        first_name = ""
        while True:
            addr, t = self._type(type_id)
            if not first_name and t.name_off:
                first_name = self.name(t.name_off)
            if self.kind(t) not in _MODIFIERS:
                return addr, t, first_name
            type_id = t.size_or_type

    def enum_values(self, name: str) -> dict[int, str] | None:
        """Value → name of every member of ``enum name`` (32- or 64-bit), None without that enum.
        Where several names share a value, the first one declared is kept."""
        for kind in (KIND_ENUM, KIND_ENUM64):
            type_id = self.find(name, kind)
            if type_id is None:
                continue
            addr, t = self._type(type_id)
            signed = bool(t.info >> 31)  # kflag: a signed enum
            base = addr + ctypes.sizeof(_BtfType)
            out: dict[int, str] = {}
            for i in range(self.vlen(t)):
                if kind == KIND_ENUM:
                    member = _BtfEnum.from_address(base + i * ctypes.sizeof(_BtfEnum))
                    value = member.val if signed else member.val & 0xFFFFFFFF
                else:
                    member = _BtfEnum64.from_address(base + i * ctypes.sizeof(_BtfEnum64))
                    value = member.val_hi32 << 32 | member.val_lo32
                    if signed and value >> 63:
                        value -= 1 << 64
                out.setdefault(value, self.name(member.name_off))
            return out
        return None

    def rodata_vars(self, section: str = ".rodata") -> dict[str, RodataVar]:
        """Every VAR of the DATASEC ``section`` with its offset, size and parameter kind."""
        sec_id = self.find(section, KIND_DATASEC)
        if sec_id is None:
            return {}
        addr, sec = self._type(sec_id)
        infos = (_BtfVarSecinfo * self.vlen(sec)).from_address(addr + ctypes.sizeof(_BtfType))
        out: dict[str, RodataVar] = {}
        for info in infos:
            _, var = self._type(info.type)
            if self.kind(var) != KIND_VAR:
                continue
            # struct btf_var { __u32 linkage; } follows the type. Function-local statics (e.g. the
            # format strings of BPF_SEQ_PRINTF) are static; parameters are global variables.
            linkage = ctypes.c_uint32.from_address(
                lb.btf__type_by_id(self.ptr, info.type) + ctypes.sizeof(_BtfType)).value
            if linkage != _VAR_GLOBAL_ALLOCATED:
                continue
            name = self.name(var.name_off)
            out[name] = self._classify(name, var.size_or_type, info.offset, info.size)
        return out

    def _classify(self, name: str, type_id: int, offset: int, size: int) -> RodataVar:
        addr, t, type_name = self.resolve(type_id)
        kind = self.kind(t)
        if kind == KIND_INT:
            enc = ctypes.c_uint32.from_address(addr + ctypes.sizeof(_BtfType)).value
            encoding = (enc >> 24) & 0x0F
            if encoding & _INT_BOOL:
                return RodataVar(name, offset, size, "bool", False, type_name or "bool")
            return RodataVar(name, offset, size, "int", bool(encoding & _INT_SIGNED), type_name)
        if kind in (KIND_ENUM, KIND_ENUM64):
            # kflag (bit 31 of info) marks a signed enum (kernel 6.0+ BTF; older: unsigned).
            return RodataVar(name, offset, size, "int", bool(t.info >> 31), type_name or "enum")
        if kind == KIND_ARRAY:
            arr = _BtfArray.from_address(addr + ctypes.sizeof(_BtfType))
            elem_addr, elem, elem_name = self.resolve(arr.type)
            if self.kind(elem) == KIND_INT and elem.size_or_type == 1:
                enc = ctypes.c_uint32.from_address(elem_addr + ctypes.sizeof(_BtfType)).value
                # `char` has the CHAR encoding bit; `signed char`/`__u8` arrays are byte arrays too.
                if (enc >> 24) & (_INT_CHAR | _INT_SIGNED) or elem_name == "char":
                    return RodataVar(name, offset, size, "char_array", False, f"char[{arr.nelems}]")
            return RodataVar(name, offset, size, "other", False, f"{elem_name or 'array'}[{arr.nelems}]")
        return RodataVar(name, offset, size, "other", False, type_name or f"btf kind {kind}")


def kernel_enum(name: str) -> dict[int, str] | None:
    """``enum name`` of the running kernel's BTF (/sys/kernel/btf/vmlinux): value → member name.
    None when the kernel has no such enum or no BTF."""
    ptr = lb.btf__load_vmlinux_btf()
    if not ptr:
        return None
    try:
        return Btf(ptr).enum_values(name)
    finally:
        lb.btf__free(ptr)


def encode_parameter(var: RodataVar, value: int | bool | str) -> bytes:
    """The bytes to store for ``var = value``; ValueError saying what would fit."""
    where = f"parameter '{var.name}' ({var.describe()})"
    if var.kind == "bool":
        if not isinstance(value, bool):
            if isinstance(value, int) and value in (0, 1):
                value = bool(value)
            else:
                raise ValueError(f"{where}: expected true or false, got {value!r}")
        return bytes([int(value)]).ljust(var.size, b"\0")
    if var.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        bits = var.size * 8
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if var.signed else (0, (1 << bits) - 1)
        if not lo <= value <= hi:
            raise ValueError(f"{where}: {value} is out of range [{lo}, {hi}]")
        return value.to_bytes(var.size, sys.byteorder, signed=var.signed)  # BPF runs in host byte order
    if var.kind == "char_array":
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        raw = value.encode()
        # Keep one byte for the NUL terminator the BPF side relies on.
        if len(raw) >= var.size:
            raise ValueError(
                f"{where}: {value!r} is {len(raw)} bytes, at most {var.size - 1} fit (one byte is the NUL terminator)"
            )
        return raw.ljust(var.size, b"\0")
    raise ValueError(f"{where}: only integers, bools and char arrays can be set as parameters")


__all__ = ["Btf", "RodataVar", "encode_parameter", "kernel_enum"]
