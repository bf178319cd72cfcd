"""Known workloads whose exact kernel-side effect the tests can predict."""

from __future__ import annotations

import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYS_GETPID = {"x86_64": 39, "aarch64": 172}[platform.machine()]
SYS_GETPGID = {"x86_64": 121, "aarch64": 155}[platform.machine()]


def fill_accept_queue(server: socket.socket) -> socket.socket:
    """Make a bound TCP socket a listener that drops every SYN sent to it: a backlog of 0 and one
    connection queued, which nobody accepts. Returns that connection's client socket once the
    listener has queued it: the handshake's last ACK is processed in a softirq, on a busy host
    after connect() has returned, and until then the listener still takes a connection."""
    server.listen(0)
    first = socket.create_connection(server.getsockname())
    deadline = time.monotonic() + 10
    # TCP_INFO of a listener: tcpi_unacked (offset 24) is its accept queue's length.
    while struct.unpack_from("=I", server.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104), 24)[0] < 1:
        assert time.monotonic() < deadline, "the listener never queued the connection"
        time.sleep(0.001)
    return first


_SYSCALL_CHILD = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "exit":
        break
    nr, arg, count = (int(x) for x in line.split())
    for _ in range(count):
        libc.syscall(nr, arg)   # raw syscall: no libc caching can hide a call
    print("done", flush=True)
"""


class SyscallChild:
    """A child process that makes exactly ``count`` raw syscalls ``nr(arg)`` each time it is asked.

    Its tgid is known before it does anything, so the agent can be started with ``target_tgid``
    set to it and every counted call is one of ours.
    """

    def __init__(self, executable: str = sys.executable) -> None:
        # A symlink to python named X runs with command name X: a filter BPF programs can match.
        self.proc = subprocess.Popen([executable, "-c", _SYSCALL_CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, nr: int, arg: int, count: int = 1) -> None:
        self.proc.stdin.write(f"{nr} {arg} {count}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def getpid(self, n: int) -> None:
        self.call(SYS_GETPID, 0, n)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("exit\n")
            self.proc.stdin.flush()
            self.proc.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


GetpidChild = SyscallChild  # the name the getpid-counting tests read best with


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


_PYTHON_CHILD = r"""
import sys
print("ready", flush=True)
scope = {}
for line in sys.stdin:
    if line.strip() == "exit":
        break
    exec(line.encode().decode("unicode_escape"), scope)
    print(repr(scope.get("result")), flush=True)
"""


class PythonChild:
    """A child process that runs the Python code it is sent, one piece at a time, and answers
    with ``repr(result)``. Its pid is known before it runs anything, so a program can be loaded
    with ``target_tgid`` set to it and every counted event is the child's."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _PYTHON_CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def run(self, code: str):
        self.proc.stdin.write(code.encode("unicode_escape").decode() + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, f"child died running {code!r}"
        return eval(answer)  # the child's own repr() of a plain value

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("exit\n")
            self.proc.stdin.flush()
            self.proc.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
