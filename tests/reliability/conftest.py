"""Reliability fixtures: real backends that a test may stop and restart, isolated pin directories.
Plain helpers live in reliability_harness.py (a conftest cannot be imported by name reliably)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from backends import BackendUnavailable, GrpcMetricsReceiver, VictoriaMetrics


def _vm() -> VictoriaMetrics:
    try:
        return VictoriaMetrics().start()
    except BackendUnavailable as error:
        if os.environ.get("CI"):
            raise  # CI installs the backend: its absence there is a failure, not a skip
        pytest.skip(f"VictoriaMetrics unavailable: {error}")


@pytest.fixture(scope="session")
def victoria_metrics():
    """One shared VictoriaMetrics; tests tell their series apart with the run_id label."""
    vm = _vm()
    yield vm
    vm.close()


@pytest.fixture
def own_victoria_metrics():
    """A VictoriaMetrics this test alone uses, so it may stop and restart it."""
    vm = _vm()
    yield vm
    vm.close()


@pytest.fixture
def grpc_receiver():
    with GrpcMetricsReceiver() as receiver:
        yield receiver


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def pin_dir(bpffs: Path):
    path = bpffs / f"otelbpf-test-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)  # only our own directory

