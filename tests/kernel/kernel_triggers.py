"""Syscall triggers for kernel tests: the test BPF programs count getpgid(key) calls under `key`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def getpgid_calls(key: int, times: int = 1) -> None:
    """Make `times` getpgid(key) syscalls; the test programs count them under `key`."""
    for _ in range(times):
        try:
            os.getpgid(key)
        except ProcessLookupError:  # no such pid: the syscall still ran (and was traced)
            pass


@contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """Run the block with this thread pinned to `cpu` (sched_setaffinity migrates before returning)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
