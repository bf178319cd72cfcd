"""Fixtures for ``otelbpf top`` tests: a known program with a paced workload, a known map, tmux."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from otelbpf.kernel.maps import BpfMap, MapType
from otelbpf.kernel.object import BpfObject

REPO = Path(__file__).resolve().parent.parent.parent
MAP_KEYS = 37  # keys the test puts in syscall_counts: its exact entry count

# Calls sched_get_priority_max (nothing else on the test host does: see
# bpf/tests/health_tracepoint.bpf.c) in 10 ms slices at a fixed rate; prints calls and seconds.
_WORKLOAD = r"""
import os, sys, time
rate = float(sys.argv[1])
calls, start = 0, time.monotonic()
try:
    while True:
        due = int((time.monotonic() - start) * rate)
        while calls < due:
            os.sched_get_priority_max(os.SCHED_OTHER)
            calls += 1
        time.sleep(0.01)
except KeyboardInterrupt:
    print(calls, time.monotonic() - start, flush=True)
"""


@dataclass
class KnownProgram:
    prog_id: int
    map_id: int
    map_name: str  # unique on the host: the test filters by it
    rate: float  # calls per second the workload makes
    known_map: BpfMap

    def top_command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "otelbpf", "top", *args]


@pytest.fixture
def known_program(bpf_build):
    """health_tp attached and driven at 2,000 runs/s; syscalls.bpf.o loaded (a second program); a
    hash map of 1,024 entries with a unique name holding exactly MAP_KEYS keys."""
    tp = BpfObject.open(bpf_build / "tests" / "health_tracepoint.bpf.o")
    tp.load()
    link = tp.attach("health_tp")
    counts = BpfObject.open(bpf_build / "syscalls.bpf.o")
    counts.load()
    known_map = BpfMap.create(MapType.HASH, 4, 8, 1024, name=f"top_{uuid.uuid4().hex[:8]}")
    for key in range(MAP_KEYS):
        known_map.update(struct.pack("=I", key), bytes(known_map.value_buffer_size))
    rate = 2000.0
    workload = subprocess.Popen([sys.executable, "-c", _WORKLOAD, str(rate)], stdout=subprocess.PIPE, text=True)
    try:
        yield KnownProgram(tp.programs["health_tp"].id, known_map.id, known_map.name, rate, known_map)
    finally:
        workload.send_signal(2)
        workload.communicate(timeout=10)
        link.close()
        tp.close()
        counts.close()
        known_map.close()


class Tmux:
    """One detached tmux session running a shell; the command under test is typed into it."""

    def __init__(self, width: int, height: int) -> None:
        if shutil.which("tmux") is None:
            pytest.skip("tmux is not installed (APT_PACKAGES in Makefile / .ci/run add it)")
        self.name = f"otelbpf-top-{uuid.uuid4().hex[:8]}"
        # A tmux server of its own (-L): no other session on the host can interfere.
        self.tmux = ["tmux", "-L", self.name]
        env = {**os.environ, "PS1": "$ ", "TERM": "xterm-256color"}
        subprocess.run([*self.tmux, "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                        "bash --norc --noprofile"], check=True, env=env, cwd=REPO)

    def send(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def type_line(self, text: str) -> None:
        self.send("-l", text)
        self.send("Enter")

    def screen(self, colours: bool = False) -> str:
        """The pane as text; ``colours``: with the SGR escape sequences (capture-pane -e)."""
        return subprocess.run([*self.tmux, "capture-pane", "-p", *(["-e"] if colours else []), "-t", self.name],
                              check=True, capture_output=True, text=True).stdout

    def alternate_screen(self) -> bool:
        out = subprocess.run([*self.tmux, "display", "-p", "-t", self.name, "#{alternate_on}"], check=True,
                             capture_output=True, text=True).stdout
        return out.strip() == "1"

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen within {timeout}s: {what}\nscreen:\n{screen}")
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


@pytest.fixture
def tmux_factory():
    sessions = []

    def make(width: int, height: int) -> Tmux:
        session = Tmux(width, height)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()
