"""otelbpf_exp_index() in bpf/include/otelbpf.h, run in the kernel, against the exact definition.

Bucket i at scale s holds the values v with 2^i < v^(2^s) <= 2^(i+1): Python computes that with
integers only. The kernel computes it over batches of values (bpf/tests/exp_index.bpf.c, run
with BPF_PROG_TEST_RUN): every bucket boundary of every u64 at scales 0..4, one below and one
above it, and random values of every magnitude.
"""

from __future__ import annotations

import random
import struct

import pytest

from otelbpf.kernel.object import BpfObject

pytestmark = pytest.mark.kernel

BATCH = 1024
U64_MAX = (1 << 64) - 1
ZERO_KEY = -(1 << 31)
SUM_KEY = (1 << 31) - 1


def exact_index(v: int, scale: int) -> int:
    """The i with 2^i < v^(2^scale) <= 2^(i+1), v >= 1: integers only."""
    p = v ** (1 << scale)
    i = (p - 1).bit_length() - 1  # largest i with 2^i < p
    assert (1 << (i + 1)) < 2 * p and p <= (1 << (i + 1))  # 2^i < p <= 2^(i+1), i >= -1
    return i


def lower_boundary(i: int, scale: int) -> int:
    """The largest integer v with v^(2^scale) <= 2^i: the top of bucket i - 1."""
    lo, hi = 0, 1 << 65
    n = 1 << scale
    target = 1 << i
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if mid ** n <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo


def boundary_values(scale: int) -> list[int]:
    values = set()
    for i in range(0, 64 << scale):
        edge = lower_boundary(i, scale)
        values.update(v for v in (edge - 1, edge, edge + 1) if 1 <= v <= U64_MAX)
    values.update((1, 2, 3, U64_MAX, U64_MAX - 1))
    return sorted(values)


@pytest.fixture(scope="module")
def kernel_index(bpf_build):
    obj = BpfObject.open(bpf_build / "tests" / "exp_index.bpf.o")
    obj.load()
    batch = obj.maps["batch"]
    prog = obj.programs["exp_index_batch"]
    layout = struct.Struct(f"=II{BATCH}Q{BATCH}i")

    def run(values: list[int], scale: int) -> list[int]:
        out: list[int] = []
        for start in range(0, len(values), BATCH):
            chunk = values[start:start + BATCH]
            padded = chunk + [0] * (BATCH - len(chunk))
            batch.update(struct.pack("=I", 0), layout.pack(scale, len(chunk), *padded, *([0] * BATCH)))
            assert prog.test_run() == 0
            result = layout.unpack(batch.lookup(struct.pack("=I", 0)))
            out.extend(result[2 + BATCH:2 + BATCH + len(chunk)])
        return out

    yield run
    obj.close()


@pytest.mark.parametrize("scale", range(5))
def test_every_boundary_and_its_neighbours(kernel_index, scale):
    values = boundary_values(scale)
    got = kernel_index(values, scale)
    wrong = [(v, g, exact_index(v, scale)) for v, g in zip(values, got) if g != exact_index(v, scale)]
    assert not wrong, f"scale {scale}: {len(wrong)} of {len(values)} wrong, first {wrong[:5]}"
    assert len(values) > 2 * (64 << scale)  # the boundaries of small values coincide


@pytest.mark.parametrize("scale", range(5))
def test_random_values_of_every_magnitude(kernel_index, scale):
    rng = random.Random(scale)
    values = [rng.getrandbits(rng.randint(1, 64)) or 1 for _ in range(4 * BATCH)]
    got = kernel_index(values, scale)
    assert got == [exact_index(v, scale) for v in values]


def test_anchors_one_and_two(kernel_index):
    for scale in range(5):
        assert kernel_index([1, 2], scale) == [-1, (1 << scale) - 1]


def test_increment_exp_histogram_counts_buckets_zero_and_sum(bpf_build):
    values = [0, 0, 1, 2, 3, 1000, 1000, 123456789, U64_MAX // 4]
    scale = 3
    with BpfObject.open(bpf_build / "tests" / "exp_index.bpf.o", parameters={"record": 1}) as obj:
        obj.load()
        layout = struct.Struct(f"=II{BATCH}Q{BATCH}i")
        padded = values + [0] * (BATCH - len(values))
        obj.maps["batch"].update(struct.pack("=I", 0), layout.pack(scale, len(values), *padded, *([0] * BATCH)))
        assert obj.programs["exp_index_batch"].test_run() == 0
        snap = obj.maps["hist"].read_all()
        seen = {struct.unpack("=Ii", bytes(k)): int(v) for k, v in zip(snap.keys, snap.u64()[:, 0])}
    expected: dict[tuple[int, int], int] = {(7, SUM_KEY): sum(values)}
    for v in values:
        key = (7, ZERO_KEY if v == 0 else exact_index(v, scale))
        expected[key] = expected.get(key, 0) + 1
    assert seen == expected
