"""perf events for SEC("perf_event") programs: perf_event_open(2) a sampling event per CPU.

Only what attaching BPF needs: software/hardware sampling events with a period or a frequency.
Layout of ``struct perf_event_attr`` from include/uapi/linux/perf_event.h (PERF_ATTR_SIZE_VER8).
"""

from __future__ import annotations

import ctypes
import os
import platform
from ctypes import Structure, c_int32, c_long, c_uint16, c_uint32, c_uint64
from pathlib import Path

from otelbpf.kernel import libbpf as lb

PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE = 0, 1
PERF_COUNT_SW_CPU_CLOCK, PERF_COUNT_SW_TASK_CLOCK = 0, 1
PERF_FLAG_FD_CLOEXEC = 1 << 3
_ATTR_FREQ = 1 << 10  # perf_event_attr.freq: sample_freq instead of sample_period

# glibc has no perf_event_open wrapper: call syscall(2). A private function pointer (libc["..."]
# is not cached) so these argtypes never clash with another user of syscall().
_perf_event_open_syscall = lb.libc["syscall"]
_perf_event_open_syscall.restype = c_long
_perf_event_open_syscall.argtypes = [c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_ulong]

_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "ppc64le": 319, "s390x": 331}


class PerfEventAttr(Structure):
    _fields_ = [
        ("type", c_uint32),
        ("size", c_uint32),
        ("config", c_uint64),
        ("sample_period_or_freq", c_uint64),
        ("sample_type", c_uint64),
        ("read_format", c_uint64),
        ("flags", c_uint64),
        ("wakeup_events", c_uint32),
        ("bp_type", c_uint32),
        ("config1", c_uint64),
        ("config2", c_uint64),
        ("branch_sample_type", c_uint64),
        ("sample_regs_user", c_uint64),
        ("sample_stack_user", c_uint32),
        ("clockid", c_int32),
        ("sample_regs_intr", c_uint64),
        ("aux_watermark", c_uint32),
        ("sample_max_stack", c_uint16),
        ("reserved_2", c_uint16),
        ("aux_sample_size", c_uint32),
        ("reserved_3", c_uint32),
        ("sig_data", c_uint64),
        ("config3", c_uint64),
    ]


def online_cpus() -> list[int]:
    """CPUs in /sys/devices/system/cpu/online, e.g. "0-3,6" -> [0, 1, 2, 3, 6]."""
    cpus: list[int] = []
    for part in Path("/sys/devices/system/cpu/online").read_text().strip().split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def open_attr(attr: PerfEventAttr, cpu: int, what: str = "perf_event_open") -> int:
    """perf_event_open(attr) for all processes on ``cpu``; returns the fd (OSError on failure)."""
    nr = _NR_PERF_EVENT_OPEN.get(platform.machine())
    if nr is None:
        raise OSError(0, f"perf_event_open: unknown syscall number on {platform.machine()}")
    attr.size = ctypes.sizeof(PerfEventAttr)
    fd = _perf_event_open_syscall(nr, ctypes.addressof(attr), -1, cpu, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} on cpu {cpu}: {os.strerror(err)}")
    return fd


def open_event(type: int, config: int, cpu: int, *, sample_period: int = 0, sample_freq: int = 0) -> int:
    """A counting/sampling event of ``type``/``config`` on ``cpu`` (for SEC("perf_event") programs)."""
    attr = PerfEventAttr(type=type, config=config)
    if sample_freq:
        attr.sample_period_or_freq = sample_freq
        attr.flags = _ATTR_FREQ
    else:
        attr.sample_period_or_freq = sample_period
    return open_attr(attr, cpu, f"perf_event_open(type={type}, config={config})")


__all__ = ["PerfEventAttr", "open_attr", "open_event", "online_cpus", "PERF_TYPE_SOFTWARE", "PERF_TYPE_HARDWARE",
           "PERF_COUNT_SW_CPU_CLOCK", "PERF_COUNT_SW_TASK_CLOCK"]
