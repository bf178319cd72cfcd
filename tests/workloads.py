"""Known workloads whose exact kernel-side effect the tests can predict."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

SYS_GETPID = {"x86_64": 39, "aarch64": 172}[platform.machine()]

_CHILD = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
nr, n = int(sys.argv[1]), int(sys.argv[2])
print("ready", flush=True)
while True:
    line = sys.stdin.readline()
    if not line or line.strip() == "exit":
        break
    count = int(line)
    for _ in range(count):
        libc.syscall(nr)   # raw syscall: no libc pid caching can hide a call
    print("done", flush=True)
"""


class GetpidChild:
    """A child process that makes exactly N getpid syscalls each time it is asked.

    Its tgid is known before it does anything, so the agent can be started with
    ``target_tgid`` set to it and every counted getpid is one of ours.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(SYS_GETPID), "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def getpid(self, n: int) -> None:
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("exit\n")
            self.proc.stdin.flush()
            self.proc.wait(10)

    def __enter__(self) -> GetpidChild:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def block_device_dir() -> Path:
    """A directory on a real block device (not tmpfs/overlay), for block I/O workloads."""
    for candidate in (Path("/var/tmp"), Path("/work"), Path(tempfile.gettempdir()), Path("/")):
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        major = os.major(st.st_dev)
        if major != 0 and Path(f"/sys/dev/block/{major}:{os.minor(st.st_dev)}").exists():
            return candidate
    raise RuntimeError("no directory on a block device found")


def fsync_writes(count: int, size: int = 4096, directory: Path | None = None) -> int:
    """Write and fsync ``count`` blocks; returns how many fsyncs were issued."""
    directory = directory or block_device_dir()
    fd, path = tempfile.mkstemp(dir=directory, prefix=".otelbpf-io-")
    try:
        block = os.urandom(size)
        for i in range(count):
            os.pwrite(fd, block, i * size)
            os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    return count
