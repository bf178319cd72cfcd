"""ProgramStats: run count, run time and CPU share of every BPF program on the host.

Statistics are enabled for as long as the source is open (run_stats.py); each collection reads
``struct bpf_prog_info`` of every program by id. Cumulative kernel counters are exported as
cumulative SUMs starting at the program's load time; per-interval rates are derived from the
difference to the previous collection, as bpftop does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from otelbpf.config.agent import ProgramStatsConfig
from otelbpf.kernel.names import prog_type_name
from otelbpf.health.name_filter import NameFilter
from otelbpf.health.run_stats import RunTimeStats
from otelbpf.kernel import info
from otelbpf.kernel.info import ProgInfo
from otelbpf.metrics.model import Attributes, Metric, MetricKind, NumberPoint

log = logging.getLogger("otelbpf.health.program_stats")

# Durations in seconds, as the semantic conventions ask: the kernel's ns become a double (exact
# to the ns for the first 2^53 ns, 104 days, of run time; within one part in 2^53 after that).
SUMS: dict[str, tuple[str, str]] = {
    "bpf.program.runs": ("Times the program ran while run-time statistics were on", "{run}"),
    "bpf.program.run.time": ("Total run time of the program while statistics were on", "s"),
    "bpf.program.recursion.misses": ("Runs skipped because the program was already running on the CPU", "{miss}"),
}
GAUGES: dict[str, tuple[str, str]] = {
    "bpf.program.run.average_time": ("Average run time per run over the last interval", "s"),
    "bpf.program.run.rate": ("Runs per second over the last interval", "{run}/s"),
    "bpf.program.cpu.utilization": ("Share of one CPU spent in the program over the last interval", "1"),
}
_NS = 1e9


@dataclass(frozen=True)
class _Sample:
    start_ns: int  # wall-clock start of the cumulative series
    run_cnt: int
    run_time_ns: int
    monotonic_ns: int


def boot_time_ns(stat: str = "/proc/stat") -> int:
    """The wall-clock time of boot as the kernel states it (``btime`` in /proc/stat, whole seconds).

    Add a CLOCK_BOOTTIME timestamp (prog_info load_time) to it for wall-clock ns. Measuring
    REALTIME - BOOTTIME in each process instead gives a value that moves by microseconds from one
    process to the next, so every agent restart would move the series' start time, which readers
    of delta and cumulative data take for a counter reset. The kernel's btime is the same for
    every process; being rounded down, it puts a start at most a second early, never after the
    first count.
    """
    with open(stat, "rb") as f:
        for line in f:
            if line.startswith(b"btime "):
                return int(line.split()[1]) * 1_000_000_000
    raise OSError(f"{stat} has no btime line")


class ProgramStats:
    """``MetricSource`` of ``bpf.program.*`` metrics for every program on the host."""

    name = "program_stats"

    def __init__(self, config: ProgramStatsConfig) -> None:
        self.config = config
        self._accept = NameFilter(config.include, config.exclude)
        self.stats = RunTimeStats()
        self._previous: dict[int, _Sample] = {}

    def collect(self, now_ns: int) -> list[Metric]:
        boot_ns = boot_time_ns()
        points: dict[str, list[NumberPoint]] = {name: [] for name in (*SUMS, *GAUGES)}
        current: dict[int, _Sample] = {}
        for pi, mono in self._programs():
            previous = self._previous.get(pi.id)
            reset = previous is not None and (
                pi.run_cnt < previous.run_cnt or pi.run_time_ns < previous.run_time_ns
            )
            if previous is not None and not reset:
                start = previous.start_ns
            elif previous is None and pi.load_time:
                # Fixed at first sight: a start time that moved would read as a counter reset.
                start = pi.load_time + boot_ns
            else:
                start = now_ns
            sample = _Sample(start, pi.run_cnt, pi.run_time_ns, mono)
            current[pi.id] = sample
            attrs = _attributes(pi)

            def add(name: str, value: int | float, start_ns: int = 0) -> None:
                points[name].append(NumberPoint(attrs, value, now_ns, start_ns))

            add("bpf.program.runs", pi.run_cnt, start)
            add("bpf.program.run.time", pi.run_time_ns / _NS, start)
            add("bpf.program.recursion.misses", pi.recursion_misses, start)
            if previous is None or reset or mono <= previous.monotonic_ns:
                continue
            wall = mono - previous.monotonic_ns
            runs = pi.run_cnt - previous.run_cnt
            run_time = pi.run_time_ns - previous.run_time_ns
            add("bpf.program.run.rate", runs * _NS / wall)
            add("bpf.program.cpu.utilization", run_time / wall)
            if runs:
                add("bpf.program.run.average_time", run_time / runs / _NS)
        self._previous = current  # programs that are gone stop being exported
        metrics = [
            Metric(name, desc, unit, MetricKind.SUM, tuple(points[name]), monotonic=True)
            for name, (desc, unit) in SUMS.items()
            if points[name]
        ]
        metrics += [
            Metric(name, desc, unit, MetricKind.GAUGE, tuple(points[name]))
            for name, (desc, unit) in GAUGES.items()
            if points[name]
        ]
        return metrics

    def close(self) -> None:
        self.stats.close()

    def _programs(self):
        """(ProgInfo, CLOCK_MONOTONIC ns right after reading it) of every accepted program."""
        for pi in info.prog_infos():
            mono = time.monotonic_ns()
            if self._accept(pi.name):
                yield pi, mono


def _attributes(pi: ProgInfo) -> Attributes:
    return (
        ("bpf.program.id", pi.id),
        ("bpf.program.name", pi.name),
        ("bpf.program.type", prog_type_name(pi.type)),
        ("bpf.program.tag", pi.tag),
    )
