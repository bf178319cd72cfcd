"""Table-driven tests of every decoder: bytes in, bytes (or None: series dropped) out."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import MappingProxyType

import pytest

from otelbpf import decoders
from otelbpf.config.program import DecoderConfig
from otelbpf.decoders import cgroup, ksym
from otelbpf.decoders.majorminor import MajorMinorDecoder


def build(name: str, **options) -> decoders.Decoder:
    return decoders.build(DecoderConfig(name, MappingProxyType(options)))


def u32(n: int) -> bytes:
    return n.to_bytes(4, "little")


def u64(n: int) -> bytes:
    return n.to_bytes(8, "little")


CASES = [
    # (decoder, options, input, expected)
    ("uint", {}, u32(7), b"7"),
    ("uint", {}, u64(2**64 - 1), b"18446744073709551615"),
    ("uint", {}, b"\x01", b"1"),
    ("uint", {}, b"", b"0"),
    ("int", {}, u32(2**32 - 22), b"-22"),
    ("int", {}, b"\x05\x00", b"5"),
    ("hex", {}, b"\x00\xab\x10", b"00ab10"),
    ("hex", {}, b"", b""),
    ("string", {}, b"bash\0\0\0\0", b"bash"),
    ("string", {}, b"no-nul", b"no-nul"),
    ("string", {}, b"\0junk", b""),
    ("static_map", {"static_map": {"1": "read", "2": "write"}}, b"1", b"read"),
    ("static_map", {"static_map": {"1": "read"}}, b"9", None),
    ("static_map", {"static_map": {"1": "read"}, "allow_unknown": True}, b"9", b"9"),
    ("regexp", {"regexps": ["^ssh", "nginx$"]}, b"sshd", b"sshd"),
    ("regexp", {"regexps": ["^ssh", "nginx$"]}, b"my-nginx", b"my-nginx"),
    ("regexp", {"regexps": ["^ssh"]}, b"bash", None),
    ("regexp", {"regexps": ["^ssh"]}, b"\xffssh", None),
    ("syscall", {"arch": "x86_64"}, b"59", b"execve"),
    ("syscall", {"arch": "x86_64"}, u64(0), b"read"),
    ("syscall", {"arch": "x86_64"}, u64(321), b"bpf"),
    ("syscall", {"arch": "x86_64"}, b"469", b"file_setattr"),
    ("syscall", {"arch": "arm64"}, b"221", b"execve"),
    ("syscall", {"arch": "arm64"}, b"280", b"bpf"),
    ("syscall", {"arch": "aarch64"}, b"63", b"read"),
    ("syscall", {"arch": "x86_64"}, b"100000", b"unknown:100000"),
    ("syscall", {"arch": "arm64"}, u64(2**64 - 1), b"unknown:18446744073709551615"),
    ("errno", {}, b"22", b"EINVAL"),
    ("errno", {}, b"-2", b"ENOENT"),
    ("errno", {}, u32(2**32 - 13), b"EACCES"),
    ("errno", {}, b"18446744073709551615", b"EPERM"),
    ("errno", {}, b"0", b"0"),
    ("errno", {}, b"99999", b"99999"),
    ("errno", {"negative": False}, b"22", b"EINVAL"),
    ("errno", {"negative": False}, b"-2", b"-2"),
    ("errno", {"negative": False}, u32(2**32 - 13), b"4294967283"),
    ("inet_ip", {}, bytes([10, 0, 0, 1]), b"10.0.0.1"),
    ("inet_ip", {}, bytes(15) + b"\x01", b"::1"),
    ("inet_ip", {}, bytes(10) + b"\xff\xff" + bytes([192, 168, 1, 2]), b"::ffff:192.168.1.2"),
    ("inet_ip", {}, b"\x01\x02\x03", b"010203"),
    ("dname", {}, b"\x03www\x07example\x03com\x00", b"www.example.com"),
    ("dname", {}, b"\x00", b"."),
    ("dname", {}, b"", b"."),
    ("dname", {}, b"\x03a.b\x00", b"a\\046b"),
    ("dname", {}, b"\x03www\x10short", b"www"),  # length runs past the end
    ("dname", {}, b"\x03www\xc0\x0c", b"www"),  # compression pointer
    ("dname", {}, b"\x02\x00\xff\x00", b"\\000\\255"),
    ("ifname", {}, b"999999", b"999999"),
    ("ifname", {}, u64(2**64 - 1), b"18446744073709551615"),
    ("cgroup", {}, b"18446744073709551614", b"18446744073709551614"),
]


@pytest.mark.parametrize("name,options,raw,expected", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_decoder(name, options, raw, expected):
    assert build(name, **options).decode(raw) == expected


def test_ifname_loopback():
    index = socket.if_nametoindex("lo")
    assert build("ifname").decode(str(index).encode()) == b"lo"
    assert build("ifname").decode(u32(index)) == b"lo"


FAKE_KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff81000100 T do_one
ffffffff81000200 t helper_two
ffffffff81000300 D some_data
ffffffff81000400 T vfs_read
ffffffffc0000000 t mod_func\t[mymod]
0000000000000000 A fixed_percpu_data
"""


