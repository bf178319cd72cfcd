"""The agent's own footprint, under the semantic conventions' process metrics (``process.*``), in
the agent's ``otelbpf`` scope, so a cost nobody can see stays that way."""

from __future__ import annotations

import os
import resource
import time

from otelbpf.metrics.model import Metric, MetricKind, NumberPoint

_PAGE = os.sysconf("SC_PAGE_SIZE")
CPU_MODES = ("user", "system")


def memory_bytes() -> tuple[int, int]:
    """(resident, virtual) memory of this process in bytes, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        size, resident = f.read().split()[:2]
    return int(resident) * _PAGE, int(size) * _PAGE


def thread_count() -> int:
    with open("/proc/self/stat") as f:
        # Field 20 (num_threads); the command name (field 2) may hold spaces, so count from ")".
        return int(f.read().rsplit(")", 1)[1].split()[17])


class Watchdog:
    def __init__(self) -> None:
        self.start_ns = time.time_ns()
        self._last_cpu = self._cpu_seconds()
        self._last_wall = time.monotonic()

    @staticmethod
    def _cpu_seconds() -> tuple[float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime, usage.ru_stime

    def collect(self, now_ns: int) -> list[Metric]:
        cpu, wall = self._cpu_seconds(), time.monotonic()
        elapsed = wall - self._last_wall
        # The convention divides by the CPUs available to the process: 1.0 = all of them busy.
        cpus = len(os.sched_getaffinity(0))
        shares = [(now - before) / elapsed / cpus if elapsed > 0 else 0.0
                  for now, before in zip(cpu, self._last_cpu)]
        self._last_cpu, self._last_wall = cpu, wall
        resident, virtual = memory_bytes()
        start = self.start_ns

        def by_mode(values, start_ns: int = 0) -> tuple[NumberPoint, ...]:
            return tuple(NumberPoint((("cpu.mode", mode),), v, now_ns, start_ns) for mode, v in zip(CPU_MODES, values))

        def up_down(name: str, description: str, unit: str, value: int) -> Metric:
            return Metric(name, description, unit, MetricKind.SUM, (NumberPoint((), value, now_ns, start),),
                          monotonic=False)

        return [
            Metric("process.cpu.time", "CPU time the agent used, by mode", "s",
                   MetricKind.SUM, by_mode(cpu, start)),
            Metric("process.cpu.utilization",
                   "Share of the CPUs available to the agent that it used since the previous collection",
                   "1", MetricKind.GAUGE, by_mode(shares)),
            up_down("process.memory.usage", "Resident memory of the agent", "By", resident),
            up_down("process.memory.virtual", "Virtual memory of the agent", "By", virtual),
            up_down("process.thread.count", "Threads of the agent", "{thread}", thread_count()),
            up_down("process.open_file_descriptor.count", "File descriptors the agent holds open",
                    "{file_descriptor}", len(os.listdir("/proc/self/fd")) - 1),  # minus listdir's own
        ]
