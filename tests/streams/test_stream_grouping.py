"""KeyIndex: stable ids for raw label keys across batches, exact under hash collisions."""

from __future__ import annotations

import numpy as np

from otelbpf.streams.grouping import KeyIndex


def records(values, dtype) -> np.ndarray:
    out = np.zeros(len(values), dtype=dtype)
    for name in dtype.names:
        out[name] = [v[name] for v in values]
    return out


U32 = np.dtype([("k", "<u4")])
TWO = np.dtype([("comm", "S16"), ("cpu", "<u2")])


def test_ids_are_stable_across_batches_and_give_back_their_key_bytes():
    index = KeyIndex(4)
    first = index.lookup(index.pack(records([{"k": 5}, {"k": 9}, {"k": 5}], U32), ["k"]))
    assert first.tolist() == [0, 1, 0]
    second = index.lookup(index.pack(records([{"k": 9}, {"k": 7}, {"k": 5}], U32), ["k"]))
    assert second.tolist() == [1, 2, 0]
    third = index.lookup(index.pack(records([{"k": 7}] * 3, U32), ["k"]))
    assert third.tolist() == [2, 2, 2]
    assert len(index) == 3
    assert [index.key_bytes(i) for i in range(3)] == [n.to_bytes(4, "little") for n in (5, 9, 7)]


def test_multi_word_keys_compare_every_byte():
    index = KeyIndex(18)
    rows = [{"comm": b"bash", "cpu": 1}, {"comm": b"bash", "cpu": 2}, {"comm": b"bashX", "cpu": 1},
            {"comm": b"bash", "cpu": 1}]
    ids = index.lookup(index.pack(records(rows, TWO), ["comm", "cpu"]))
    assert ids.tolist() == [0, 1, 2, 0]
    assert index.key_bytes(0) == b"bash".ljust(16, b"\0") + b"\1\0"
    again = index.lookup(index.pack(records(rows[::-1], TWO), ["comm", "cpu"]))
    assert again.tolist() == [0, 2, 1, 0]


def test_keys_sharing_a_slot_stay_distinct():
    index = KeyIndex(4)
    index._resize(1)  # two slots for 1000 keys: almost every key collides with another
    keys = np.arange(1000, dtype=np.uint32)
    rng = np.random.default_rng(1)
    for _ in range(3):
        shuffled = rng.permutation(keys)
        ids = index.lookup(index.pack(records([{"k": int(k)} for k in shuffled], U32), ["k"]))
        assert len(index) == 1000
        # same key -> same id, different keys -> different ids
        assert len(set(zip(shuffled.tolist(), ids.tolist()))) == 1000
        assert len(set(ids.tolist())) == 1000


def test_forgetting_keys_past_the_limit_bumps_the_generation():
    index = KeyIndex(4, max_keys=10)
    index.lookup(index.pack(records([{"k": k} for k in range(8)], U32), ["k"]))
    assert index.generation == 0
    ids = index.lookup(index.pack(records([{"k": k} for k in range(8, 12)], U32), ["k"]))
    assert index.generation == 1
    assert ids.tolist() == [0, 1, 2, 3]
    assert len(index) == 4 and index.key_bytes(0) == (8).to_bytes(4, "little")


def test_no_label_fields_is_one_key():
    index = KeyIndex(0)
    ids = index.lookup(index.pack(records([{"k": 1}, {"k": 2}], U32), []))
    assert ids.tolist() == [0, 0]
    assert len(index) == 1 and index.key_bytes(0) == b""
