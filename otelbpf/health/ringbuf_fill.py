"""How full a BPF ring buffer is, read from the map's own position pages.

Layout (kernel/bpf/ringbuf.c): page 0 holds ``consumer_pos``, page 1 ``producer_pos``, both u64
at offset 0 and only ever increasing. A read-only mapping of those two pages is allowed for
both the kernel-producer ``ringbuf`` and the user-producer ``user_ringbuf`` (only writable
mappings are restricted), and it neither consumes nor wakes anyone, so reading another
process's ring buffer leaves it untouched.
"""

from __future__ import annotations

import mmap
import struct

_POS = struct.Struct("=Q")


def ringbuf_used(map_fd: int) -> int:
    """Bytes produced and not yet consumed (record headers and padding included)."""
    page = mmap.PAGESIZE
    with mmap.mmap(map_fd, 2 * page, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ) as pages:
        # Consumer first: it never passes the producer, so reading it first cannot yield a
        # negative difference when both move between the two loads.
        (consumer,) = _POS.unpack_from(pages, 0)
        (producer,) = _POS.unpack_from(pages, page)
    return producer - consumer
