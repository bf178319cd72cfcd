"""How the element count of each BPF map type can be had, without ever inventing a number.

Measured on kernel 6.18 (tests/health/test_map_pressure.py checks it on every run):
``bpf_map_sum_elem_count`` is exact for every hash-table map (hash, LRU hash, per-CPU hash, LRU
per-CPU hash, with or without BPF_F_NO_PREALLOC, LRU evictions and BPF_F_NO_COMMON_LRU included),
because the per-CPU ``elem_count`` is allocated by ``htab_map_alloc`` alone and maintained by the
hash table on every insert, delete and eviction since kernel 6.6 (kernel/bpf/hashtab.c). Every
other map type has no ``elem_count`` and the kfunc reads 0 for it, which must not be reported.
"""

from __future__ import annotations

import enum

from otelbpf.kernel.maps import MapType


class CountMethod(str, enum.Enum):
    """Value of the ``bpf.map.count_method`` attribute."""

    KFUNC = "kfunc"  # bpf_map_sum_elem_count from the iter/bpf_map program
    ITERATION = "iteration"  # keys counted with get_next_key, map opened by id
    MAX_ENTRIES = "max_entries"  # preallocated arrays: every slot exists, full by construction
    RINGBUF = "ringbuf"  # bytes between consumer and producer position
    NONE = "none"  # no honest count: no entries/utilization points


# Hash tables (kernel/bpf/hashtab.c): the kfunc where available, else key iteration.
HTAB_TYPES = frozenset(
    {MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH, MapType.HASH_OF_MAPS}
)
# Hash-based maps outside hashtab.c (sock_hash, dev_map_hash): no elem_count, but user space can
# walk their keys.
ITERABLE_TYPES = frozenset({MapType.SOCKHASH, MapType.DEVMAP_HASH})
# Value arrays: every index exists from creation on. Fd arrays (prog, perf event, cgroup, map,
# dev, cpu, xsk, sock, reuseport arrays) are not here: their slots can be empty, and counting the
# filled ones is not possible without touching what they hold.
PREALLOC_FULL_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})
RINGBUF_TYPES = frozenset({MapType.RINGBUF, MapType.USER_RINGBUF})


def count_method(map_type: int, have_kfunc: bool) -> CountMethod:
    """The count method for a map of ``map_type`` given whether the kfunc count was read."""
    if map_type in HTAB_TYPES:
        return CountMethod.KFUNC if have_kfunc else CountMethod.ITERATION
    if map_type in ITERABLE_TYPES:
        return CountMethod.ITERATION
    if map_type in PREALLOC_FULL_TYPES:
        return CountMethod.MAX_ENTRIES
    if map_type in RINGBUF_TYPES:
        return CountMethod.RINGBUF
    return CountMethod.NONE
