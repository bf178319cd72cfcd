"""Fixtures for the export tests: real backends from tests/backends.py and small model builders."""

from __future__ import annotations

import time

import pytest
from backends import (  # tests/ is on sys.path: pytest inserts the rootdir conftest's folder
    BackendUnavailable,
    ScriptedHttpServer,
    TestCertificates,
)
from structlog.testing import capture_logs

from otelbpf.config.agent import ExportConfig
from otelbpf.metrics.model import Resource


@pytest.fixture
def http_server():
    with ScriptedHttpServer() as server:
        yield server


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> TestCertificates:
    try:
        return TestCertificates.create(tmp_path_factory.mktemp("certs"))
    except BackendUnavailable as error:
        pytest.skip(str(error))


@pytest.fixture
def unique_resource(request) -> Resource:
    """A resource with a service.name unique to the test: selects its series in a shared backend."""
    name = f"t_{request.node.name}_{time.time_ns()}".replace("[", "_").replace("]", "_")
    return Resource((("service.name", name), ("service.instance.id", "test-instance")))


@pytest.fixture
def captured_logs():
    """Every structlog event as a dict."""
    with capture_logs() as logs:
        yield logs


def export_config(**overrides) -> ExportConfig:
    """A real ExportConfig, with quiet test defaults for every field not given."""
    defaults = dict(protocol="http/protobuf", endpoint=None, temporality="cumulative", headers={},
                    compression="none", timeout=10.0, insecure=False, certificate=None,
                    client_certificate=None, client_key=None, max_backoff=30.0)
    return ExportConfig(**{**defaults, **overrides})
