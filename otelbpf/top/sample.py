"""One refresh of ``otelbpf top``: every program's cost and every map's fill, with their history.

All numbers come from the agent's own health code: ``program_interval`` (health/program_stats.py)
for rates, ``MapPressure.records``, ``observe`` and ``map_pressure_level`` (health/map_pressure.py,
health/pressure.py) for fill and pressure. This module only keeps the previous reading, the
history and what changes slowly (attach targets, owners, which objects are otelbpf's).

Cost control: hash-map counts come from the map iterator without opening any map; a map whose
record did not change is not measured again (``_observe_maps``); each map's
memory (fdinfo, one open per map) is re-read every ``MEMORY_EVERY`` map readings, spread over them
by map id; maps are read every refresh while the map view is shown and every
``MAPS_EVERY_HIDDEN`` refreshes otherwise (so the fill history goes on, coarser); attach targets,
owners and otelbpf's own objects every ``SLOW_EVERY_S`` seconds; when a program appears, its
target within ``TARGETS_MIN_S`` and its owner within ``OWNERS_MIN_S``.
"""

from __future__ import annotations

import dataclasses
import struct
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from otelbpf.config.agent import MapPressureConfig
from otelbpf.config.program import ProgramConfig
from otelbpf.decoders.cgroup import CgroupDecoder
from otelbpf.health.map_pressure import MapPressure, MapRecord, count_needs_fd, observe
from otelbpf.health.pressure import (LEVEL_CRITICAL, LEVEL_OK, LEVEL_WARNING, MapObservation, map_pressure_level,
                                     owners_by_map)
from otelbpf.health.program_stats import RunCounters, program_interval
from otelbpf.health.run_stats import RunTimeStats
from otelbpf.kernel import info
from otelbpf.kernel.names import prog_type_name
from otelbpf.top.ours import Ours, find_ours
from otelbpf.top.owners import Owner, program_owners
from otelbpf.kernel.link_targets import BtfNames, attach_targets

MEMORY_EVERY = 30
MAPS_EVERY_HIDDEN = 5
SLOW_EVERY_S = 30.0
OWNERS_MIN_S = 10.0
TARGETS_MIN_S = 2.0
LEVEL_NAMES = {LEVEL_OK: "ok", LEVEL_WARNING: "warning", LEVEL_CRITICAL: "critical"}


# Rows are plain (not frozen) dataclasses: a thousand are built per refresh, and a frozen
# dataclass's __init__ costs several times more.
@dataclass
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


class MapRow:
    """One map as shown: a ``MapObservation`` plus what top adds (memory read earlier, the otelbpf
    metrics it feeds, the pressure level). Fields are derived on access, so a refresh costs one
    small object per changed map and only shown or sorted-by values are computed."""

    __slots__ = ("obs", "memory", "otelbpf", "utilization", "_warning", "_critical")

    def __init__(self, obs: MapObservation, memory: int | None, otelbpf: str | None,
                 warning: float, critical: float) -> None:
        self.obs, self.memory, self.otelbpf = obs, memory, otelbpf
        self.utilization = obs.utilization  # read for the history and every sort: computed once
        self._warning, self._critical = warning, critical

    id = property(lambda self: self.obs.id)
    name = property(lambda self: self.obs.name)
    type = property(lambda self: self.obs.type)
    entries = property(lambda self: self.obs.entries)
    max_entries = property(lambda self: self.obs.max_entries)
    prealloc_full = property(lambda self: self.obs.prealloc_full)
    ringbuf_used = property(lambda self: self.obs.ringbuf_used)
    count_method = property(lambda self: self.obs.count_method.value)

    @property
    def pressure(self) -> str | None:
        """"ok" | "warning" | "critical"; None when the fill is unknown."""
        level = map_pressure_level(self.obs, self._warning, self._critical)
        return None if level is None else LEVEL_NAMES[level]

    def as_json(self) -> dict:
        return {key: getattr(self, key) for key in MAP_FIELDS}


