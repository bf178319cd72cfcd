"""The sampler's shortcuts never serve a stale number: a map that changes is measured again."""

from __future__ import annotations

import struct

import pytest

from otelbpf.top.sample import MEMORY_EVERY, Sampler

from .conftest import MAP_KEYS

pytestmark = pytest.mark.kernel


def row(snapshot, map_id):
    return next(m for m in snapshot.maps if m.id == map_id)


def test_changed_maps_are_measured_again_and_memory_is_kept(known_program, bpf_build):
    sampler = Sampler(0.7, 0.9, bpf_build, {}, None)
    try:
        first = row(sampler.sample(), known_program.map_id)
        assert (first.entries, first.memory is not None) == (MAP_KEYS, True)
        # Unchanged (and memory not due, which is 1 reading in MEMORY_EVERY): the same row.
        rows = [row(sampler.sample(), known_program.map_id) for _ in range(3)]
        assert rows[0] is rows[1] or rows[1] is rows[2]

        known_program.known_map.update(struct.pack("=I", 10_000), bytes(known_program.known_map.value_buffer_size))
        changed = row(sampler.sample(), known_program.map_id)
        assert changed.entries == MAP_KEYS + 1
        assert changed.utilization == pytest.approx((MAP_KEYS + 1) / 1024)
        # Memory is re-read only every MEMORY_EVERY readings; in between the last value is shown.
        for _ in range(MEMORY_EVERY + 1):
            assert row(sampler.sample(), known_program.map_id).memory == first.memory
    finally:
        sampler.close()

