"""RingBufferReader drains a BPF_MAP_TYPE_RINGBUF by mapping it into Python, without libbpf callbacks.

Memory layout (kernel/bpf/ringbuf.c, bpf_ringbuf_mmap_user):
- offset 0, one page, read-write: consumer_pos (u64) at byte 0.
- offset one page, length page + 2 * max_entries, read-only: producer_pos (u64) at byte 0, then
  the data area, mapped twice in a row so that a record wrapping past the end reads as one piece.
Positions only grow; the data offset is `pos & (max_entries - 1)`. Every record starts with an
8-byte header `u32 len; u32 pg_off` where bit 31 of len is BUSY (reserved, not committed: stop)
and bit 30 is DISCARD (skip); the next record starts at round_up(len + 8, 8).

Records are walked in bulk: where consecutive records have the same length (nearly always: one C
struct per stream), all their headers are checked with one vectorised comparison. Mixed lengths
fall back to one header at a time.
"""

from __future__ import annotations

import mmap
import struct

import numpy as np

from otelbpf.streams.barrier import load_fence
from otelbpf.streams.records import RecordBatch, uniform_run

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
_LEN_MASK = ~(BUSY_BIT | DISCARD_BIT) & 0xFFFFFFFF
_HEADER = 8
_U32 = np.dtype("<u4")
_PAGE = mmap.PAGESIZE
_DEFAULT_MAX_BATCH = 2 << 20  # measured best of 1-8 MiB (benchmarks/README.md): numpy temporaries stay in cache


class RingBufferReader:
    """Reads committed records of one ring buffer map; `read()` returns them as one RecordBatch.

    `bpf_map` is an otelbpf.kernel.maps.BpfMap (anything with fd, name, max_entries). The reader
    does not own the map fd. `read()` must be called from one thread at a time, and a
    batch is valid until the next `read()` (its buffer is reused): aggregate it before reading on.
    """

    def __init__(self, bpf_map, *, max_batch_bytes: int = _DEFAULT_MAX_BATCH):
        self.map = bpf_map
        self.name = bpf_map.name
        self.size = int(bpf_map.max_entries)
        if self.size <= 0 or self.size & (self.size - 1) or self.size % _PAGE:
            raise ValueError(f"ring buffer {self.name}: max_entries {self.size} is not a power-of-two "
                             "multiple of the page size")
        self._mask = self.size - 1
        self._max_batch = max(int(max_batch_bytes), _PAGE)
        fd = bpf_map.fd
        try:
            self._cons_mm = mmap.mmap(fd, _PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        except OSError as e:
            raise OSError(e.errno, f"ring buffer {self.name}: can't mmap consumer page: {e.strerror}") from e
        try:
            self._prod_mm = mmap.mmap(fd, _PAGE + 2 * self.size, mmap.MAP_SHARED, mmap.PROT_READ, offset=_PAGE)
        except OSError as e:
            self._cons_mm.close()
            raise OSError(e.errno, f"ring buffer {self.name}: can't mmap producer page and data: {e.strerror}") from e
        self._cons = np.frombuffer(self._cons_mm, dtype=np.uint64, count=1)
        self._prod = np.frombuffer(self._prod_mm, dtype=np.uint64, count=1)
        # Data area (twice) as a flat byte array; index 0 is the data start.
        self._data = np.frombuffer(self._prod_mm, dtype=np.uint8, offset=_PAGE)
        self._buf = np.empty(0, dtype=np.uint8)
        # The kernel cannot tell a ring buffer reader about records it failed to reserve; programs
        # count those themselves (OTELBPF_RINGBUF_RESERVE → <map>_drops, read by StreamSource).
        self.lost = 0

    def filenos(self) -> list[int]:
        """The fds to put in an epoll set (the map fd): readable when records are available. The
        kernel wakes a reader only once it has consumed everything, so poll only after a `read()`
        that returned an empty batch."""
        return [self.map.fd]

    def available(self) -> int:
        """Bytes between the consumer and producer positions (the fill level)."""
        return int(self._prod[0]) - int(self._cons[0])

    def read(self) -> RecordBatch:
        """Copy out every committed record (up to the batch limit) and release their space."""
        cons = int(self._cons[0])
        prod = int(self._prod[0])
        if prod == cons:
            return RecordBatch.empty()
        load_fence()  # positions before headers
        start = cons & self._mask
        end = start + min(prod - cons, self._max_batch)
        segments, stop = self._walk(start, end)
        if stop == start:  # the first record is still being written
            return RecordBatch.empty()
        load_fence()  # headers before payloads
        data = self._scratch(stop - start)
        np.copyto(data, self._data[start:stop])
        load_fence()  # payload copy before the consumer position store (release)
        self._cons[0] = cons + (stop - start)
        return _batch_from_segments(data, segments, start)

    def _scratch(self, n: int) -> np.ndarray:
        """A reused copy buffer: a fresh multi-MiB allocation per read costs a page fault per 4 KiB."""
        if len(self._buf) < n:
            self._buf = np.empty(max(n, self._max_batch + _PAGE), dtype=np.uint8)
        return self._buf[:n]

    def _walk(self, start: int, end: int) -> tuple[list[tuple[int, int, int]], int]:
        """Committed records in [start, end) as runs (position, stride, count); and where the walk stopped."""
        mm, base, data = self._prod_mm, _PAGE, self._data
        segments = []
        p = start
        while p < end:
            (hdr,) = struct.unpack_from("<I", mm, base + p)
            if hdr & BUSY_BIT:
                break
            stride = ((hdr & _LEN_MASK) + _HEADER + 7) & ~7
            nxt = p + stride
            # A run is records with this exact header (DISCARD included): one vectorised compare.
            if nxt < end and struct.unpack_from("<I", mm, base + nxt)[0] == hdr:
                count = uniform_run(data, p, end, stride, _U32, 0xFFFFFFFF, hdr)
            else:
                count = 1
            segments.append((p, stride, count))
            p += stride * count
        # A record that starts before `end` is complete even when it reaches past it (committed
        # records lie wholly below producer_pos), so the copy may run a little past the batch limit.
        return segments, p

    @property
    def closed(self) -> bool:
        return self._cons_mm.closed

    def close(self) -> None:
        if self.closed:
            return
        del self._cons, self._prod, self._data
        self._cons_mm.close()
        self._prod_mm.close()

    def __enter__(self) -> RingBufferReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _batch_from_segments(data: np.ndarray, segments: list[tuple[int, int, int]], start: int) -> RecordBatch:
    """Payload offsets/lengths for every record in the copied runs, DISCARD records dropped.

    Every record of a run has the same header, so one header per run says its length and whether
    the whole run was discarded.
    """
    words = data.view(_U32)  # ring positions are 8-aligned, so the copy is a whole number of words
    seg = np.array(segments, dtype=np.int64).reshape(-1, 3)
    seg[:, 0] -= start
    headers = words[seg[:, 0] >> 2].astype(np.int64)
    kept = (headers & DISCARD_BIT) == 0
    seg = seg[kept]
    seg[:, 0] += _HEADER
    return RecordBatch.from_runs(data, seg, headers[kept] & _LEN_MASK)