@pytest.fixture
def fake_symbols(monkeypatch):
    monkeypatch.setattr(ksym, "_symbols", ksym.KernelSymbols.parse(FAKE_KALLSYMS))


@pytest.mark.parametrize("raw,expected", [
    (u64(0xFFFFFFFF81000100), b"do_one"),
    (u64(0xFFFFFFFF81000150), b"do_one"),
    (u64(0xFFFFFFFF81000350), b"helper_two"),  # data symbols are not functions
    (str(0xFFFFFFFF81000400).encode(), b"vfs_read"),
    (u64(0xFFFFFFFFC0000010), b"mod_func"),
    (u64(0x1000), b"0x1000"),
    (u64(0xFFFFFFFF91000000), b"0xffffffff91000000"),  # far past any symbol
    (b"", b"0x0"),
])
def test_ksym(fake_symbols, raw, expected):
    assert build("ksym").decode(raw) == expected


@pytest.mark.parametrize("raw,expected", [
    (u64(0xFFFFFFFF81000100) + u64(0xFFFFFFFF81000410) + u64(0) + u64(0xFFFFFFFF81000200),
     b"do_one;vfs_read"),
    (u64(0), b""),
    (u64(0xFFFFFFFF81000100) + b"\x01\x02", b"do_one"),  # trailing partial frame ignored
    (u64(0x42), b"0x42"),
])
def test_kstack(fake_symbols, raw, expected):
    assert build("kstack").decode(raw) == expected


def test_ksym_real_kallsyms():
    symbols = ksym.KernelSymbols.load()
    if not symbols.addresses:
        pytest.skip("/proc/kallsyms shows no addresses (kptr_restrict or not root)")
    index = symbols.names.index(b"vfs_read") if b"vfs_read" in symbols.names else 0
    assert symbols.lookup(symbols.addresses[index] + 1) == symbols.names[index]


def test_majorminor(tmp_path, monkeypatch):
    (tmp_path / "8:16").mkdir()
    (tmp_path / "8:16" / "uevent").write_text("MAJOR=8\nMINOR=16\nDEVNAME=sdb\nDEVTYPE=disk\n")
    monkeypatch.setattr(MajorMinorDecoder, "root", tmp_path)
    decoder = build("majorminor")
    dev = (8 << 20) | 16
    assert decoder.decode(str(dev).encode()) == b"sdb"
    assert decoder.decode(u32(dev)) == b"sdb"
    assert decoder.decode(u32((259 << 20) | 3)) == b"259:3"


def test_cgroup_walk(tmp_path):
    (tmp_path / "system.slice" / "sshd.service").mkdir(parents=True)
    decoder = cgroup.CgroupDecoder({}, root=tmp_path)
    inode = os.stat(tmp_path / "system.slice" / "sshd.service").st_ino
    assert decoder.decode(str(inode).encode()) == b"/system.slice/sshd.service"
    assert decoder.decode(u64(os.stat(tmp_path).st_ino)) == b"/"
    assert decoder.decode(b"123456789123") == b"123456789123"


def test_cgroup2_mount_from_mountinfo(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "30 24 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
        "35 30 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n")
    assert cgroup.cgroup2_mount(mountinfo) == Path("/sys/fs/cgroup/unified")
    mountinfo.write_text("30 24 0:26 / /proc rw - proc proc rw\n")
    assert cgroup.cgroup2_mount(mountinfo) is None


