"""Memory ordering between a BPF producer and our Python consumer of a shared ring.

The kernel publishes a record in two steps (kernel/bpf/ringbuf.c): it advances producer_pos with
smp_store_release() when it *reserves* space (the header then carries the BUSY bit), and clears
BUSY with a release store (xchg) when the program *commits*. libbpf's consumer reads both with
smp_load_acquire() so that payload bytes are never read before the header that says they are
complete. The perf ring is the same idea: data_head is read with acquire and data_tail is written
with release (include/uapi/linux/perf_event.h, "smp_rmb() after reading data_head").

Python cannot emit an acquire load. What we rely on instead:

- x86-64 (and i386) are TSO: loads are not reordered with older loads and stores are not reordered
  with older loads. Our readers first load the position, then the headers (separate numpy /
  struct loads), and only then copy payloads; the consumer position is stored after the copy. So
  plain loads give acquire semantics and a plain store gives release semantics. No fence needed.
- Elsewhere (arm64, ppc64, riscv) loads may be reordered. `load_fence()` issues
  membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which the kernel brackets with smp_mb() on the
  calling CPU (kernel/sched/membarrier.c: "system call entry is not a mb"), i.e. a full barrier.
  Readers call it between reading positions/headers and copying payloads, and between copying
  and publishing the consumer position: one syscall per drained batch, not per record.
"""

from __future__ import annotations

import ctypes
import os
import platform

_TSO = platform.machine() in ("x86_64", "AMD64", "i386", "i686")
_SYS_MEMBARRIER = {"aarch64": 283, "arm64": 283, "riscv64": 283, "ppc64le": 365, "ppc64": 365, "s390x": 356}
_CMD_PRIVATE_EXPEDITED = 1 << 3
_CMD_REGISTER_PRIVATE_EXPEDITED = 1 << 4

_libc = None if _TSO else ctypes.CDLL(None, use_errno=True)
_registered = False


def load_fence() -> None:
    """A full memory barrier on weakly ordered CPUs; nothing on x86 (see module docstring)."""
    global _registered
    if _TSO:
        return
    nr = _SYS_MEMBARRIER.get(platform.machine())
    if nr is None:
        raise OSError(f"no memory barrier known for {platform.machine()}: ring readers are unsafe here")
    if not _registered:
        if _libc.syscall(nr, _CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"membarrier register: {os.strerror(err)}")
        _registered = True
    if _libc.syscall(nr, _CMD_PRIVATE_EXPEDITED, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"membarrier: {os.strerror(err)}")
