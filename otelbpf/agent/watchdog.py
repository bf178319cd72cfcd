"""The agent's own footprint, exported as ``otelbpf.agent.*`` so a cost nobody can see stays that way."""

from __future__ import annotations

import os
import resource
import time

from otelbpf.metrics.model import Metric, MetricKind, NumberPoint

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class Watchdog:
    def __init__(self) -> None:
        self.start_ns = time.time_ns()
        self._last_cpu = self._cpu_seconds()
        self._last_wall = time.monotonic()

    @staticmethod
    def _cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def collect(self, now_ns: int) -> list[Metric]:
        cpu, wall = self._cpu_seconds(), time.monotonic()
        share = (cpu - self._last_cpu) / (wall - self._last_wall) if wall > self._last_wall else 0.0
        self._last_cpu, self._last_wall = cpu, wall
        return [
            Metric("otelbpf.agent.memory.rss", "Resident memory of the agent", "By",
                   MetricKind.GAUGE, (NumberPoint((), rss_bytes(), now_ns),)),
            Metric("otelbpf.agent.cpu.time", "CPU time used by the agent (user + system)", "s",
                   MetricKind.SUM, (NumberPoint((), cpu, now_ns, self.start_ns),)),
            Metric("otelbpf.agent.cpu.utilization",
                   "Share of one CPU the agent used since the previous collection", "1",
                   MetricKind.GAUGE, (NumberPoint((), share, now_ns),)),
        ]
