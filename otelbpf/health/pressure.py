"""Map pressure as metrics: per-map observations in, ``bpf.map.*`` / ``bpf.ringbuf.*`` gauges out.

Pure logic, no kernel: ``MapPressure`` (map_pressure.py) gathers ``MapObservation``s, this module
decides what each is worth reporting. A number is only exported when the kernel gave it; maps
whose type has no count get ``max_entries`` and ``memory`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from otelbpf.health.map_types import CountMethod
from otelbpf.metrics.model import Attributes, AttributeValue, Metric, MetricKind, NumberPoint

LEVEL_OK, LEVEL_WARNING, LEVEL_CRITICAL = 0, 1, 2


@dataclass(frozen=True)
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
        attrs: list[tuple[str, AttributeValue]] = [
            ("bpf.map.id", self.id),
            ("bpf.map.name", self.name),
            ("bpf.map.type", self.type),
            ("bpf.map.count_method", self.count_method.value),
            ("bpf.map.prealloc_full", self.prealloc_full),
        ]
        if self.programs:
            attrs.append(("bpf.map.programs", self.programs))  # an array attribute
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


# name -> (description, unit). Capacity follows the semantic conventions' *.usage / *.limit /
# *.utilization pattern; ring buffers hold bytes, not entries, so they get their own three.
MAP_METRICS: dict[str, tuple[str, str]] = {
    "bpf.map.entry.usage": ("Elements in the map (see bpf.map.count_method)", "{entry}"),
    "bpf.map.entry.limit": ("The map's max_entries", "{entry}"),
    "bpf.map.entry.utilization": ("bpf.map.entry.usage / bpf.map.entry.limit", "1"),
    "bpf.map.memory.usage": ("Memory the kernel accounts to the map (fdinfo memlock)", "By"),
    # An enum, not a ratio: unit "{level}" keeps Prometheus translation from adding "_ratio".
    "bpf.map.pressure.level": ("Enum: 0 ok, 1 warning, 2 critical (from the entry or ring buffer utilization); "
                               "always 0 for preallocated arrays", "{level}"),
    "bpf.ringbuf.usage": ("Bytes produced and not yet consumed", "By"),
    "bpf.ringbuf.limit": ("Ring buffer data size", "By"),
    "bpf.ringbuf.utilization": ("bpf.ringbuf.usage / bpf.ringbuf.limit", "1"),
}


def map_metrics(
    observations: Iterable[MapObservation], warning: float, critical: float, now_ns: int
) -> list[Metric]:
    points: dict[str, list[NumberPoint]] = {name: [] for name in MAP_METRICS}

    def add(name: str, attrs: Attributes, value: int | float) -> None:
        points[name].append(NumberPoint(attributes=attrs, value=value, time_ns=now_ns))

    for obs in observations:
        attrs = obs.attributes()
        ringbuf = obs.count_method is CountMethod.RINGBUF
        add("bpf.ringbuf.limit" if ringbuf else "bpf.map.entry.limit", attrs, obs.max_entries)
        if obs.memory is not None:
            add("bpf.map.memory.usage", attrs, obs.memory)
        if ringbuf and obs.ringbuf_used is not None:
            add("bpf.ringbuf.usage", attrs, obs.ringbuf_used)
        elif obs.entries is not None:
            add("bpf.map.entry.usage", attrs, obs.entries)
        utilization = obs.utilization
        if utilization is None:
            continue
        add("bpf.ringbuf.utilization" if ringbuf else "bpf.map.entry.utilization", attrs, utilization)
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
