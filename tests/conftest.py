"""Fixtures shared by every test area: the built BPF objects and the privileges kernel tests need."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BPF_DIR = REPO / "bpf"
BPF_BUILD = BPF_DIR / "build"


def _is_root() -> bool:
    return os.geteuid() == 0


@pytest.fixture(scope="session")
def bpf_build() -> Path:
    """bpf/build with every object compiled (runs `make -C bpf`, which is a no-op when up to date)."""
    if not _is_root():
        pytest.skip("kernel tests need root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)")
    subprocess.run(["make", "-s", "-C", str(BPF_DIR)], check=True)
    return BPF_BUILD


@pytest.fixture(scope="session")
def bpffs() -> Path:
    path = Path("/sys/fs/bpf")
    if not os.path.ismount(path):
        pytest.skip("bpffs is not mounted at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)")
    return path
