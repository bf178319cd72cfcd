"""Fixtures for host BPF health tests: a separate process that owns maps, and source configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from otelbpf.config.agent import MapPressureConfig, ProgramStatsConfig

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@dataclass
class MapOwner:
    process: subprocess.Popen
    ids: dict[str, int]
    keys: dict[str, int]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def start_map_owner(bpf_build: Path) -> MapOwner:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "map_owner.py"), str(bpf_build)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise RuntimeError(f"map_owner.py exited with {proc.returncode} before printing its map ids")
    data = json.loads(line)
    return MapOwner(proc, data["ids"], data["keys"])


@pytest.fixture
def map_owner(bpf_build: Path) -> Iterator[MapOwner]:
    owner = start_map_owner(bpf_build)
    try:
        yield owner
    finally:
        owner.kill()


def map_pressure_config(**overrides) -> MapPressureConfig:
    fields = dict(enabled=True, interval=None, warning=0.7, critical=0.9, include=(), exclude=())
    fields.update(overrides)
    return MapPressureConfig(**fields)


def program_stats_config(**overrides) -> ProgramStatsConfig:
    fields = dict(enabled=True, interval=None, include=(), exclude=())
    fields.update(overrides)
    return ProgramStatsConfig(**fields)


def points_by(metrics, id_key: str) -> dict[str, dict[int, object]]:
    """{metric name: {object id: point}} for the points of ``metrics``."""
    out: dict[str, dict[int, object]] = {}
    for metric in metrics:
        for point in metric.points:
            out.setdefault(metric.name, {})[dict(point.attributes)[id_key]] = point
    return out
