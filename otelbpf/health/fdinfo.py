"""The kernel's own memory accounting of a BPF map: ``memlock`` in ``/proc/self/fdinfo/FD``.

Since kernel 6.4 the value comes from each map type's ``map_mem_usage`` callback (actual
allocations, per-CPU copies and element memory included); older kernels print the charged
pages. ``struct bpf_map_info`` has no such field.
"""

from __future__ import annotations

import os


def map_memlock(map_fd: int) -> int | None:
    """Bytes the kernel accounts to the map behind ``map_fd``, or None when it does not say."""
    fd = os.open(f"/proc/self/fdinfo/{map_fd}", os.O_RDONLY)
    try:
        text = os.read(fd, 4096)
    finally:
        os.close(fd)
    start = text.find(b"\nmemlock:")
    if start < 0:
        return None
    end = text.find(b"\n", start + 1)
    return int(text[start + 9 : end if end >= 0 else None])
