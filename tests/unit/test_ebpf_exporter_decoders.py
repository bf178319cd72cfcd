"""Golden tests: each decoder, configured the way an ebpf_exporter YAML configures it, gives the
output ebpf_exporter's documentation (README "Decoders" and its decoder tests) specifies."""

from __future__ import annotations

import socket
from pathlib import Path
from types import MappingProxyType

import pytest

from otelbpf import decoders
from otelbpf.config.ebpf_exporter import native_decoder
from otelbpf.config.program import DecoderConfig
from otelbpf.decoders import cgroup, pci

PCI_IDS = Path("/usr/share/misc/pci.ids")


def chain(*yaml_decoders: dict) -> decoders.DecoderChain:
    """The decoder chain an ebpf_exporter label with these `decoders:` entries gets."""
    configs = []
    for d in yaml_decoders:
        native = native_decoder(d)
        name = native.pop("name")
        configs.append(DecoderConfig(name, MappingProxyType(native)))
    return decoders.build_chain(configs)


def u32(n: int) -> bytes:
    return n.to_bytes(4, "little")


UINT = {"name": "uint"}

GOLDEN = [
    # README uint: "0xe -> 14"
    ((UINT,), bytes([0x0e]), b"14"),
    ((UINT,), u32(14), b"14"),
    # README static_map: 1 → read, 2 → write, 3 → unknown:3; with allow_unknown 3 → 3
    ((UINT, {"name": "static_map", "static_map": {1: "read", 2: "write"}}), u32(1), b"read"),
    ((UINT, {"name": "static_map", "static_map": {1: "read", 2: "write"}}), u32(2), b"write"),
    ((UINT, {"name": "static_map", "static_map": {1: "read", 2: "write"}}), u32(3), b"unknown:3"),
    ((UINT, {"name": "static_map", "allow_unknown": True, "static_map": {1: "read", 2: "write"}}),
     u32(3), b"3"),
    # README regexp: the first sub-match when present, else the match; no match drops the set
    (({"name": "string"}, {"name": "regexp", "regexps": ["^(kswapd).*$", "^systemd-journal$",
                                                         "^syslog-ng$"]}),
     b"kswapd0\0\0\0", b"kswapd"),
    (({"name": "string"}, {"name": "regexp", "regexps": ["^(kswapd).*$", "^systemd-journal$"]}),
     b"systemd-journal\0", b"systemd-journal"),
    (({"name": "string"}, {"name": "regexp", "regexps": ["^(kswapd).*$", "^syslog-ng$"]}),
     b"bash\0", None),
    # README string: possibly NUL-terminated → the text before the NUL
    (({"name": "string"},), b"nginx\0\0\0", b"nginx"),
    # README dname: \x07example\x03com\x00 → example.com (used after string)
    (({"name": "dname"},), b"\x07example\x03com\x00", b"example.com"),
    # README errno: → EPIPE (after uint); decoder/errno.go: unknown:<n> for numbers without a name
    ((UINT, {"name": "errno"}), u32(32), b"EPIPE"),
    ((UINT, {"name": "errno"}), u32(0), b"unknown:0"),
    ((UINT, {"name": "errno"}), u32(9999), b"unknown:9999"),
    # unix.ErrnoName (Go's table) names 35 EDEADLK (Python: EDEADLOCK) and knows 133
    ((UINT, {"name": "errno"}), u32(35), b"EDEADLK"),
    ((UINT, {"name": "errno"}), u32(133), b"EHWPOISON"),
    # decoder/errno.go names the unsigned number: -22 in a u32 (4294967274) has no name
    ((UINT, {"name": "errno"}), u32(2**32 - 22), b"unknown:4294967274"),
    ((UINT, {"name": "errno"}), (2**64 - 22).to_bytes(8, "little"), b"unknown:18446744073709551594"),
    # README hex: bytes → their hex
    (({"name": "hex"},), b"\xde\xad\xbe\xef", b"deadbeef"),
    # README inet_ip: → 1.1.1.1
    (({"name": "inet_ip"},), bytes([1, 1, 1, 1]), b"1.1.1.1"),
    # README syscall: syscall number → name
    ((UINT, {"name": "syscall"}), u32(0), b"read"),
]


@pytest.mark.parametrize("yaml_decoders,raw,expected", GOLDEN)
def test_documented_outputs(yaml_decoders, raw, expected):
    assert chain(*yaml_decoders)(raw) == expected


def test_ifname_loopback():
    """README ifname: index → name like eth0; decoder/ifname.go: unknown:<index> otherwise."""
    index = socket.if_nametoindex("lo")
    assert chain({"name": "ifname"})(u32(index)) == b"lo"
    unused = max(i for i, _ in socket.if_nameindex()) + 1000
    assert chain({"name": "ifname"})(u32(unused)) == f"unknown:{unused}".encode()