MAP_FIELDS = ("id", "name", "type", "entries", "max_entries", "utilization", "pressure", "prealloc_full",
              "memory", "ringbuf_used", "count_method", "otelbpf")


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
        self._observed: dict[int, tuple[MapRecord, MapObservation]] = {}
        self._btf = BtfNames()
        self._cgroups = CgroupDecoder({})  # cgroup links: id -> path
        self._targets: dict[int, tuple[str, ...]] = {}
        self._owners: dict[int, tuple[Owner, ...]] = {}
        self._ours = Ours()
        self._slow_at = 0.0
        self._owners_done = 0.0
        self._targets_done = 0.0
        self._map_rows: list[MapRow] = []
        self._known: set[int] = set()  # program ids when targets were last read
        self._owners_known: set[int] = set()  # ... when owners were last read
        self._tick = 0
        self._last_ns: int | None = None
        # id -> (monotonic ns, runs/s, avg ns) per refresh; id -> (monotonic ns, utilization)
        self.program_history: dict[int, deque] = {}
        self.map_history: dict[int, deque] = {}
        self._history_len = history_len

    def sample(self, maps: bool = True) -> Snapshot:
        """Read every program; every map too unless ``maps`` is False (the previous map rows are
        kept: the program view reads maps only every ``MAPS_EVERY_HIDDEN`` refreshes)."""
        now = time.monotonic_ns()
        interval = None if self._last_ns is None else (now - self._last_ns) / 1e9
        self._last_ns = now
        progs = []
        for pi in info.prog_infos():
            progs.append((pi, RunCounters(pi.run_cnt, pi.run_time_ns, time.monotonic_ns())))
        if maps or not self._map_rows:
            self._map_rows = self._rows_of(self._observe_maps(progs))
            for row in self._map_rows:
                self._remember(self.map_history, row.id, (now, row.utilization))
            _forget(self.map_history, {m.id for m in self._map_rows})
            self._tick += 1
        ids = {pi.id for pi, _ in progs}
        mono = time.monotonic()
        # A program that appears gets its attach target within TARGETS_MIN_S and its owner within
        # OWNERS_MIN_S, however many come (the /proc walk is the costly part).
        owners_due = mono >= self._slow_at or (
            ids - self._owners_known and mono >= self._owners_done + OWNERS_MIN_S)
        if owners_due or (ids - self._known and mono >= self._targets_done + TARGETS_MIN_S):
            self._refresh_slow(progs, owners_due)
            self._known = ids
            if owners_due:
                self._owners_known = ids

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
                self._remember(self.program_history, pi.id, (now, row.runs_per_s, row.avg_ns))
        self._previous = counters
        _forget(self.program_history, ids)
        return Snapshot(tuple(program_rows), tuple(self._map_rows), interval)

    def close(self) -> None:
        self.pressure.close()
        self.stats.close()
        self._btf.close()

    def _observe_maps(self, progs) -> list[MapObservation]:
        """Every map measured by the health code's ``observe``. A map whose enumeration record and
        programs are unchanged, whose count needs no fd and whose memory is not due keeps its last
        observation: ``observe`` would return the same again."""
        owners = owners_by_map([(pi.name, pi.map_ids) for pi, _ in progs])
        previous, current, out = self._observed, {}, []
        for record in self.pressure.records():
            programs = owners.get(record.id, ())
            read_memory = self._read_memory(record)
            last = previous.get(record.id)
            if (last is not None and not read_memory and not count_needs_fd(last[1].count_method)
                    and (last[0] is record or last[0] == record) and last[1].programs == programs):
                obs = last[1]
            else:
                obs = observe(record, programs, read_memory=read_memory)
                if obs is None:
                    continue  # freed since listed
            current[record.id] = (record, obs)
            out.append(obs)
        self._observed = current
        return out

    def _read_memory(self, record: MapRecord) -> bool:
        return record.id not in self._memory or (record.id + self._tick) % MEMORY_EVERY == 0

    def _cgroup_path(self, cgroup_id: int) -> str:
        """Below the cgroup2 mount, as the ``cgroup`` label decoder names it (the id if unknown)."""
        return self._cgroups.decode(struct.pack("=Q", cgroup_id)).decode("utf-8", "replace")

    def _refresh_slow(self, progs, owners: bool) -> None:
        self._targets = attach_targets(self._btf, self._cgroup_path)
        self._targets_done = time.monotonic()
        if owners:
            self._owners = program_owners()
            self._owners_done = time.monotonic()
            self._slow_at = self._owners_done + SLOW_EVERY_S
        map_names = {row.id: row.name for row in self._map_rows}
        self._ours = find_ours(self._configs, self._pin_dir, [pi for pi, _ in progs], map_names, self._owners)
        for row in self._map_rows:  # rows made before this refresh knew less
            row.otelbpf = self._ours.maps.get(row.id)
        self._memory = {k: v for k, v in self._memory.items() if k in map_names}

    def _rows_of(self, observations: list[MapObservation]) -> list[MapRow]:
        """A map's row is kept while its observation is (nothing about it changed)."""
        previous = {row.obs.id: row for row in self._map_rows}
        rows = []
        for obs in observations:
            row = previous.get(obs.id)
            rows.append(row if row is not None and row.obs is obs else self._map_row(obs))
        return rows

    def _map_row(self, obs: MapObservation) -> MapRow:
        """The row of ``obs``; memory from the last reading when this refresh skipped it."""
        memory = obs.memory
        if memory is None:
            memory = self._memory.get(obs.id)
        else:
            self._memory[obs.id] = memory
        return MapRow(obs, memory, self._ours.maps.get(obs.id), self.warning, self.critical)

    def _remember(self, history: dict[int, deque], key: int, value) -> None:
        series = history.get(key)
        if series is None:
            series = history[key] = deque(maxlen=self._history_len)
        series.append(value)


def _forget(history: dict[int, deque], live: set[int]) -> None:
    """Drop the history of programs and maps that are gone (their ids are never reused soon)."""
    for key in [k for k in history if k not in live]:
        del history[key]
