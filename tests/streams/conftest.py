"""Fixtures for stream tests: the generator object of bpf/tests/stream_test.bpf.c, loaded for this process."""

from __future__ import annotations

import os

import pytest

from otelbpf.kernel.object import BpfObject


@pytest.fixture
def stream_test(bpf_build):
    """stream_test.bpf.o loaded (fresh maps per test) with target_tgid = this process."""
    obj = BpfObject.open(bpf_build / "tests" / "stream_test.bpf.o", parameters={"target_tgid": os.getpid()})
    obj.load()
    yield obj
    obj.close()
