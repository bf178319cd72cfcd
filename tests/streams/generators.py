"""Drive bpf/tests/stream_test.bpf.c: the context its gen_* programs take, and what they write."""

from __future__ import annotations

import struct


def gen_args(count: int, *, first: int = 0, keys: int = 0, discard_every: int = 0, vary: int = 0,
             spin: int = 0) -> bytes:
    """The `struct gen_args` context of the gen_* programs."""
    return struct.pack("<6I", count, first, keys, discard_every, vary, spin)


def payloads(batch) -> list[bytes]:
    """Each record's payload of a RecordBatch as bytes."""
    return [batch.data[o:o + n].tobytes() for o, n in zip(batch.offsets.tolist(), batch.lengths.tolist())]


def seqs(batch) -> list[int]:
    """The `seq` (first u32) of every record in a batch."""
    return [struct.unpack_from("<I", p)[0] for p in payloads(batch)]


class Readiness:
    """A reader's fds in one epoll set, registered once and kept, as the StreamDrainer keeps them:
    a perf event's readiness is consumed by the poll that reports it, so a set made after the
    event can miss it. `ready(timeout)` says whether the kernel signalled data in time."""

    def __init__(self, reader):
        import select

        self._poller = select.epoll()
        for fd in reader.filenos():
            self._poller.register(fd, select.EPOLLIN)

    def __call__(self, timeout: float) -> bool:
        return bool(self._poller.poll(timeout))

    def close(self) -> None:
        self._poller.close()
