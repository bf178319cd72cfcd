"""Map pressure as metrics: per-map observations in, ``bpf.map.*`` / ``bpf.ringbuf.*`` gauges out.

Pure logic, no kernel: ``MapPressure`` (map_pressure.py) gathers ``MapObservation``s, this module
decides what each is worth reporting. A number is only exported when the kernel gave it; maps
whose type has no count get ``max_entries`` and ``memory`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from otelbpf.health.map_types import CountMethod
from otelbpf.metrics.model import Attributes, Metric, MetricKind, NumberPoint

LEVEL_OK, LEVEL_WARNING, LEVEL_CRITICAL = 0, 1, 2


@dataclass(frozen=True, slots=True)
class MapObservation:
    id: int
    name: str
    type: str
    max_entries: int
    count_method: CountMethod
    entries: int | None = None  # elements (kfunc / iteration / max_entries methods)
    ringbuf_used: int | None = None  # bytes pending (ringbuf method)
    memory: int | None = None  # bytes, kernel accounting
    programs: tuple[str, ...] = ()  # names of the programs using the map

    @property
    def prealloc_full(self) -> bool:
        return self.count_method is CountMethod.MAX_ENTRIES

    @property
    def utilization(self) -> float | None:
        if self.max_entries <= 0:
            return None
        if self.count_method is CountMethod.RINGBUF:
            return None if self.ringbuf_used is None else self.ringbuf_used / self.max_entries
        if self.entries is None:
            return None
        # The kfunc sums per-CPU counters without a lock: a concurrent insert and delete on two
        # CPUs can make the sum briefly leave [0, max_entries].
        return min(max(self.entries, 0), self.max_entries) / self.max_entries

    def attributes(self) -> Attributes:
        attrs: list[tuple[str, str | int | bool]] = [
            ("bpf.map.id", self.id),
            ("bpf.map.name", self.name),
            ("bpf.map.type", self.type),
            ("bpf.map.count_method", self.count_method.value),
            ("bpf.map.prealloc_full", self.prealloc_full),
        ]
        if self.programs:
            attrs.append(("bpf.map.programs", ",".join(self.programs)))
        return tuple(attrs)


def pressure_level(utilization: float, warning: float, critical: float) -> int:
    """0 ok, 1 warning (utilization >= warning), 2 critical (>= critical)."""
    if utilization >= critical:
        return LEVEL_CRITICAL
    if utilization >= warning:
        return LEVEL_WARNING
    return LEVEL_OK


def map_pressure_level(obs: MapObservation, warning: float, critical: float) -> int | None:
    """The map's pressure level; None when its fill is not known."""
    utilization = obs.utilization
    if utilization is None:
        return None
    # A preallocated array is full by construction and cannot drop an update: never a pressure.
    return LEVEL_OK if obs.prealloc_full else pressure_level(utilization, warning, critical)


# name -> (description, unit)
MAP_METRICS: dict[str, tuple[str, str]] = {
    "bpf.map.entries": ("Elements in the map (see bpf.map.count_method)", "{entry}"),
    "bpf.map.max_entries": ("The map's max_entries (ring buffers: data size in bytes)", "{entry}"),
    "bpf.map.utilization": ("entries / max_entries (ring buffers: pending bytes / size)", "1"),
    "bpf.map.memory": ("Memory the kernel accounts to the map (fdinfo memlock)", "By"),
    "bpf.map.pressure.level": ("0 ok, 1 warning, 2 critical; always 0 for preallocated arrays", "{level}"),
    "bpf.ringbuf.used": ("Bytes produced and not yet consumed", "By"),
    "bpf.ringbuf.size": ("Ring buffer data size", "By"),
}


def map_metrics(
    observations: Iterable[MapObservation], warning: float, critical: float, now_ns: int
) -> list[Metric]:
    points: dict[str, list[NumberPoint]] = {name: [] for name in MAP_METRICS}

    def add(name: str, attrs: Attributes, value: int | float) -> None:
        points[name].append(NumberPoint(attributes=attrs, value=value, time_ns=now_ns))

    for obs in observations:
        attrs = obs.attributes()
        add("bpf.map.max_entries", attrs, obs.max_entries)
        if obs.memory is not None:
            add("bpf.map.memory", attrs, obs.memory)
        if obs.count_method is CountMethod.RINGBUF and obs.ringbuf_used is not None:
            add("bpf.ringbuf.used", attrs, obs.ringbuf_used)
            add("bpf.ringbuf.size", attrs, obs.max_entries)
        elif obs.entries is not None:
            add("bpf.map.entries", attrs, obs.entries)
        utilization = obs.utilization
        if utilization is None:
            continue
        add("bpf.map.utilization", attrs, utilization)
        add("bpf.map.pressure.level", attrs, map_pressure_level(obs, warning, critical))
    return gauges(points, MAP_METRICS)


def gauges(points: dict[str, list[NumberPoint]], catalog: dict[str, tuple[str, str]]) -> list[Metric]:
    """One GAUGE per catalog entry that has points, in catalog order."""
    return [
        Metric(name=name, description=desc, unit=unit, kind=MetricKind.GAUGE, points=tuple(points[name]))
        for name, (desc, unit) in catalog.items()
        if points.get(name)
    ]


def owners_by_map(programs: Sequence[tuple[str, Sequence[int]]]) -> dict[int, tuple[str, ...]]:
    """map id -> sorted, de-duplicated names of the programs whose map_ids list it."""
    owners: dict[int, set[str]] = {}
    for name, map_ids in programs:
        for map_id in map_ids:
            owners.setdefault(map_id, set()).add(name)
    return {map_id: tuple(sorted(names)) for map_id, names in owners.items()}
