"""Reliability fixtures: real backends that tests may stop and restart, programs filtered to one
child process, and helpers that read what the agent and the backends really saw."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import pytest
from agentproc import REPO
from backends import BackendUnavailable, GrpcMetricsReceiver, VictoriaMetrics

CONF_D = REPO / "conf" / "conf.d"


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


def syscalls_toml(target_tgid: int) -> str:
    """The shipped syscalls config, counting one process only."""
    text, n = re.subn(r"(?m)^target_tgid = 0$", f"target_tgid = {target_tgid}",
                      (CONF_D / "syscalls.toml").read_text())
    assert n == 1, "conf/conf.d/syscalls.toml must set target_tgid = 0 by default"
    return text


def programs_dir(tmp_path: Path, target_tgid: int, *, biolatency: bool = False) -> Path:
    programs = tmp_path / "conf.d"
    programs.mkdir(exist_ok=True)
    (programs / "syscalls.toml").write_text(syscalls_toml(target_tgid))
    if biolatency:
        shutil.copy(CONF_D / "biolatency.toml", programs / "biolatency.toml")
    return programs


def grpc_points(received, metric: str, **attrs) -> list:
    """Every data point of ``metric`` (sums only) whose attributes include ``attrs``, in order."""
    out = []
    for export in received:
        for rm in export.request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name != metric:
                        continue
                    for dp in m.sum.data_points:
                        have = {a.key: a.value.string_value for a in dp.attributes}
                        if all(have.get(k) == v for k, v in attrs.items()):
                            out.append(dp)
    return out


def flushes(agent, ok: bool | None = None) -> int:
    with agent._cond:
        return sum(1 for e in agent.logs if e.get("event") == "flushed"
                   and (ok is None or e.get("ok") is ok))


def wait_flushes(agent, n: int = 1, *, ok: bool | None = True, timeout: float = 30.0) -> None:
    """Wait until ``n`` more flushes (with that outcome) than now have been logged."""
    target = flushes(agent, ok) + n
    agent.wait_log(lambda _entry: flushes(agent, ok) >= target, timeout)


def no_traceback(agent) -> None:
    text = "".join(agent.raw_stderr) + "".join(agent.stdout_lines)
    assert "Traceback" not in text, text[-4000:]
