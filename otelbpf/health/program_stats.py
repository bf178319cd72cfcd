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

SUMS: dict[str, tuple[str, str]] = {
    "bpf.program.run.count": ("Times the program ran while run-time statistics were on", "{run}"),
    "bpf.program.run.time": ("Total run time of the program while statistics were on", "ns"),
    "bpf.program.recursion.misses": ("Runs skipped because the program was already running on the CPU", "{miss}"),
}
GAUGES: dict[str, tuple[str, str]] = {
    "bpf.program.run.average_time": ("Average run time per run over the last interval", "ns"),
    "bpf.program.runs_per_second": ("Runs per second over the last interval", "{run}/s"),
    "bpf.program.cpu.utilization": ("Share of one CPU spent in the program over the last interval", "1"),
}


@dataclass(frozen=True, slots=True)
class _Sample:
    start_ns: int  # wall-clock start of the cumulative series
    run_cnt: int
    run_time_ns: int
    monotonic_ns: int

    @property
    def counters(self) -> RunCounters:
        return RunCounters(self.run_cnt, self.run_time_ns, self.monotonic_ns)


@dataclass(frozen=True)
class RunCounters:
    """A program's cumulative kernel counters and when they were read (CLOCK_MONOTONIC)."""

    run_cnt: int
    run_time_ns: int
    monotonic_ns: int


@dataclass(frozen=True)
class ProgramInterval:
    """What a program cost between two readings of its counters."""

    runs_per_second: float
    cpu_utilization: float  # share of one CPU
    average_ns: float | None  # None: no run in the interval


def counters_reset(previous: RunCounters, current: RunCounters) -> bool:
    """The kernel counters went backwards: the id now names a different program, or stats restarted."""
    return current.run_cnt < previous.run_cnt or current.run_time_ns < previous.run_time_ns


def program_interval(previous: RunCounters, current: RunCounters) -> ProgramInterval | None:
    """Rates between two readings as bpftop computes them; None when counters reset or no time passed."""
    if counters_reset(previous, current) or current.monotonic_ns <= previous.monotonic_ns:
        return None
    wall = current.monotonic_ns - previous.monotonic_ns
    runs = current.run_cnt - previous.run_cnt
    run_time = current.run_time_ns - previous.run_time_ns
    return ProgramInterval(runs * 1e9 / wall, run_time / wall, run_time / runs if runs else None)


def boot_to_wall_offset_ns() -> int:
    """Add to a CLOCK_BOOTTIME timestamp (e.g. prog_info load_time) to get wall-clock ns."""
    return time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


class ProgramStats:
    """``MetricSource`` of ``bpf.program.*`` metrics for every program on the host."""

    name = "program_stats"

    def __init__(self, config: ProgramStatsConfig) -> None:
        self.config = config
        self._accept = NameFilter(config.include, config.exclude)
        self.stats = RunTimeStats()
        self._previous: dict[int, _Sample] = {}

    def collect(self, now_ns: int) -> list[Metric]:
        offset = boot_to_wall_offset_ns()
        points: dict[str, list[NumberPoint]] = {name: [] for name in (*SUMS, *GAUGES)}
        current: dict[int, _Sample] = {}
        for pi, mono in self._programs():
            previous = self._previous.get(pi.id)
            counters = RunCounters(pi.run_cnt, pi.run_time_ns, mono)
            reset = previous is not None and counters_reset(previous.counters, counters)
            if previous is not None and not reset:
                start = previous.start_ns
            elif previous is None and pi.load_time:
                # Fixed at first sight: a start time that moved would read as a counter reset.
                start = pi.load_time + offset
            else:
                start = now_ns
            sample = _Sample(start, pi.run_cnt, pi.run_time_ns, mono)
            current[pi.id] = sample
            attrs = _attributes(pi)

            def add(name: str, value: int | float, start_ns: int = 0) -> None:
                points[name].append(NumberPoint(attrs, value, now_ns, start_ns))

            add("bpf.program.run.count", pi.run_cnt, start)
            add("bpf.program.run.time", pi.run_time_ns, start)
            add("bpf.program.recursion.misses", pi.recursion_misses, start)
            interval = None if previous is None else program_interval(previous.counters, counters)
            if interval is None:
                continue
            add("bpf.program.runs_per_second", interval.runs_per_second)
            add("bpf.program.cpu.utilization", interval.cpu_utilization)
            if interval.average_ns is not None:
                add("bpf.program.run.average_time", interval.average_ns)
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
