"""Group records by the raw bytes of their label fields, vectorised, remembering keys across batches.

`KeyIndex.lookup(raw)` turns each record's label bytes into a small integer id (the same id for the
same bytes, in every batch). Most keys were seen in earlier batches, so ids come from an open
addressing table probed for all records at once: key words → 64-bit hash → slot, then the record's
key words are compared against the key stored for that slot (so the result is exact, hash
collisions included). Only records that miss (new keys, or keys whose slot another key holds) go
through np.unique, which sorts; typically that is none of them. Keys that are small integers
(one word below 2^16: a CPU, a signal, a syscall number) skip hashing: a direct lookup table.
"""

from __future__ import annotations

import numpy as np

_MIX = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: Fibonacci hashing
_WORD_MULT = np.uint64(0xC2B2AE3D27D4EB4F)
_DENSE_LIMIT = 1 << 16


class KeyIndex:
    """Ids for raw label keys of `key_size` bytes; at most `max_keys` remembered (then it resets).

    Ids are 0, 1, 2, ... in order of first sight; `key_bytes(id)` gives a key's raw bytes back,
    so the caller decodes each key once, when it first meets its id.
    """

    def __init__(self, key_size: int, max_keys: int = 1 << 16):
        self.key_size = key_size
        self.words = max(1, (key_size + 7) // 8)
        self.max_keys = max_keys
        self.generation = 0  # bumped on reset: ids from before are meaningless
        self._reset()

    def _reset(self) -> None:
        self._ids: dict[bytes, int] = {}
        self._keys = np.zeros((0, self.words), dtype=np.uint64)
        self._dense = np.zeros(0, dtype=np.int64)  # one-word keys below _DENSE_LIMIT: key → id (-1: unknown)
        self._resize(12)

    def _resize(self, bits: int) -> None:
        self._bits = bits
        self._shift = np.uint64(64 - bits)
        self._slot_id = np.full(1 << bits, -1, dtype=np.int64)
        self._slot_hash = np.zeros(1 << bits, dtype=np.uint64)
        if len(self._keys):
            self._insert(np.arange(len(self._keys)), self._keys)

    def __len__(self) -> int:
        return len(self._ids)

    def key_bytes(self, key_id: int) -> bytes:
        """The raw label bytes of `key_id` (ids are rows of `_keys`, in creation order)."""
        return self._keys[key_id].tobytes()[: self.key_size]

    def pack(self, records: np.ndarray, fields: list[str]) -> np.ndarray:
        """The label fields of every record → (n, words) uint64 key words, zero padded.

        Fields are copied typed (one numpy assignment per field, not per byte); no fields (a metric
        without labels) gives one all-zero key for every record.
        """
        n = len(records)
        if len(fields) == 1 and records.dtype[fields[0]].kind in "iu":
            # The common case, one integer label: its value is the key word.
            return records[fields[0]].astype(np.uint64).reshape(n, 1)
        offsets = np.cumsum([0] + [records.dtype[f].itemsize for f in fields])[:-1].tolist()
        packed_dtype = np.dtype({"names": fields, "formats": [records.dtype[f] for f in fields],
                                 "offsets": offsets, "itemsize": self.words * 8})
        packed = np.zeros(n, dtype=packed_dtype)
        for f in fields:
            packed[f] = records[f]
        return packed.view(np.uint64).reshape(n, self.words)

    def _hash(self, words: np.ndarray) -> np.ndarray:
        h = words[:, 0].copy()
        for i in range(1, self.words):
            h = (h * _WORD_MULT) ^ words[:, i]
        return h

    def _slots(self, h: np.ndarray) -> np.ndarray:
        return ((h * _MIX) >> self._shift).astype(np.intp)

    def _insert(self, ids: np.ndarray, words: np.ndarray) -> None:
        """Give each key the slot its hash points at when that slot is free (else it stays a miss)."""
        h = self._hash(words)
        slots = self._slots(h)
        for i, s, hv in zip(ids.tolist(), slots.tolist(), h.tolist()):
            if self._slot_id[s] < 0:
                self._slot_id[s] = i
                self._slot_hash[s] = hv

    def _remember_dense(self, ids: np.ndarray, words: np.ndarray) -> None:
        if self.words != 1:
            return
        keys = words[:, 0]
        small = keys < _DENSE_LIMIT
        if not small.any():
            return
        need = int(keys[small].max()) + 1
        if need > len(self._dense):
            size = min(_DENSE_LIMIT, max(256, 1 << (need - 1).bit_length()))
            self._dense = np.concatenate([self._dense, np.full(size - len(self._dense), -1, dtype=np.int64)])
        self._dense[keys[small].astype(np.intp)] = ids[small]

    def _unique(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = np.ascontiguousarray(words).view(f"V{self.words * 8}").ravel()
        uniq, inverse = np.unique(flat, return_inverse=True)
        return uniq, inverse.ravel()

    def lookup(self, words: np.ndarray) -> np.ndarray:
        """The id (int64) of every record's key; `words` as returned by `pack`."""
        n = len(words)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if len(self._dense):
            keys = words[:, 0]
            if keys.max() < len(self._dense):
                ids = self._dense[keys]
                if ids.min() >= 0:
                    return ids
        h = self._hash(words)
        slots = self._slots(h)
        ids = self._slot_id[slots]
        hit = (ids >= 0) & (self._slot_hash[slots] == h)
        if self.words > 1 and hit.any():
            known = self._keys[np.where(hit, ids, 0)]
            hit &= (known == words).all(axis=1)
        if hit.all():
            return ids
        miss = np.flatnonzero(~hit)
        uniq, inverse = self._unique(words[miss])
        if len(self._ids) + len(uniq) > self.max_keys and self._ids:
            # Too many distinct keys remembered: forget them all; the caller sees `generation` change.
            self.generation += 1
            self._reset()
            hit[:] = False
            miss = np.arange(n)
            uniq, inverse = self._unique(words)
        ids = np.where(hit, ids, -1)
        uniq_words = uniq.view(np.uint64).reshape(len(uniq), self.words)
        new_ids = np.empty(len(uniq), dtype=np.int64)
        fresh = []
        for j, raw in enumerate(uniq.tolist()):
            raw = bytes(raw)
            key_id = self._ids.get(raw)
            if key_id is None:
                key_id = len(self._ids)
                self._ids[raw] = key_id
                fresh.append(j)
            new_ids[j] = key_id
        if fresh:
            self._remember_dense(new_ids[fresh], uniq_words[fresh])
            self._keys = np.concatenate([self._keys, uniq_words[fresh]])
            if len(self._ids) * 2 > (1 << self._bits):
                self._resize(self._bits + 2)
            else:
                self._insert(new_ids[fresh], uniq_words[fresh])
        ids[miss] = new_ids[inverse]
        return ids
