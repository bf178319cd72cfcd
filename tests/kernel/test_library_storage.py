"""Library programs about storage and memory: bio-size (direct I/O of known sizes), cachestat
(a file written, dropped from the cache and read back), oomkill (a process killed in a memory
cgroup of its own)."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.kernel.library import attached, exact_index, loaded, metrics, values
from tests.kernel.test_programs import direct_io_target
from tests.streams.test_stream_programs import counter, running_stream, settle
from tests.workloads import block_device_dir

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
READ, WRITE = 0, 1


def test_bio_size_puts_each_request_in_the_bucket_of_its_size(bpf_build, tmp_path):
    directory, disks = direct_io_target([tmp_path, Path("/var/tmp"), REPO])
    path = directory / f".otelbpf-bio-size-{os.getpid()}"
    n = 24
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    small, large = mmap.mmap(-1, 4096), mmap.mmap(-1, 16384)  # page aligned, as O_DIRECT needs
    try:
        for i in range(n):
            os.pwrite(fd, large, i * 16384)
        os.fsync(fd)
        with loaded(bpf_build, "bio-size") as obj:
            with attached(obj):
                for i in range(n):
                    os.pwrite(fd, small, i * 16384)
                    os.fsync(fd)
                    os.preadv(fd, [large], i * 16384)
            seen = values(obj.maps["bio_size"], "=IB3xi")
            metric = metrics(bpf_build, "bio-size", obj)["disk.io.request.size"]
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)

    def ours(op: int, bucket: int) -> int:
        return sum(v for (dev, o, b), v in seen.items() if dev in disks and o == op and b == bucket)

    assert ours(WRITE, exact_index(4096, 2)) >= n
    assert ours(READ, exact_index(16384, 2)) >= n
    # 4 KiB and 16 KiB end buckets at scale 2: nothing of ours spills into the next one.
    assert exact_index(4097, 2) == exact_index(4096, 2) + 1
    for point in metric.points:
        assert point.scale == 2 and point.sum >= 0


def test_cachestat_counts_pages_written_dropped_and_read_back(bpf_build):
    pages = 256
    page = os.sysconf("SC_PAGE_SIZE")
    directory = block_device_dir()
    path = directory / f".otelbpf-cachestat-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    dev = os.stat(directory).st_dev
    key_dev = os.major(dev) << 20 | os.minor(dev)
    # The file's blocks are allocated (and its pages dropped) before the program attaches: allocating
    # them reads the filesystem's own metadata into the page cache of the same device, which the
    # program rightly counts but which is not the file's.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, bytes(pages * page))
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        with loaded(bpf_build, "cachestat", target_tgid=os.getpid()) as obj:
            with attached(obj):
                os.pwrite(fd, os.urandom(pages * page), 0)
                os.fsync(fd)
                written = values(obj.maps["page_cache_pages"], "=II")
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                dropped = values(obj.maps["page_cache_pages"], "=II")
                assert len(os.pread(fd, pages * page, 0)) == pages * page
            read = values(obj.maps["page_cache_pages"], "=II")
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    added = (key_dev, 0)
    removed = (key_dev, 1)
    assert written.get(added, 0) == pages
    assert dropped.get(removed, 0) == pages
    # Readahead stops at the end of the file: exactly the file's pages come back.
    assert read[added] - written[added] == pages


@pytest.fixture
def memory_cgroup():
    """A memory cgroup (v1 here, v2 where the controller is enabled) limited to 64 MiB."""
    v1 = Path("/sys/fs/cgroup/memory")
    if not (v1 / "memory.limit_in_bytes").exists():
        pytest.skip("no cgroup v1 memory controller at /sys/fs/cgroup/memory")
    path = v1 / f"otelbpf-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    path.mkdir()
    (path / "memory.limit_in_bytes").write_text(str(64 << 20))
    yield path
    for _ in range(50):
        try:
            path.rmdir()
            return
        except OSError:  # the killed child is still being torn down
            time.sleep(0.1)


def test_oomkill_reports_the_process_killed_in_its_cgroup(bpf_build, memory_cgroup):
    obj, source, drainer = running_stream(bpf_build, "oomkill")
    try:
        # The child waits on stdin until it is in the cgroup, then allocates past the limit.
        child = subprocess.Popen([sys.executable, "-c",
                                  "import sys; sys.stdin.readline(); b = [bytearray(1 << 20) for _ in range(512)]"],
                                 stdin=subprocess.PIPE)
        (memory_cgroup / "cgroup.procs").write_text(str(child.pid))
        child.stdin.write(b"go\n")
        child.stdin.close()
        assert child.wait(30) == -9, "the OOM killer did not kill the child"
        comm = (("process.executable.name", Path(f"/proc/{os.getpid()}/comm").read_text().strip()),)
        kills = settle(lambda: counter(source, "oom.kills", comm), 1)
    finally:
        drainer.stop()
        source.close()
        obj.close()
    assert kills == 1
