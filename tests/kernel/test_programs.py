"""The shipped BPF programs against the real kernel.

bpf/syscalls.bpf.c must count exactly the system calls a known process makes, and
bpf/biolatency.bpf.c must put every block request our own direct I/O causes into the exp2 slot
of its latency, with the slot counts and the latency sum agreeing. The configs in conf/conf.d/
must describe the maps' keys byte for byte.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from otelbpf.config.program import key_extent, load_program_config, parse_program_config
from otelbpf.config.validate import validate_against_object
from otelbpf.kernel.maps import MapType
from otelbpf.kernel.object import BpfObject
from tests.workloads import SYS_GETPID, GetpidChild

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
CONF_D = REPO / "conf" / "conf.d"

# bpf/biolatency.bpf.c: struct bio_key, native byte order.
BIO_KEY = struct.Struct("=IB3xQ")
BIO_OPS = {"read": 0, "write": 1, "flush": 2, "discard": 3, "other": 4}
BIO_BUCKET_MAX = 64
BIO_BUCKET_SUM = BIO_BUCKET_MAX + 1
BLOCK = 4096


def exp2_slot(v: int) -> int:
    """ceil(log2(v)), 0 for 0 and 1: what exp2_slot() in bpf/include/otelbpf.h computes."""
    return 0 if v <= 1 else (v - 1).bit_length()


def slot_bounds(k: int) -> tuple[int, int]:
    """Smallest and largest integer that exp2 slot k holds."""
    return (0, 1) if k == 0 else ((1 << (k - 1)) + 1, 1 << k)


@pytest.fixture
def load(bpf_build):
    """load(name, **parameters) -> a loaded BpfObject; everything is closed after the test."""
    opened: list[BpfObject] = []

    def _load(name: str, **parameters) -> BpfObject:
        obj = BpfObject.open(bpf_build / f"{name}.bpf.o", parameters=parameters)
        opened.append(obj)
        obj.load()
        return obj

    yield _load
    for obj in opened:
        obj.close()


def attach(obj: BpfObject) -> list:
    links = []
    for name, result in obj.attach_all().items():
        if isinstance(result, Exception):
            pytest.fail(f"{name}: {result}")
        links.append(result)
    assert links, f"{obj.path.name} has no program to attach"
    return links


def detach(links: list) -> None:
    """Close the links, then give programs already running on other CPUs time to finish, so the
    next map read sees every update they make (count and sum of one completion together)."""
    for link in links:
        link.close()
    time.sleep(0.05)


def counts(bpf_map) -> dict[bytes, int]:
    """Map contents as raw key → u64 value summed over CPUs."""
    snap = bpf_map.read_all()
    totals = snap.u64().sum(axis=1, dtype=np.uint64)
    return {bytes(key): int(total) for key, total in zip(snap.keys, totals)}


# --- syscalls --------------------------------------------------------------------------------


def getpid_key() -> bytes:
    return struct.pack("=I", SYS_GETPID)


def test_syscalls_target_tgid_counts_exactly_that_process(load):
    with GetpidChild() as child:
        obj = load("syscalls", target_tgid=child.pid)
        links = attach(obj)
        syscall_counts = obj.maps["syscall_counts"]
        before = counts(syscall_counts).get(getpid_key(), 0)

        # Our own getpid calls must not count: only the child's tgid does.
        libc = ctypes.CDLL(None, use_errno=True)
        for _ in range(300):
            libc.syscall(SYS_GETPID)
        child.getpid(1000)
        child.getpid(234)

        detach(links)
        after = counts(syscall_counts).get(getpid_key(), 0)
    assert after - before == 1234


def test_syscalls_counts_every_process_without_target(load):
    obj = load("syscalls")
    assert obj.maps["syscall_counts"].type == MapType.PERCPU_HASH
    links = attach(obj)
    syscall_counts = obj.maps["syscall_counts"]
    before = counts(syscall_counts).get(getpid_key(), 0)
    with GetpidChild() as first, GetpidChild() as second:
        first.getpid(500)
        second.getpid(700)
    detach(links)
    after = counts(syscall_counts)
    # Other processes may call getpid too, so at least ours.
    assert after.get(getpid_key(), 0) - before >= 1200
    # Each child also reads its pipe: more than one syscall number was seen.
    assert len(after) > 1
    assert all(len(key) == 4 for key in after)


# --- biolatency ------------------------------------------------------------------------------


def _sysfs_dev(node: Path) -> tuple[int, int]:
    major, minor = (node / "dev").read_text().split(":")
    return int(major), int(minor)


def request_disks(major: int, minor: int) -> set[int]:
    """dev_t (kernel encoding, major << 20 | minor) of the disks whose request queues carry I/O
    to block device major:minor: a partition's disk, a device mapper or md device's members.
    Bio-based disks without members (zram, brd) have no requests and give nothing."""
    node = Path(f"/sys/dev/block/{major}:{minor}")
    if not node.exists():
        return set()
    node = node.resolve()
    if (node / "partition").exists():
        node = node.parent
    members = sorted((node / "slaves").iterdir()) if (node / "slaves").is_dir() else []
    if members:
        found: set[int] = set()
        for member in members:
            found |= request_disks(*_sysfs_dev(member.resolve()))
        return found
    if not (node / "mq").is_dir():
        return set()
    major, minor = _sysfs_dev(node)
    return {major << 20 | minor}


def direct_io_target(candidates: list[Path]) -> tuple[Path, set[int]]:
    """A directory where O_DIRECT works and whose I/O reaches request-based disks."""
    tried = []
    for directory in candidates:
        st = os.stat(directory)
        disks = request_disks(os.major(st.st_dev), os.minor(st.st_dev))
        if not disks:
            tried.append(f"{directory} ({os.major(st.st_dev)}:{os.minor(st.st_dev)}: no request-based disk)")
            continue
        probe = directory / f".otelbpf-odirect-{os.getpid()}"
        try:
            os.close(os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600))
        except OSError as exc:
            tried.append(f"{directory} (O_DIRECT: {exc.strerror})")
            continue
        finally:
            probe.unlink(missing_ok=True)
        return directory, disks
    pytest.skip("no directory on a request-based block device with O_DIRECT: " + "; ".join(tried))


@pytest.fixture
def io_target(tmp_path) -> tuple[Path, set[int]]:
    directory, disks = direct_io_target([tmp_path, Path("/var/tmp"), REPO])
    path = directory / f".otelbpf-biolatency-{os.getpid()}"
    yield path, disks
    path.unlink(missing_ok=True)


class DirectFile:
    """A file written and read with O_DIRECT: every call is a block request, never the cache."""

    def __init__(self, path: Path, blocks: int):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
        self.buf = mmap.mmap(-1, BLOCK)  # page aligned, as O_DIRECT requires
        self.buf.write(os.urandom(BLOCK))
        self.blocks = blocks
        for i in range(blocks):  # allocate the blocks before anything is measured
            os.pwrite(self.fd, self.buf, i * BLOCK)
        os.fsync(self.fd)

    def write_fsync(self, i: int) -> None:
        assert os.pwrite(self.fd, self.buf, i * BLOCK) == BLOCK
        os.fsync(self.fd)

    def read(self, i: int) -> None:
        assert os.preadv(self.fd, [self.buf], i * BLOCK) == BLOCK

    def close(self) -> None:
        os.close(self.fd)
        self.buf.close()


def histograms(bpf_map) -> dict[tuple[int, int], dict[int, int]]:
    """bio_latency as {(dev, op): {slot: count, ..., BIO_BUCKET_SUM: sum_us}}."""
    out: dict[tuple[int, int], dict[int, int]] = {}
    for raw, value in counts(bpf_map).items():
        assert len(raw) == BIO_KEY.size
        assert raw[5:8] == b"\0\0\0", "padding bytes of struct bio_key must be zero"
        dev, op, bucket = BIO_KEY.unpack(raw)
        assert op in BIO_OPS.values()
        assert bucket <= BIO_BUCKET_SUM
        out.setdefault((dev, op), {})[bucket] = value
    return out


def delta(after: dict[int, int], before: dict[int, int]) -> dict[int, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def total(series: dict[int, int]) -> int:
    return sum(v for k, v in series.items() if k != BIO_BUCKET_SUM)


def assert_sum_within_slots(series: dict[int, int], what: str) -> None:
    """Every observation lies in its slot's bounds, so the sum lies between the bounds' sums."""
    slots = {k: v for k, v in series.items() if k != BIO_BUCKET_SUM}
    low = sum(count * slot_bounds(k)[0] for k, count in slots.items())
    high = sum(count * slot_bounds(k)[1] for k, count in slots.items())
    observed = series.get(BIO_BUCKET_SUM, 0)
    assert low <= observed <= high, f"{what}: sum {observed} us outside [{low}, {high}] for slots {slots}"


def test_biolatency_counts_direct_io_per_disk_and_operation(load, io_target):
    path, disks = io_target
    writes = reads = 32
    f = DirectFile(path, blocks=writes)
    try:
        obj = load("biolatency")
        bio_latency = obj.maps["bio_latency"]
        assert histograms(bio_latency) == {}
        links = attach(obj)
        for i in range(writes):
            f.write_fsync(i)
        for i in range(reads):
            f.read(i)
        detach(links)
        seen = histograms(bio_latency)
    finally:
        f.close()

    def ours(op: str) -> dict[int, int]:
        merged: dict[int, int] = {}
        for (dev, o), series in seen.items():
            if dev in disks and o == BIO_OPS[op]:
                for k, v in series.items():
                    merged[k] = merged.get(k, 0) + v
        return merged

    # Each O_DIRECT call is at least one request; other processes can only add more.
    assert total(ours("write")) >= writes
    assert total(ours("read")) >= reads
    assert ours("read").get(BIO_BUCKET_SUM, 0) > 0

    # With the programs detached, every completion has both its slot and its sum in the map.
    for (dev, op), series in seen.items():
        assert_sum_within_slots(series, f"dev {dev >> 20}:{dev & 0xFFFFF} op {op}")


def test_biolatency_slot_is_exp2_of_the_request_latency(load, io_target):
    """One read alone in its series: the sum is that request's latency, so its slot is known."""
    path, disks = io_target
    f = DirectFile(path, blocks=8)
    try:
        obj = load("biolatency")
        bio_latency = obj.maps["bio_latency"]
        isolated = []
        before = histograms(bio_latency)
        # Attached only around each read, so every snapshot is taken with no program running
        # (never between a completion's count and its sum). A busy disk only means more
        # attempts until our read is the only one in the window.
        for attempt in range(100):
            links = attach(obj)
            f.read(attempt % f.blocks)
            detach(links)
            after = histograms(bio_latency)
            for dev in disks:
                key = (dev, BIO_OPS["read"])
                d = delta(after.get(key, {}), before.get(key, {}))
                if total(d) == 1:  # nobody else read from this disk meanwhile
                    isolated.append(d)
            before = after
            if len(isolated) >= 5:
                break
    finally:
        f.close()

    assert isolated, "another process read from the disk during every attempt"
    for d in isolated:
        latency_us = d.get(BIO_BUCKET_SUM, 0)
        slots = [k for k in d if k != BIO_BUCKET_SUM]
        assert slots == [exp2_slot(latency_us)], f"latency {latency_us} us landed in slots {slots}"


