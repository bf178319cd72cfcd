"""Reload: how long a changed program goes uncounted when SIGHUP swaps it.

    sudo python3 benchmarks/reload_gap.py [--reloads 20]

Runs `python -m otelbpf run` with the shipped `syscalls` program and reloads it N times with a
changed help text: a swap between versions sharing their pinned map, so the old one is detached
before the new one attaches; the agent logs ``uncounted_ms``, the time between the two. The
baseline, from the same run, is what a close-then-load reload leaves uncounted: the whole prepare
(open, verifier, load) plus the attach, i.e. the time from "program changed, reloading" to
"program swapped". Then N reloads to a version (another object, no shared map) that fails to
attach: counted is how many of them detached the running version at all ("program kept" lines).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import uuid
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from agentproc import AgentProcess, programs_dir, write_agent_config

# Every program loads; one uprobe names a symbol libc does not have, so only attaching fails.
ATTACH_FAILS = ('object = "tests/kernel_uprobe.bpf.o"\n[[counters]]\nname = "uprobe.hits"\n'
                'map = "uprobe_hits"\n'
                'labels = [{ name = "hit", size = 4, decoders = [{ name = "uint" }] }]\n')


def reload(agent: AgentProcess, event: str) -> dict:
    seen = agent.count_events(event)
    agent.signal(signal.SIGHUP)
    return agent.wait_log(lambda e: e.get("event") == event and agent.count_events(event) > seen)


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reloads", type=int, default=20)
    args = parser.parse_args()
    pin_dir = Path("/sys/fs/bpf") / f"otelbpf-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        programs = programs_dir(tmp_path, 1)
        config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls"],
                                    programs_dir=programs, pin_dir=pin_dir, interval="60s")
        good = (programs / "syscalls.toml").read_text()
        swaps, baseline = [], []
        with AgentProcess(config, log_level="info") as agent:
            agent.wait_event("agent started")
            for i in range(args.reloads):
                (programs / "syscalls.toml").write_text(good.replace(
                    'help = "System calls entered, by system call"', f'help = "v{i}"'))
                began = reload(agent, "program changed, reloading")
                done = agent.wait_log(lambda e, n=i + 1: e.get("event") == "program swapped"
                                      and agent.count_events("program swapped") >= n)
                done = [e for e in agent.logs if e.get("event") == "program swapped"][i]
                swaps.append(done["uncounted_ms"])
                baseline.append((datetime.fromisoformat(done["timestamp"].rstrip("Z"))
                                 - datetime.fromisoformat(began["timestamp"].rstrip("Z")))
                                .total_seconds() * 1e3)
            for _ in range(args.reloads):
                (programs / "syscalls.toml").write_text(ATTACH_FAILS)
                reload(agent, "reload rejected for program: keeping the running version")
                (programs / "syscalls.toml").write_text(good)
            rejected = agent.count_events("program kept: the running version is attached again")
            agent.stop()
        for path in sorted(pin_dir.rglob("*"), reverse=True):  # only our own directory
            path.rmdir() if path.is_dir() else path.unlink()
        pin_dir.rmdir()
    print(json.dumps({
        "reloads": args.reloads,
        "swap_uncounted_ms": summary(swaps),
        "rejected_swaps": args.reloads,
        "rejected_swaps_that_detached_the_running_version": rejected,
        "close_then_load_uncounted_ms": summary(baseline),
        "ratio_swap_vs_close_then_load": round(statistics.median(swaps) / statistics.median(baseline), 4),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
