"""Fixtures for kernel-layer tests: the test BPF objects and a private bpffs directory."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    """Every test here makes bpf(2) calls that need CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN."""
    if os.geteuid() != 0:
        pytest.skip("kernel tests need root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)")


@pytest.fixture(scope="session")
def objects(bpf_build: Path) -> Path:
    """bpf/build/tests: the compiled bpf/tests/*.bpf.c objects."""
    return bpf_build / "tests"


@pytest.fixture
def pin_dir(bpffs: Path) -> Iterator[Path]:
    """A fresh directory under bpffs, removed afterwards (only this directory: other pins are not ours)."""
    path = bpffs / f"otelbpf-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