# --- configs ---------------------------------------------------------------------------------


def _documented_examples() -> dict[str, str]:
    """docs/configuration.md's TOML examples that name a shipped program (`# conf.d/NAME.toml`)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    out = {}
    for block in text.split("```toml\n")[1:]:
        body = block.split("```", 1)[0]
        first = body.splitlines()[0]
        if first.startswith("# conf.d/"):
            out[first.split("/", 1)[1].split(".toml", 1)[0]] = body
    return out


@pytest.mark.parametrize("program", ["syscalls", "biolatency"])
def test_documented_example_matches_the_shipped_object(bpf_build, program):
    """The examples in docs/configuration.md describe the shipped objects' key layouts."""
    example = _documented_examples()[program]
    config = parse_program_config(example, Path(f"{program}.toml"), bpf_build)
    with BpfObject.open(bpf_build / f"{program}.bpf.o") as obj:
        assert validate_against_object(config, obj.maps) == []


@pytest.mark.parametrize("program", ["syscalls", "biolatency"])
def test_config_describes_the_map_keys(bpf_build, program):
    """conf/conf.d/NAME.toml loads, matches the object, and its labels walk every key byte."""
    config = load_program_config(CONF_D / f"{program}.toml", bpf_build)
    assert config.object == bpf_build / f"{program}.bpf.o"
    with BpfObject.open(config.object, parameters=config.parameters) as obj:
        assert validate_against_object(config, obj.maps) == []
        metrics = config.counters + config.histograms
        assert metrics
        for metric in metrics:
            bpf_map = obj.maps[metric.map]
            assert key_extent(metric.labels) == bpf_map.key_size, metric.name
            assert bpf_map.value_size == 8, metric.name
        for histogram in config.histograms:
            # The bucket label is a u64 and the program keeps the sum at bucket_max + 1 = 65.
            assert histogram.bucket_type == "exp2"
            assert histogram.bucket_label.size == 8
            assert histogram.bucket_max == BIO_BUCKET_MAX


def test_biolatency_operation_names_cover_every_op():
    config = load_program_config(CONF_D / "biolatency.toml", REPO / "bpf" / "build")
    (histogram,) = config.histograms
    operation = next(label for label in histogram.labels if label.name == "disk.io.direction")
    static_map = next(d for d in operation.decoders if d.name == "static_map")
    assert {int(k): v for k, v in static_map.options["static_map"].items()} == {
        v: k for k, v in BIO_OPS.items()}
