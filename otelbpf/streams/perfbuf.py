"""PerfBufferReader drains a BPF_MAP_TYPE_PERF_EVENT_ARRAY: one perf ring per CPU, mapped into Python.

For every online CPU we open a software perf event (PERF_COUNT_SW_BPF_OUTPUT, sample_type
PERF_SAMPLE_RAW), map its ring (one control page + 2^n data pages), store the event fd in the map
at key = cpu and enable it; bpf_perf_event_output(ctx, &map, BPF_F_CURRENT_CPU, ...) then writes
into the ring of the CPU it runs on.

Ring records (include/uapi/linux/perf_event.h) start with `struct perf_event_header {u32 type;
u16 misc; u16 size}`; `size` covers the whole record and is a multiple of 8.
- PERF_RECORD_SAMPLE (9) with PERF_SAMPLE_RAW: `u32 raw_size; u8 raw[raw_size]`. The kernel pads
  raw data so the record stays 8-aligned, so raw_size includes padding: the stream's layout,
  not raw_size, says how many bytes are meaningful.
- PERF_RECORD_LOST (2): `u64 id; u64 lost` when the ring was full.
Unlike the BPF ring buffer, the perf ring is not mapped twice: a record can wrap past the end, so
the readable region is copied out in (at most) two pieces before walking it.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct

import numpy as np

from otelbpf.kernel.perf import PERF_TYPE_SOFTWARE, PerfEventAttr, online_cpus, open_attr
from otelbpf.streams.barrier import load_fence
from otelbpf.streams.records import RecordBatch, uniform_run

PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
PERF_EVENT_IOC_ENABLE = 0x2400  # _IO('$', 0)
_ATTR_FLAG_WATERMARK = 1 << 14

# struct perf_event_mmap_page: u64 data_head, data_tail, data_offset, data_size from byte 1024.
_DATA_HEAD = 1024
_DATA_OFFSET = 1040
_PAGE = mmap.PAGESIZE
_U64 = np.dtype("<u8")
_SAMPLE_HEADER = 12  # perf_event_header + u32 raw_size

log = logging.getLogger(__name__)



def open_bpf_output(cpu: int, *, wakeup_events: int, wakeup_bytes: int | None) -> int:
    """perf_event_open a PERF_COUNT_SW_BPF_OUTPUT event on `cpu` that samples raw BPF output."""
    attr = PerfEventAttr(type=PERF_TYPE_SOFTWARE,
                         config=PERF_COUNT_SW_BPF_OUTPUT, sample_period_or_freq=1, sample_type=PERF_SAMPLE_RAW)
    if wakeup_bytes:
        attr.flags = _ATTR_FLAG_WATERMARK
        attr.wakeup_events = int(wakeup_bytes)  # the union's wakeup_watermark
    else:
        attr.wakeup_events = max(1, int(wakeup_events))
    return open_attr(attr, cpu, "perf_event_open(BPF output)")


class _CpuRing:
    """The mmap'd perf ring of one CPU."""

    def __init__(self, cpu: int, fd: int, pages: int):
        self.cpu = cpu
        self.fd = fd
        try:
            self.mm = mmap.mmap(fd, (1 + pages) * _PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as e:
            raise OSError(e.errno, f"perf buffer cpu {cpu}: can't mmap {1 + pages} pages: {e.strerror}") from e
        offset, size = struct.unpack_from("<QQ", self.mm, _DATA_OFFSET)
        self.data_offset = offset or _PAGE  # fields exist since Linux 4.1
        self.size = size or pages * _PAGE
        self.control = np.frombuffer(self.mm, dtype=_U64, count=2, offset=_DATA_HEAD)  # [head, tail]
        self.data = np.frombuffer(self.mm, dtype=np.uint8, count=self.size, offset=self.data_offset)

    def copy_out(self) -> tuple[np.ndarray, int]:
        """(linear copy of the unread bytes, head); `release(head)` once they are parsed."""
        head = int(self.control[0])
        tail = int(self.control[1])
        if head == tail:
            return _EMPTY, head
        load_fence()  # data_head before the data (the kernel's smp_rmb() after reading data_head)
        n = head - tail
        start = tail % self.size
        if start + n <= self.size:
            return self.data[start:start + n].copy(), head
        first = self.size - start  # the ring is not mapped twice: join the wrapped piece
        return np.concatenate((self.data[start:], self.data[:n - first])), head

    def release(self, new_tail: int) -> None:
        load_fence()  # finish reading before the kernel may overwrite (release store of data_tail)
        self.control[1] = new_tail

    def close(self) -> None:
        del self.control, self.data
        self.mm.close()
        os.close(self.fd)


_EMPTY = np.zeros(0, dtype=np.uint8)


class PerfBufferReader:
    """Reads BPF output samples from every CPU's perf ring of one PERF_EVENT_ARRAY map.

    `pages_per_cpu` must be a power of two. `wakeup_events` = samples per wake-up (1 wakes the
    reader for every sample, as libbpf does); with `wakeup_bytes` set instead, the kernel wakes the
    reader when that many bytes are waiting (a watermark), which costs fewer wake-ups under load.
    Whoever polls `filenos()` must still use a timeout so that a quiet tail below the watermark is read.
    """

    def __init__(self, bpf_map, pages_per_cpu: int = 64, *, wakeup_events: int = 1,
                 wakeup_bytes: int | None = None, cpus: list[int] | None = None):
        if pages_per_cpu <= 0 or pages_per_cpu & (pages_per_cpu - 1):
            raise ValueError(f"perf buffer {bpf_map.name}: pages_per_cpu must be a power of two, not {pages_per_cpu}")
        self.map = bpf_map
        self.name = bpf_map.name
        self.lost = 0  # samples the kernel could not write (PERF_RECORD_LOST), since open
        self._pages = pages_per_cpu
        self._wakeup = (wakeup_events, wakeup_bytes)
        self._rings: list[_CpuRing] = []
        self._closed = False
        try:
            for cpu in cpus if cpus is not None else online_cpus():
                self._open_cpu(cpu)
        except BaseException:
            self.close()
            raise

    def _open_cpu(self, cpu: int) -> int | None:
        """Open, map and enable the ring of `cpu` and point the map's slot at it; its fd."""
        if cpu >= self.map.max_entries:
            return None  # the map has no slot for it; bpf_perf_event_output there returns -E2BIG
        fd = open_bpf_output(cpu, wakeup_events=self._wakeup[0], wakeup_bytes=self._wakeup[1])
        try:
            ring = _CpuRing(cpu, fd, self._pages)
        except BaseException:
            os.close(fd)
            raise
        try:
            self.map.update(struct.pack("<I", cpu), struct.pack("<I", fd))
            fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
        except BaseException:
            ring.close()
            raise
        self._rings.append(ring)
        return fd

    def track_online_cpus(self) -> list[int]:
        """Follow CPU hotplug; the fds of new rings, for the caller's epoll set.

        A CPU that came online since the reader opened gets a ring (without one, every sample
        written there is lost). A CPU that went offline and came back has its event switched off
        by the kernel, which stays off until enabled again (kernel/events/core.c,
        perf_event_exit_cpu), so every online CPU's event is enabled again: a no-op for one that
        is on. A CPU whose ring cannot be opened now is logged and tried again at the next call;
        the other rings keep working."""
        online = online_cpus()
        have = {r.cpu: r for r in self._rings}
        fds = []
        for cpu in online:
            if cpu in have:
                fcntl.ioctl(have[cpu].fd, PERF_EVENT_IOC_ENABLE, 0)
                continue
            try:
                fd = self._open_cpu(cpu)
            except OSError as e:
                log.warning("perf buffer %s: no ring for cpu %d, which came online: %s", self.name, cpu, e)
                continue
            if fd is not None:
                fds.append(fd)
        return fds

    def filenos(self) -> list[int]:
        """The fds to put in an epoll set: one perf event per CPU."""
        return [r.fd for r in self._rings]

    def available(self) -> int:
        """Unread bytes over all CPUs."""
        return sum(int(r.control[0]) - int(r.control[1]) for r in self._rings)

    @property
    def size(self) -> int:
        return sum(r.size for r in self._rings)

    def read(self) -> RecordBatch:
        """Every unread sample of every CPU as one batch; LOST records are added to `self.lost`."""
        batches = []
        for ring in self._rings:
            buf, head = ring.copy_out()
            if len(buf) == 0:
                continue
            batches.append(self._parse(buf))
            ring.release(head)
        if not batches:
            return RecordBatch.empty()
        return batches[0] if len(batches) == 1 else _concat(batches)

    def _parse(self, buf: np.ndarray) -> RecordBatch:
        """Walk one CPU's copied region: runs of same-size samples are checked in one vectorised step."""
        end = len(buf)
        raw = buf.data
        runs: list[tuple[int, int, int, int]] = []  # (position, stride, count, raw_size)
        p = 0
        while p + 8 <= end:
            rtype, _misc, size = struct.unpack_from("<IHH", raw, p)
            if size < 8 or p + size > end:
                break  # cannot happen with a consistent head; never loop forever on garbage
            if rtype == PERF_RECORD_SAMPLE:
                (raw_size,) = struct.unpack_from("<I", raw, p + 8)
                # (type, size) in one u64 compare, misc masked out: the next `size`-byte samples
                key = rtype | (size << 48)
                count = uniform_run(buf, p, end, size, _U64, 0xFFFF0000FFFFFFFF, key)
                runs.append((p, size, count, raw_size))
                p += size * count
                continue
            if rtype == PERF_RECORD_LOST:
                self.lost += struct.unpack_from("<Q", raw, p + 16)[0]
            p += size
        seg = np.array(runs, dtype=np.int64).reshape(-1, 4)
        seg[:, 0] += _SAMPLE_HEADER
        return RecordBatch.from_runs(buf, seg[:, :3], seg[:, 3])

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, *, clear_map: bool = True) -> None:
        """Unmap and close every ring; `clear_map=False` leaves the map's slots alone (a new reader
        of the same map has taken them over)."""
        for ring in self._rings:
            if clear_map:
                try:
                    self.map.delete(struct.pack("<I", ring.cpu))
                except (OSError, ValueError):
                    pass  # the map may already be gone with its object
            ring.close()
        self._rings = []
        self._closed = True

    def __enter__(self) -> PerfBufferReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _concat(batches: list[RecordBatch]) -> RecordBatch:
    """One batch over several CPUs' buffers (offsets shifted into the joined buffer)."""
    shift = np.cumsum([0] + [len(b.data) for b in batches[:-1]])
    return RecordBatch(
        np.concatenate([b.data for b in batches]),
        np.concatenate([b.offsets + s for b, s in zip(batches, shift)]),
        np.concatenate([b.lengths for b in batches]),
    )
