"""End-to-end fixtures: a real VictoriaMetrics, built BPF objects, and per-test agent settings."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from backends import BackendUnavailable, GrpcMetricsReceiver, VictoriaMetrics


@pytest.fixture(scope="session")
def victoria_metrics():
    try:
        vm = VictoriaMetrics().start()
    except BackendUnavailable as error:
        if os.environ.get("CI"):
            raise  # CI installs the backend: its absence there is a failure, not a skip
        pytest.skip(f"VictoriaMetrics unavailable: {error}")
    yield vm
    vm.close()


@pytest.fixture
def grpc_receiver():
    with GrpcMetricsReceiver() as receiver:
        yield receiver


@pytest.fixture
def run_id() -> str:
    """A resource attribute that tells this test's series apart in the shared backend."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def pin_dir(bpffs: Path):
    path = bpffs / f"otelbpf-test-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)  # only our own directory
