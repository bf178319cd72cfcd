"""No listening socket by default; the optional health endpoint answers on localhost only."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from agentproc import AgentProcess, programs_dir, write_agent_config

pytestmark = pytest.mark.kernel


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that process ``pid`` holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and inode in inodes:  # TCP_LISTEN
                addr, port = local.split(":")
                found.append((addr, int(port, 16)))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_default_agent_listens_on_nothing(tmp_path: Path, bpf_build: Path) -> None:
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                programs_dir=programs_dir(tmp_path, os.getpid()), builtins=True)
    with AgentProcess(config, log_level="info") as agent:
        agent.wait_event("agent started")
        sockets = listening_sockets(agent.proc.pid)
        assert agent.stop() == 0
    assert sockets == []


def test_health_endpoint_reports_export_and_programs(tmp_path: Path, bpf_build: Path, victoria_metrics) -> None:
    port = free_port()
    config = write_agent_config(tmp_path, endpoint=victoria_metrics.otlp_http_endpoint, programs=["syscalls"],
                                programs_dir=programs_dir(tmp_path, os.getpid()),
                                extra=f'[health_endpoint]\nenabled = true\naddress = "127.0.0.1:{port}"\n')
    with AgentProcess(config) as agent:
        agent.wait_event("agent started")
        sockets = listening_sockets(agent.proc.pid)
        before_status, before = get(f"http://127.0.0.1:{port}/")
        agent.wait_log(lambda e: e.get("event") == "flushed" and e.get("ok"))
        status, body = get(f"http://127.0.0.1:{port}/health")
        assert agent.stop() == 0
    assert sockets == [("0100007F", port)]  # 127.0.0.1 only
    # Right after start (maybe before the first flush, 1 s in): alive.
    assert (before_status, before["status"]) == (200, "ok")
    assert status == 200
    assert body["status"] == "ok" and body["programs_up"] == ["syscalls"] and body["programs_failed"] == []
    assert body["last_successful_export"] is not None and body["seconds_since_flush"] < 5


def test_a_stuck_flush_loop_fails_the_probe() -> None:
    from otelbpf.agent.health_endpoint import HealthState

    state = HealthState(stale_after=0.05)
    state.flushed(ok=False)
    assert state.report()[0] == 200
    time.sleep(0.1)
    status, body = state.report()
    assert (status, body["status"], body["last_successful_export"]) == (503, "stuck", None)