def test_majorminor_reads_ebpf_exporters_device_numbers(tmp_path, monkeypatch):
    """README majorminor: the device name in /dev. ebpf_exporter's examples store
    MKDEV(ma, mi) = (mi & 0xff) | (ma << 8) | ((mi & ~0xff) << 12) and its decoder reads the
    raw u32 with the user-space major()/minor(); unknown devices read unknown:MAJ:MIN."""
    from otelbpf.decoders.majorminor import MajorMinorDecoder

    (tmp_path / "259:300").mkdir()
    (tmp_path / "259:300" / "uevent").write_text("MAJOR=259\nMINOR=300\nDEVNAME=nvme1n1\n")
    monkeypatch.setattr(MajorMinorDecoder, "root", tmp_path)

    def mkdev(major: int, minor: int) -> int:
        return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)
    decoder = chain({"name": "majorminor"})
    assert decoder(u32(mkdev(259, 300))) == b"nvme1n1"
    assert decoder(u32(mkdev(8, 17))) == b"unknown:8:17"


def test_cgroup_is_the_absolute_path(tmp_path):
    """README cgroup: /sys/fs/cgroup/system.slice/ssh.service — the path including the mount."""
    (tmp_path / "system.slice" / "ssh.service").mkdir(parents=True)
    native = native_decoder({"name": "cgroup"})
    native.pop("name")
    decoder = cgroup.CgroupDecoder(native, root=tmp_path)
    inode = (tmp_path / "system.slice" / "ssh.service").stat().st_ino
    assert decoder.decode(str(inode).encode()) == f"{tmp_path}/system.slice/ssh.service".encode()
    assert decoder.decode(b"1") == b"unknown_cgroup_id:1"


# ebpf_exporter's decoder/pci_*_test.go cases (input is uint's decimal text)
PCI_GOLDEN = [
    ("pci_vendor", b"32902", b"Intel Corporation"),
    ("pci_vendor", b"4318", b"NVIDIA Corporation"),
    ("pci_vendor", b"48879", b"unknown pci vendor: 0xbeef"),
    ("pci_device", b"2156269568", b"82542 Gigabit Ethernet Controller (Fiber)"),
    ("pci_device", b"364056607", b"MT2894 Family [ConnectX-6 Lx]"),
    ("pci_device", b"3735928559", b"unknown pci device: 0xdeadbeef"),
    ("pci_class", b"1", b"Mass storage controller"),
    ("pci_class", b"2", b"Network controller"),
    ("pci_class", b"253", b"unknown pci class: 0xfd"),
    ("pci_subclass", b"512", b"Ethernet controller"),
    ("pci_subclass", b"1540", b"PCI bridge"),
    ("pci_subclass", b"64768", b"unknown pci class: 0xfd"),
    ("pci_subclass", b"267", b"unknown pci subclass: 0x0b (class 0x01)"),
]


@pytest.mark.skipif(not PCI_IDS.is_file(), reason="no /usr/share/misc/pci.ids (Debian package pci.ids)")
@pytest.mark.parametrize("name,raw,expected", PCI_GOLDEN)
def test_pci_documented_outputs(name, raw, expected):
    assert chain({"name": name})(raw) == expected


def test_pci_ids_parse_and_missing_database(tmp_path, monkeypatch, caplog):
    text = ("# comment\n8086  Intel Corporation\n\t1000  82542 Gigabit\n\t\t8086 1000  sub\n"
            "C 02  Network controller\n\t00  Ethernet controller\n\t\t00  prog-if\n")
    ids = pci.PciIds.parse(text)
    assert ids.vendors == {"8086": "Intel Corporation"}
    assert ids.devices == {"80861000": "82542 Gigabit"}
    assert ids.classes == {"02": "Network controller"}
    assert ids.subclasses == {"0200": "Ethernet controller"}
    # Without any database: the raw id, and one warning for all lookups.
    monkeypatch.setattr(pci, "PCI_IDS_PATHS", (tmp_path / "none",))
    monkeypatch.setattr(pci, "_loaded", False)
    monkeypatch.setattr(pci, "_database", None)  # restored afterwards for later tests
    vendor = chain({"name": "pci_vendor"})
    assert vendor(b"32902") == b"0x8086" and vendor(b"4318") == b"0x10de"
    assert chain({"name": "pci_subclass"})(b"512") == b"0x0200"
    warnings = [r.getMessage() for r in caplog.records if r.name == pci.__name__]
    assert len(warnings) == 1 and "pci.ids" in warnings[0], warnings