def test_cgroup_real_root():
    root = cgroup.cgroup2_mount()
    if root is None:
        pytest.skip("no cgroup2 filesystem mounted")
    assert build("cgroup").decode(str(os.stat(root).st_ino).encode()) == b"/"


BAD_OPTIONS = [
    ("uint", {"size": 4}, "has no option"),
    ("static_map", {}, "non-empty table"),
    ("static_map", {"static_map": {"1": 5}}, "must be a string"),
    ("errno", {"negative": "no"}, "negative must be true or false"),
    ("static_map", {"static_map": {"1": "a"}, "allow_unknown": "yes"}, "true or false"),
    ("static_map", {"static_map": {"1": "a"}, "allow_unknwon": True}, 'did you mean "allow_unknown"'),
    ("regexp", {"regexps": "^x"}, "non-empty array"),
    ("regexp", {"regexps": ["("]}, "invalid regexp"),
    ("regexp", {"regexps": [1]}, "must be strings"),
    ("syscall", {"arch": "mips"}, "no syscall table"),
    ("nope", {}, "unknown decoder"),
]


@pytest.mark.parametrize("name,options,message", BAD_OPTIONS)
def test_bad_options(name, options, message):
    with pytest.raises(ValueError, match=message):
        build(name, **options)


def test_chain_runs_left_to_right_and_stops_at_none():
    chain = decoders.build_chain([
        DecoderConfig("uint"),
        DecoderConfig("static_map", MappingProxyType({"static_map": {"1": "one"}})),
    ])
    assert chain(b"\x01") == b"one"
    assert chain(b"\x02") is None
    assert decoders.build_chain([])(b"raw") == b"raw"


def test_registry():
    assert {"uint", "syscall", "kstack", "cgroup", "dname"} <= set(decoders.names())
    assert decoders.get("uint").name == "uint"
    with pytest.raises(KeyError, match='did you mean "uint"'):
        decoders.get("unit")
    with pytest.raises(ValueError, match="already registered"):
        @decoders.register
        class Duplicate(decoders.Decoder):
            name = "uint"


def test_label_value_replaces_invalid_utf8():
    assert decoders.label_value(b"ok\xff") == "ok\ufffd"


def test_syscall_tables_are_consistent():
    from otelbpf.decoders.syscall import ARCHITECTURES, syscall_table

    for arch in ARCHITECTURES:
        table = syscall_table(arch)
        assert len(table) > 300
        assert len(set(table.values())) == len(table), f"{arch}: duplicate names"
        for name in (b"read", b"write", b"openat", b"close", b"bpf", b"execve", b"clone3"):
            assert name in table.values(), (arch, name)


def test_syscall_table_matches_tracefs():
    """Every syscall the running kernel traces (sys_enter_NAME) has a number in our table."""
    events = Path("/sys/kernel/tracing/events/syscalls")
    if not events.is_dir():
        pytest.skip("tracefs is not mounted at /sys/kernel/tracing")
    import platform

    from otelbpf.decoders.syscall import syscall_table

    arch = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine())
    if arch is None:
        pytest.skip("no syscall table for this architecture")
    names = {n.decode() for n in syscall_table(arch).values()}
    traced = {p.name.removeprefix("sys_enter_") for p in events.glob("sys_enter_*")}
    # Names tracefs spells differently from the syscall table (aliases and compat entries).
    missing = traced - names - {"newuname", "newstat", "newlstat", "newfstat", "newfstatat",
                                "sendfile64", "mmap_pgoff", "sigsuspend", "uselib", "olduname",
                                "uname", "mmap", "ni_syscall", "lookup_dcookie", "umount"}
    assert not missing, f"traced syscalls absent from syscalls-{arch}.tsv: {sorted(missing)}"


needs_btf = pytest.mark.skipif(not Path("/sys/kernel/btf/vmlinux").exists(),
                               reason="the running kernel exposes no BTF (/sys/kernel/btf/vmlinux)")


