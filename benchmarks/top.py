"""CPU use of ``otelbpf top`` at a 1 s refresh with 1,000 maps and 100 programs on the host.

    sudo python3 benchmarks/top.py [--maps 1000] [--programs 100] [--seconds 30]

Creates the maps (the mix of benchmarks/map_pressure.py) and loads the trivial
tests/health_tracepoint.bpf.o program ``--programs`` times (60 of them attached), all in this
process, freed on exit.
Then, one after the other:

1. ``otelbpf top`` in a real terminal (a detached 160x45 tmux session), program view;
2. the same, switched to the map view (key ``m``): the maps do not change, so top re-measures
   only ring buffers and the maps whose memory reading is due;
3. the map view while every hash map's count changes every second (its worst case);
4. baseline: a process doing what the agent's builtins do every interval — ``MapPressure.collect``
   and ``ProgramStats.collect`` once per second.

Each is measured from /proc/PID/stat utime + stime over ``--seconds`` after a warm-up, as a
percentage of one core. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import struct
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from map_pressure import create_maps  # noqa: E402

from otelbpf.kernel.maps import MapType  # noqa: E402
from otelbpf.kernel.object import BpfObject  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
WARMUP_S = 5.0

BASELINE = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from otelbpf.config.agent import MapPressureConfig, ProgramStatsConfig
from otelbpf.health.map_pressure import MapPressure
from otelbpf.health.program_stats import ProgramStats
maps = MapPressure(MapPressureConfig(True, None, 0.7, 0.9, (), ()))
progs = ProgramStats(ProgramStatsConfig(True, None, (), ()))
print("ready", flush=True)
next_at = time.monotonic()
while True:
    now = time.time_ns()
    maps.collect(now)
    progs.collect(now)
    next_at += 1.0
    time.sleep(max(0.0, next_at - time.monotonic()))
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def measure(pid: int, seconds: float) -> float:
    """Percent of one core used by ``pid`` over ``seconds``."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return round((c1 - c0) / (t1 - t0) * 100, 3)


# The kernel runs at most 64 programs on one tracepoint (BPF_TRACE_MAX_PROGS); the rest stay loaded
# and unattached, which is just as many programs to list and read.
MAX_ATTACHED = 60


def load_programs(n: int, build: Path) -> list[tuple[BpfObject, object]]:
    loaded = []
    for i in range(n):
        obj = BpfObject.open(build / "tests" / "health_tracepoint.bpf.o")
        obj.load()
        loaded.append((obj, obj.attach("health_tp") if i < MAX_ATTACHED else None))
    return loaded


SOCKET = f"otelbpf-top-bench-{uuid.uuid4().hex[:8]}"  # a tmux server of our own


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], check=True, capture_output=True, text=True).stdout


class Churn:
    """Inserts or deletes one key in every hash map once per second, so every hash map's count
    changes between two refreshes: top must measure each of them again (its worst case)."""

    def __init__(self, maps) -> None:
        self.maps = [m for m in maps if m.type in (MapType.HASH, MapType.LRU_HASH, MapType.PERCPU_HASH)]
        self.running = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        key = struct.pack("=I", 100_000)
        present = False
        while self.running:
            for m in self.maps:
                if present:
                    m.delete(key)
                else:
                    m.update(key, bytes(m.value_buffer_size))
            present = not present
            time.sleep(1.0)

    def __enter__(self):
        self.running = True
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running = False
        self._thread.join()


def run_top(seconds: float, views: list[str], maps) -> dict[str, float]:
    session = f"otelbpf-top-bench-{uuid.uuid4().hex[:8]}"
    command = f"{sys.executable} -m otelbpf top --interval 1"
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "45", "-c", str(REPO), command)
    try:
        pid = int(tmux("display", "-p", "-t", session, "#{pane_pid}"))
        results = {}
        for view in views:
            if view == "maps":
                tmux("send-keys", "-t", session, "m")
            if view == "maps_churn":
                with Churn(maps):
                    time.sleep(WARMUP_S)
                    results[view] = measure(pid, seconds)
                continue
            time.sleep(WARMUP_S)
            results[view] = measure(pid, seconds)
        tmux("send-keys", "-t", session, "q")
        return results
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)


def run_baseline(seconds: float) -> float:
    proc = subprocess.Popen([sys.executable, "-c", BASELINE, str(REPO)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(WARMUP_S)
        return measure(proc.pid, seconds)
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=1000)
    parser.add_argument("--programs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.maps + 4 * args.programs + 1024)), hard))
    subprocess.run(["make", "-s", "-C", str(REPO / "bpf")], check=True)

    maps = create_maps(args.maps)
    programs = load_programs(args.programs, REPO / "bpf" / "build")
    try:
        load_before = os.getloadavg()[0]
        top = run_top(args.seconds, ["programs", "maps", "maps_churn"], maps)
        baseline = run_baseline(args.seconds)
        load_after = os.getloadavg()[0]
    finally:
        for obj, link in programs:
            if link is not None:
                link.close()
            obj.close()
        for m in maps:
            m.close()
    results = {
        "maps_created": args.maps,
        "programs_created": args.programs,
        "seconds": args.seconds,
        "interval_s": 1.0,
        "top_programs_view_cpu_percent": top["programs"],
        "top_maps_view_cpu_percent": top["maps"],
        "top_maps_view_all_hash_maps_changing_cpu_percent": top["maps_churn"],
        "agent_builtins_cpu_percent": baseline,
        "top_vs_agent_builtins": {view: round(top[view] / baseline, 3) if baseline else None for view in top},
        "target_cpu_percent": 2.0,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_1m": [load_before, load_after],
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
