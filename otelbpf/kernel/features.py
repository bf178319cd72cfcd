"""What this kernel supports, probed cheaply and without lasting side effects.

Each probe answers (present, reason); the reason says why a feature is missing so that
`otelbpf check` and attach errors can tell the user what to change.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.maps import MapType

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
KPROBE_PMU = Path("/sys/bus/event_source/devices/kprobe/type")
TRACEFS_ROOTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))

BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_FENTRY = 24
_BTF_KIND_STRUCT, _BTF_KIND_FUNC = 4, 12


@dataclass(frozen=True)
class KernelFeatures:
    kprobe: bool
    fentry: bool
    ringbuf: bool
    batch_ops: bool
    iter_bpf_map: bool
    kfunc_map_sum_elem_count: bool
    enable_stats: bool
    reasons: dict[str, str] = field(default_factory=dict, compare=False)
    """Why each missing feature is missing (only keys of features that are False)."""

    def as_dict(self) -> dict[str, tuple[bool, str]]:
        """{feature: (present, reason)} in declaration order; reason is "" when present."""
        return {
            f.name: (getattr(self, f.name), self.reasons.get(f.name, ""))
            for f in fields(self)
            if f.name != "reasons"
        }


def tracefs_root() -> Path | None:
    for root in TRACEFS_ROOTS:
        try:
            if (root / "events").is_dir():
                return root
        except PermissionError:  # tracefs is 0700: an unprivileged service user can't look
            continue
    return None


def probe_kprobe() -> tuple[bool, str]:
    # libbpf attaches kprobes through the kprobe PMU (perf_event_open, 4.17+) and falls back to
    # writing tracefs kprobe_events; either needs CONFIG_KPROBE_EVENTS.
    if KPROBE_PMU.exists():
        return True, ""
    root = tracefs_root()
    if root is not None and (root / "kprobe_events").exists():
        return True, ""
    return False, "kprobes are not supported by this kernel (no kprobe PMU / CONFIG_KPROBE_EVENTS)"


def _vmlinux_btf_has(name: str, kind: int) -> bool | None:
    """None when vmlinux BTF cannot be read at all."""
    btf = lb.btf__load_vmlinux_btf()
    if not btf:
        return None
    try:
        return lb.btf__find_by_name_kind(btf, name.encode(), kind) > 0
    finally:
        lb.btf__free(btf)


def _vmlinux_btf_id(name: str, kind: int) -> int:
    btf = lb.btf__load_vmlinux_btf()
    if not btf:
        return -1
    try:
        return lb.btf__find_by_name_kind(btf, name.encode(), kind)
    finally:
        lb.btf__free(btf)


def probe_fentry() -> tuple[bool, str]:
    # libbpf_probe_bpf_prog_type(TRACING) only checks the program type exists; some kernels have it
    # yet refuse to load fentry programs (EPERM here, e.g. lockdown or missing ftrace direct calls).
    # So load a real two-instruction fentry program against a vmlinux function, then close it.
    if not VMLINUX_BTF.exists():
        return False, "fentry/fexit need kernel BTF (/sys/kernel/btf/vmlinux is missing)"
    btf_id = -1
    for target in ("bpf_fentry_test1", "vfs_read", "do_sys_openat2"):
        btf_id = _vmlinux_btf_id(target, _BTF_KIND_FUNC)
        if btf_id > 0:
            break
    if btf_id <= 0:
        return False, "fentry/fexit: no known target function in vmlinux BTF"
    insns = (ctypes.c_uint64 * 2)(0x00000000000000B7, 0x0000000000000095)  # r0 = 0; exit
    opts = lb.BpfProgLoadOpts(
        sz=ctypes.sizeof(lb.BpfProgLoadOpts), expected_attach_type=BPF_TRACE_FENTRY, attach_btf_id=btf_id
    )
    fd = lb.bpf_prog_load(BPF_PROG_TYPE_TRACING, b"otelbpf_probe", b"GPL", insns, 2, ctypes.byref(opts))
    if fd >= 0:
        os.close(fd)
        return True, ""
    return False, f"fentry/fexit are not supported by this kernel (loading an fentry program: {lb.errno_name(-fd)})"


def probe_ringbuf() -> tuple[bool, str]:
    if lb.libbpf_probe_bpf_map_type(MapType.RINGBUF, None) == 1:
        return True, ""
    return False, "BPF ring buffers need kernel 5.8+"


def probe_batch_ops() -> tuple[bool, str]:
    fd = lb.bpf_map_create(MapType.HASH, b"otelbpf_probe", 4, 4, 1, None)
    if fd < 0:
        return False, f"cannot create a probe map: {lb.errno_name(-fd)}"
    try:
        keys = ctypes.create_string_buffer(4)
        vals = ctypes.create_string_buffer(4)
        out = ctypes.create_string_buffer(8)
        count = ctypes.c_uint32(1)
        ret = lb.bpf_map_lookup_batch(fd, None, out, keys, vals, ctypes.byref(count), None)
        # An empty map answers ENOENT ("no more entries") when batching is supported.
        if ret == 0 or ret == -errno.ENOENT:
            return True, ""
        return False, f"BPF_MAP_LOOKUP_BATCH is refused ({lb.errno_name(-ret)}): needs kernel 5.6+"
    finally:
        os.close(fd)


def probe_iter_bpf_map() -> tuple[bool, str]:
    has = _vmlinux_btf_has("bpf_iter__bpf_map", _BTF_KIND_STRUCT)
    if has:
        return True, ""
    if has is None:
        return False, "iter/bpf_map needs kernel BTF (/sys/kernel/btf/vmlinux)"
    return False, "iter/bpf_map programs need kernel 5.8+"


def probe_kfunc_map_sum_elem_count() -> tuple[bool, str]:
    has = _vmlinux_btf_has("bpf_map_sum_elem_count", _BTF_KIND_FUNC)
    if has:
        return True, ""
    if has is None:
        return False, "kfuncs need kernel BTF (/sys/kernel/btf/vmlinux)"
    return False, "the kfunc bpf_map_sum_elem_count needs kernel 6.6+"


def probe_enable_stats() -> tuple[bool, str]:
    # Asking is the only reliable test (the kernel.bpf_stats_enabled sysctl predates the command).
    # Stats are on only while the returned fd is open, so closing it at once leaves nothing behind.
    fd = lb.bpf_enable_stats(0)  # BPF_STATS_RUN_TIME
    if fd >= 0:
        os.close(fd)
        return True, ""
    return False, f"BPF_ENABLE_STATS is refused ({lb.errno_name(-fd)}): needs kernel 5.8+"


@functools.cache
def probe() -> KernelFeatures:
    """Probe once per process (the kernel does not change under us)."""
    results = {
        "kprobe": probe_kprobe(),
        "fentry": probe_fentry(),
        "ringbuf": probe_ringbuf(),
        "batch_ops": probe_batch_ops(),
        "iter_bpf_map": probe_iter_bpf_map(),
        "kfunc_map_sum_elem_count": probe_kfunc_map_sum_elem_count(),
        "enable_stats": probe_enable_stats(),
    }
    return KernelFeatures(
        **{name: ok for name, (ok, _) in results.items()},
        reasons={name: why for name, (ok, why) in results.items() if not ok},
    )


__all__ = ["KernelFeatures", "probe", "tracefs_root"]