@needs_btf
def test_kernel_enum_names_values_from_the_running_kernel():
    """enum bpf_map_type is uapi: its numbers are fixed, so the expected names are known."""
    plain = build("kernel_enum", enum="bpf_map_type")
    assert plain.decode(u32(1)) == b"BPF_MAP_TYPE_HASH" and plain.decode(b"2") == b"BPF_MAP_TYPE_ARRAY"
    short = build("kernel_enum", enum="bpf_map_type", strip_prefix="BPF_MAP_TYPE_", lowercase=True,
                  unknown_prefix="unknown:")
    assert short.decode(u32(6)) == b"percpu_array" and short.decode(u32(27)) == b"ringbuf"
    assert short.decode(u32(100000)) == b"unknown:100000"
    assert plain.decode(u32(100000)) == b"100000"


@needs_btf
def test_kernel_enum_reads_64_bit_enums():
    """enum perf_callchain_context (uapi) holds (__u64)-128 for PERF_CONTEXT_KERNEL: a 64-bit
    BTF enum where pahole emits one."""
    from otelbpf.kernel.btf import kernel_enum
    if kernel_enum("perf_callchain_context") is None:
        pytest.skip("this kernel's BTF has no enum perf_callchain_context")
    decoder = build("kernel_enum", enum="perf_callchain_context")
    assert decoder.decode(u64((1 << 64) - 128)) == b"PERF_CONTEXT_KERNEL"
    assert decoder.decode(u64((1 << 64) - 512)) == b"PERF_CONTEXT_USER"


@needs_btf
@pytest.mark.parametrize("options,message", [
    ({}, 'needs enum = "<C enum name>"'),
    ({"enum": "no_such_enum_anywhere"}, "has no enum no_such_enum_anywhere"),
    ({"enum": "bpf_map_type", "lowercase": "yes"}, "lowercase must be true or false"),
    ({"enum": "bpf_map_type", "strip_prefix": 1}, "strip_prefix must be a string"),
    ({"enum": "bpf_map_type", "prefix": "X"}, 'did you mean "strip_prefix"'),
])
def test_kernel_enum_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        build("kernel_enum", **options)


def test_irq_names_what_sysfs_lists_and_leaves_other_numbers():
    from otelbpf.decoders.irq import SYS_IRQ
    decoder = build("irq", unknown_prefix="irq:")
    assert not (SYS_IRQ / "99999").exists()
    assert decoder.decode(u32(99999)) == b"irq:99999"
    named = [p for p in SYS_IRQ.glob("*") if (p / "actions").read_text().strip()] if SYS_IRQ.is_dir() else []
    if not named:
        pytest.skip("no interrupt with a handler in /sys/kernel/irq")
    irq = named[0]
    assert decoder.decode(u32(int(irq.name))) == (irq / "actions").read_text().strip().encode()
    assert decoder.decode(irq.name.encode()) == (irq / "actions").read_text().strip().encode()


class Table:
    """A program map keyed by u32 slot, holding each slot's owner (u64)."""

    key_size = 4

    def __init__(self, owners: dict[int, int]):
        self.owners = owners

    def lookup(self, key: bytes) -> bytes | None:
        owner = self.owners.get(int.from_bytes(key, "little"))
        return None if owner is None else u64(owner)


def test_lookup_hands_the_value_of_the_label_bytes_to_the_next_decoder():
    chain = decoders.build_chain([DecoderConfig("lookup", MappingProxyType({"map": "owners"})),
                                  DecoderConfig("hex", MappingProxyType({}))])
    chain.bind({"owners": Table({1: 0xFFFFFFFF81000000, 2: 0})})
    assert chain(u32(1)) == b"00000081ffffffff"
    assert chain(u32(2)) == b"0000000000000000"
    assert chain(u32(3)) is None  # not in the map: the series is dropped
    assert chain(u64(1)) is None  # not a key of that map
    assert not chain.stable  # the map's contents change: label caches look keys up again


def test_lookup_needs_its_map_by_name():
    with pytest.raises(ValueError, match='needs map = "NAME"'):
        build("lookup")
    decoder = build("lookup", map="owners")
    with pytest.raises(ValueError, match='the program has no map "owners"'):
        decoder.bind({"other": Table({})})
    with pytest.raises(ValueError, match='no map "owners"'):
        decoder.bind(None)
