"""Fixtures shared by every test area: the built BPF objects and the privileges kernel tests need."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import structlog

REPO = Path(__file__).resolve().parent.parent
BPF_DIR = REPO / "bpf"
BPF_BUILD = BPF_DIR / "build"


@pytest.fixture(autouse=True)
def _logging_restored():
    """A test that runs the CLI in-process configures logging for the whole process (level,
    handlers): undo it, so that later tests capture the log lines they look for."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


TEST_PIN_DIRS = "otelbpf-test-*"  # pin directories tests create under bpffs (pin_dir, agentproc)


@pytest.fixture(autouse=True)
def _test_pins_removed():
    """Pin directories a test created under bpffs are removed after it, whichever helper made
    them: a pinned link left behind would keep a program attached after the test run."""
    root = Path("/sys/fs/bpf")
    before = set(root.glob(TEST_PIN_DIRS)) if os.path.ismount(root) else set()
    yield
    if os.path.ismount(root):
        for path in set(root.glob(TEST_PIN_DIRS)) - before:
            shutil.rmtree(path, ignore_errors=True)


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


# -- backends and per-test agent settings, shared by export, e2e and reliability tests ----------

def _start_victoria_metrics():
    from backends import BackendUnavailable, VictoriaMetrics

    try:
        return VictoriaMetrics().start()
    except BackendUnavailable as error:
        if os.environ.get("CI"):
            raise  # CI installs the backend: its absence there is a failure, not a skip
        pytest.skip(f"VictoriaMetrics unavailable: {error}")


@pytest.fixture(scope="session")
def victoria_metrics():
    """One VictoriaMetrics for the session; tests tell their series apart by a run_id label."""
    vm = _start_victoria_metrics()
    yield vm
    vm.close()


@pytest.fixture
def own_victoria_metrics():
    """A VictoriaMetrics this test alone uses, so it may stop and restart it."""
    vm = _start_victoria_metrics()
    yield vm
    vm.close()


@pytest.fixture
def grpc_receiver():
    from backends import GrpcMetricsReceiver

    with GrpcMetricsReceiver() as receiver:
        yield receiver


@pytest.fixture
def run_id() -> str:
    """A resource attribute value that tells this test's series apart in a shared backend."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def pin_dir(bpffs: Path):
    """A pin directory of this test's own under bpffs (the agent creates it), removed afterwards."""
    path = bpffs / f"otelbpf-test-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)  # only our own directory, never other pins
