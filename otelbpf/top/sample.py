"""One refresh of ``otelbpf top``: every program's cost and every map's fill, with their history.

All numbers come from the agent's own health code: ``program_interval`` (health/program_stats.py)
for rates, ``MapPressure.observations`` and ``map_pressure_level`` (health/map_pressure.py,
health/pressure.py) for fill and pressure. This module only keeps the previous reading, the
history and what changes slowly (attach targets, owners, which objects are otelbpf's).

Cost control: hash-map counts come from the map iterator without opening any map; each map's
memory (fdinfo, one open per map) is re-read every ``MEMORY_EVERY`` refreshes, spread over the
refreshes by map id, and owners/targets every ``SLOW_EVERY_S`` seconds or when a program appears.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from otelbpf.config.agent import MapPressureConfig
from otelbpf.config.program import ProgramConfig
from otelbpf.health.map_pressure import MapPressure, MapRecord
from otelbpf.health.pressure import LEVEL_CRITICAL, LEVEL_OK, LEVEL_WARNING, MapObservation, map_pressure_level
from otelbpf.health.program_stats import RunCounters, program_interval
from otelbpf.health.run_stats import RunTimeStats
from otelbpf.kernel import info
from otelbpf.kernel.names import prog_type_name
from otelbpf.top.ours import Ours, find_ours
from otelbpf.top.owners import Owner, program_owners
from otelbpf.top.targets import BtfNames, attach_targets

MEMORY_EVERY = 10
SLOW_EVERY_S = 10.0
LEVEL_NAMES = {LEVEL_OK: "ok", LEVEL_WARNING: "warning", LEVEL_CRITICAL: "critical"}


@dataclass(frozen=True)
class ProgramRow:
    id: int
    name: str
    type: str
    runs_per_s: float | None  # None until two readings exist
    avg_ns: float | None  # None: no run in the interval
    cpu_percent: float | None
    run_cnt: int
    run_time_ns: int
    attached: tuple[str, ...]
    owners: tuple[str, ...]
    map_ids: tuple[int, ...]
    otelbpf: str | None  # "PROGRAM: metric, ..." when an otelbpf agent loaded it

    def as_json(self) -> dict:
        return dataclasses.asdict(self) | {"attached": list(self.attached), "owners": list(self.owners),
                                           "map_ids": list(self.map_ids)}


@dataclass(frozen=True)
class MapRow:
    id: int
    name: str
    type: str
    entries: int | None
    max_entries: int
    utilization: float | None
    pressure: str | None  # "ok" | "warning" | "critical"; None when the fill is unknown
    prealloc_full: bool
    memory: int | None
    ringbuf_used: int | None
    count_method: str
    otelbpf: str | None

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Snapshot:
    programs: tuple[ProgramRow, ...]
    maps: tuple[MapRow, ...]
    interval_s: float | None  # wall time since the previous snapshot

    def as_json(self) -> dict:
        return {"interval_s": self.interval_s,
                "programs": [p.as_json() for p in self.programs],
                "maps": [m.as_json() for m in self.maps]}


class Sampler:
    """Holds run-time stats on and the map iterator loaded from construction until ``close()``."""

    def __init__(self, warning: float, critical: float, objects_dir: Path | None,
                 configs: Mapping[str, ProgramConfig], pin_dir: Path | None,
                 history_len: int = 300) -> None:
        self.warning, self.critical = warning, critical
        self.stats = RunTimeStats()
        self.pressure = MapPressure(MapPressureConfig(True, None, warning, critical, (), ()), objects_dir)
        self._configs, self._pin_dir = configs, pin_dir
        self._previous: dict[int, RunCounters] = {}
        self._memory: dict[int, int] = {}
        self._btf = BtfNames()
        self._targets: dict[int, tuple[str, ...]] = {}
        self._owners: dict[int, tuple[Owner, ...]] = {}
        self._ours = Ours()
        self._slow_at = 0.0
        self._known: set[int] = set()
        self._tick = 0
        self._last_ns: int | None = None
        # id -> (runs/s, avg ns) per refresh; id -> utilization per refresh
        self.program_history: dict[int, deque] = {}
        self.map_history: dict[int, deque] = {}
        self._history_len = history_len

    def sample(self) -> Snapshot:
        now = time.monotonic_ns()
        interval = None if self._last_ns is None else (now - self._last_ns) / 1e9
        self._last_ns = now
        progs = []
        for pi in info.prog_infos():
            progs.append((pi, RunCounters(pi.run_cnt, pi.run_time_ns, time.monotonic_ns())))
        observations = self.pressure.observations([(pi.name, pi.map_ids) for pi, _ in progs], self._open_map)
        observations = [self._with_memory(obs) for obs in observations]
        ids = {pi.id for pi, _ in progs}
        if ids - self._known or time.monotonic() >= self._slow_at:
            self._refresh_slow(progs, observations)
        self._known = ids
        self._tick += 1

        program_rows = []
        counters = {}
        for pi, current in progs:
            counters[pi.id] = current
            previous = self._previous.get(pi.id)
            rates = None if previous is None else program_interval(previous, current)
            row = ProgramRow(
                id=pi.id, name=pi.name, type=prog_type_name(pi.type),
                runs_per_s=None if rates is None else rates.runs_per_second,
                avg_ns=None if rates is None else rates.average_ns,
                cpu_percent=None if rates is None else rates.cpu_utilization * 100,
                run_cnt=pi.run_cnt, run_time_ns=pi.run_time_ns,
                attached=self._targets.get(pi.id, ()),
                owners=tuple(str(o) for o in self._owners.get(pi.id, ())), map_ids=pi.map_ids,
                otelbpf=self._ours.programs.get(pi.id))
            program_rows.append(row)
            if rates is not None:
                self._remember(self.program_history, pi.id, (row.runs_per_s, row.avg_ns))
        self._previous = counters
        map_rows = [self._map_row(obs) for obs in observations]
        for row in map_rows:
            self._remember(self.map_history, row.id, row.utilization)
        _forget(self.program_history, ids)
        _forget(self.map_history, {m.id for m in map_rows})
        return Snapshot(tuple(program_rows), tuple(map_rows), interval)

    def close(self) -> None:
        self.pressure.close()
        self.stats.close()
        self._btf.close()

    def _open_map(self, record: MapRecord) -> bool:
        return record.id not in self._memory or (record.id + self._tick) % MEMORY_EVERY == 0

    def _with_memory(self, obs: MapObservation) -> MapObservation:
        if obs.memory is not None:
            self._memory[obs.id] = obs.memory
            return obs
        cached = self._memory.get(obs.id)
        return obs if cached is None else dataclasses.replace(obs, memory=cached)

    def _refresh_slow(self, progs, observations) -> None:
        self._slow_at = time.monotonic() + SLOW_EVERY_S
        self._targets = attach_targets(self._btf)
        self._owners = program_owners()
        map_names = {obs.id: obs.name for obs in observations}
        self._ours = find_ours(self._configs, self._pin_dir, [pi for pi, _ in progs], map_names, self._owners)
        live = {obs.id for obs in observations}
        self._memory = {k: v for k, v in self._memory.items() if k in live}

    def _map_row(self, obs: MapObservation) -> MapRow:
        level = map_pressure_level(obs, self.warning, self.critical)
        return MapRow(
            id=obs.id, name=obs.name, type=obs.type, entries=obs.entries, max_entries=obs.max_entries,
            utilization=obs.utilization, pressure=None if level is None else LEVEL_NAMES[level],
            prealloc_full=obs.prealloc_full, memory=obs.memory, ringbuf_used=obs.ringbuf_used,
            count_method=obs.count_method.value, otelbpf=self._ours.maps.get(obs.id))

    def _remember(self, history: dict[int, deque], key: int, value) -> None:
        series = history.get(key)
        if series is None:
            series = history[key] = deque(maxlen=self._history_len)
        series.append(value)


def _forget(history: dict[int, deque], live: set[int]) -> None:
    """Drop the history of programs and maps that are gone (their ids are never reused soon)."""
    for key in [k for k in history if k not in live]:
        del history[key]
