"""ProgramStats: run count, run time and CPU share of every BPF program on the host.

Statistics are enabled for as long as the source is open (run_stats.py), or for as long as the
agent holds them on (it switches them on before dropping CAP_SYS_ADMIN). Each collection lists
every program with one run of the iter/bpf_prog program (kernel/prog_iter.py), which needs no
CAP_SYS_ADMIN; without that object, programs are opened by id. Cumulative kernel counters are exported as
cumulative SUMs starting at the program's load time; per-interval rates are derived from the
difference to the previous collection, as bpftop does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from otelbpf.config.agent import ProgramStatsConfig
from otelbpf.config.trust import check_trusted
from otelbpf.kernel.names import prog_type_name
from otelbpf.health.name_filter import NameFilter
from otelbpf.health.run_stats import RunTimeStats
from otelbpf.kernel import info
from otelbpf.kernel.info import ProgInfo
from otelbpf.kernel.prog_iter import OBJECT_FILE, ProgIterator
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

    def __init__(self, config: ProgramStatsConfig, objects_dir: Path | None = None,
                 stats: RunTimeStats | None = None) -> None:
        self.config = config
        self._accept = NameFilter(config.include, config.exclude)
        # Statistics the agent switched on are the agent's to close.
        self._owns_stats = stats is None
        self.stats = RunTimeStats() if stats is None else stats
        self._previous: dict[int, _Sample] = {}
        self.iterator, self.fallback_reason = open_prog_iterator(objects_dir)

    @property
    def method(self) -> str:
        """How programs are enumerated: "iterator" or "syscalls" (needs CAP_SYS_ADMIN)."""
        return "iterator" if self.iterator is not None else "syscalls"

    def collect(self, now_ns: int) -> list[Metric]:
        boot_ns = boot_time_ns()
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
            interval = None if previous is None else program_interval(previous.counters, counters)
            if interval is None:
                continue
            add("bpf.program.run.rate", interval.runs_per_second)
            add("bpf.program.cpu.utilization", interval.cpu_utilization)
            if interval.average_ns is not None:
                add("bpf.program.run.average_time", interval.average_ns / _NS)
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
        if self._owns_stats:
            self.stats.close()
        if self.iterator is not None:
            self.iterator.close()
            self.iterator = None

    def _programs(self):
        """(ProgInfo, CLOCK_MONOTONIC ns right after reading it) of every accepted program."""
        for pi in info.prog_infos(self.iterator):
            mono = time.monotonic_ns()
            if self._accept(pi.name):
                yield pi, mono


def open_prog_iterator(objects_dir: Path | None) -> tuple[ProgIterator | None, str | None]:
    """The iter/bpf_prog lister from ``objects_dir`` (default: the checkout's bpf/build), or None
    and why not: any load failure degrades to listing by id, it never stops the agent."""
    from otelbpf.health.map_pressure import DEFAULT_BUILD_DIR

    path = (objects_dir if objects_dir is not None else DEFAULT_BUILD_DIR) / OBJECT_FILE
    try:
        check_trusted(path, "BPF object")
        return ProgIterator(path), None
    except Exception as exc:
        reason = f"iter/bpf_prog program unavailable ({path}): {type(exc).__name__}: {exc}"
        log.warning("%s; listing programs by id, which needs CAP_SYS_ADMIN", reason)
        return None, reason


def _attributes(pi: ProgInfo) -> Attributes:
    return (
        ("bpf.program.id", pi.id),
        ("bpf.program.name", pi.name),
        ("bpf.program.type", prog_type_name(pi.type)),
        ("bpf.program.tag", pi.tag),
    )
