"""A batch of raw stream records copied out of a ring: one buffer plus where each payload starts.

Both readers return a `RecordBatch`. Records never go through Python one by one: the aggregator
asks for `view(layout)`, which is a zero-copy strided numpy view when every record has the same
length and lies back to back (the common case), and a chunked gather otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from otelbpf.streams.layout import RecordLayout

_EMPTY_OFFSETS = np.zeros(0, dtype=np.int64)
_GATHER_CHUNK = 1 << 16


@dataclass(frozen=True)
class RecordBatch:
    data: np.ndarray  # uint8, owned copy of the ring region
    offsets: np.ndarray  # int64: payload start of each record in `data`
    lengths: np.ndarray  # int64: payload length of each record (as the producer declared it)
    stride: int = 0  # when > 0: record i's payload is at offsets[0] + i * stride, all lengths equal

    def __len__(self) -> int:
        return len(self.offsets)

    @classmethod
    def empty(cls) -> RecordBatch:
        return cls(np.zeros(0, dtype=np.uint8), _EMPTY_OFFSETS, _EMPTY_OFFSETS)

    @classmethod
    def from_runs(cls, data: np.ndarray, runs: np.ndarray, lengths: np.ndarray) -> RecordBatch:
        """A batch from runs of same-size records: `runs` rows are (first payload offset, stride,
        count), `lengths` the payload length of each run's records."""
        if len(runs) == 0:
            return cls.empty()
        if len(runs) == 1:
            first, stride, count = runs[0].tolist()
            offsets = first + np.arange(count, dtype=np.int64) * stride
            return cls(data, offsets, np.full(count, int(lengths[0]), dtype=np.int64), stride)
        counts = runs[:, 2]
        within = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        offsets = np.repeat(runs[:, 0], counts) + within * np.repeat(runs[:, 1], counts)
        return cls(data, offsets, np.repeat(np.asarray(lengths, dtype=np.int64), counts))

    def payloads(self) -> list[bytes]:
        """Each payload as bytes, for consumers that handle records one by one (span records:
        modest volume, each becomes an SDK span)."""
        return [self.data[o:o + n].tobytes() for o, n in zip(self.offsets.tolist(), self.lengths.tolist())]

    def view(self, layout: RecordLayout) -> tuple[np.ndarray, int]:
        """(records as a structured array of `layout`, number of records too short for it).

        Short records are left out: a layout larger than what the program writes is a config error
        that the caller reports once.
        """
        need = layout.min_record_size
        n = len(self.offsets)
        if n == 0:
            return np.zeros(0, dtype=layout.dtype), 0
        if self.stride and self.lengths[0] >= need:
            # Zero-copy: each element spans one payload; consecutive payloads are `stride` apart.
            itemsize = int(self.lengths[0])
            first = self.data[int(self.offsets[0]):][:itemsize].view(layout.dtype_with_itemsize(itemsize))
            return np.lib.stride_tricks.as_strided(first, shape=(n,), strides=(self.stride,), writeable=False), 0
        keep = self.lengths >= need
        short = n - int(np.count_nonzero(keep))
        return self._gather(self.offsets[keep] if short else self.offsets, layout), short

    def _gather(self, offsets: np.ndarray, layout: RecordLayout) -> np.ndarray:
        size = layout.size
        out = np.empty(len(offsets), dtype=layout.dtype)
        raw = out.view(np.uint8).reshape(len(offsets), size)
        cols = np.arange(layout.min_record_size, dtype=np.int64)
        for i in range(0, len(offsets), _GATHER_CHUNK):
            part = offsets[i:i + _GATHER_CHUNK]
            raw[i:i + len(part), :len(cols)] = self.data[part[:, None] + cols]
        return out


def uniform_run(buf: np.ndarray, start: int, end: int, stride: int, word: np.dtype, mask: int, expected: int) -> int:
    """How many headers at start, start+stride, ... (below `end`) equal `expected` under `mask`.

    The header at `start` must already be known to match. Only the prefix up to the first
    mismatch is meaningful: past a record of another length the positions are not headers.
    """
    count = (end - start + stride - 1) // stride
    if count <= 1:
        return count
    headers = np.ndarray((count,), dtype=word, buffer=buf, offset=start, strides=(stride,))
    if mask != (1 << (word.itemsize * 8)) - 1:
        headers = headers & word.type(mask)
    bad = headers != word.type(expected)
    first = int(bad.argmax())  # argmax of a bool array: the first True (0 when there is none)
    return first if bad[first] else count
