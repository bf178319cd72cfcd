"""MapPressure: fill level, memory and pressure of every BPF map on the host, whoever loaded it.

Per collection: one run of the iter/bpf_map program (map_iter.py) lists every map with its
kfunc element count; each map is then opened by id for the kernel's memory accounting and, where
its type needs it, a ring buffer position read or a key walk (map_types.py decides). The fd is
closed before the next map: holding another process's map would keep it alive after its owner
frees it, and a freed map must vanish from the export.

Opening a map by id needs CAP_SYS_ADMIN: without it (the agent drops it after start), memory is
not reported, while element counts and ring buffer fill from the iterator are. The programs that
use each map come from the iter/bpf_prog program, which needs no CAP_SYS_ADMIN.

Without the iterator object, or on kernels where it cannot load (no iter/bpf_map, no BTF), the
maps are enumerated with BPF_MAP_GET_NEXT_ID and hash maps are counted by key iteration.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from otelbpf.config.agent import MapPressureConfig
from otelbpf.config.trust import check_trusted
from otelbpf.kernel.names import map_type_name
from otelbpf.health.fdinfo import map_memlock
from otelbpf.health.map_iter import OBJECT_FILE, RECORD_HAS_COUNT, RECORD_HAS_RINGBUF, MapIterator
from otelbpf.health.map_types import CountMethod, count_method
from otelbpf.health.name_filter import NameFilter
from otelbpf.health.pressure import MapObservation, map_metrics, owners_by_map
from otelbpf.health.ringbuf_fill import ringbuf_used
from otelbpf.kernel import info
from otelbpf.kernel.libbpf import LibbpfError
from otelbpf.kernel.maps import BpfMap
from otelbpf.metrics.model import Metric

log = logging.getLogger("otelbpf.health.map_pressure")

# <checkout>/bpf/build, next to the otelbpf package of a source checkout.
DEFAULT_BUILD_DIR = Path(__file__).resolve().parents[2] / "bpf" / "build"


@dataclass(frozen=True)
class MapRecord:
    """What the enumeration step knows of one map before it is opened."""

    id: int
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    elem_count: int | None  # kfunc count; None when the kfunc was not available
    ringbuf_used: int | None = None  # ring buffers, read by the iterator; None: read it by fd


class MapPressure:
    """``MetricSource`` of ``bpf.map.*`` and ``bpf.ringbuf.*`` gauges for every map on the host."""

    name = "map_pressure"

    def __init__(self, config: MapPressureConfig, build_dir: Path | None = None) -> None:
        self.config = config
        self._accept = NameFilter(config.include, config.exclude)
        self.object_path = (build_dir if build_dir is not None else DEFAULT_BUILD_DIR) / OBJECT_FILE
        self._iterator: MapIterator | None = None
        # map id -> (its raw iterator record, the MapRecord made of it): a map whose record did
        # not change keeps its MapRecord (same object) instead of being decoded again.
        self._decoded: dict[int, tuple[bytes, MapRecord]] = {}
        # Why the syscall fallback is in use (None: the iterator runs). Shown by the agent/check.
        self.fallback_reason: str | None = None
        try:
            check_trusted(self.object_path, "BPF object")
            self._iterator = MapIterator(self.object_path)
        except Exception as exc:  # any load/attach failure: degrade, never stop the agent
            self.fallback_reason = (
                f"iter/bpf_map program unavailable ({self.object_path}): {type(exc).__name__}: {exc}"
            )
            log.warning(
                "map pressure: %s; enumerating maps by id and counting hash maps by key iteration",
                self.fallback_reason,
            )
        from otelbpf.health.program_stats import open_prog_iterator

        self._prog_iterator, _ = open_prog_iterator(build_dir)

    @property
    def method(self) -> str:
        """How maps are enumerated: "iterator" or "syscalls" (the fallback)."""
        return "iterator" if self._iterator is not None else "syscalls"

    def collect(self, now_ns: int) -> list[Metric]:
        return map_metrics(self.observations(), self.config.warning, self.config.critical, now_ns)

    def observations(self) -> list[MapObservation]:
        """Every accepted map, measured."""
        owners = owners_by_map(_program_maps(self._prog_iterator))
        observations = []
        for record in self.records():
            obs = observe(record, owners.get(record.id, ()))
            if obs is not None:
                observations.append(obs)
        return observations

    def records(self) -> list[MapRecord]:
        """Every accepted map as enumerated, before it is opened."""
        return [record for record in self._records() if self._accept(record.name)]

    def close(self) -> None:
        if self._iterator is not None:
            self._iterator.close()
            self._iterator = None
        if self._prog_iterator is not None:
            self._prog_iterator.close()
            self._prog_iterator = None

    def _records(self) -> list[MapRecord]:
        if self._iterator is None:
            return _records_by_id()
        recs = self._iterator.read()
        raw = recs.tobytes()
        size = recs.dtype.itemsize
        ids = recs["id"].tolist()
        previous, decoded, changed = self._decoded, {}, []
        for i, map_id in enumerate(ids):
            row = raw[i * size:(i + 1) * size]
            last = previous.get(map_id)
            if last is not None and last[0] == row:
                decoded[map_id] = last
            else:
                changed.append(i)
                decoded[map_id] = (row, None)
        for i, record in zip(changed, _decode(recs[changed])):
            decoded[ids[i]] = (decoded[ids[i]][0], record)
        self._decoded = decoded
        return [decoded[map_id][1] for map_id in ids]


def _decode(recs) -> list[MapRecord]:
    has_count = (recs["flags"] & RECORD_HAS_COUNT).astype(bool).tolist()
    counts = recs["elem_count"].tolist()
    has_used = (recs["flags"] & RECORD_HAS_RINGBUF).astype(bool).tolist()
    used = recs["ringbuf_used"].tolist()
    return [
        MapRecord(
            id=map_id,
            name=bytes(name).decode("utf-8", "replace"),
            type=map_type,
            key_size=key_size,
            value_size=value_size,
            max_entries=max_entries,
            flags=flags,
            elem_count=count if has else None,
            ringbuf_used=ring_used if ring else None,
        )
        for (map_id, name, map_type, key_size, value_size, max_entries, flags, count, has,
             ring_used, ring) in zip(
            recs["id"].tolist(),
            recs["name"].tolist(),
            recs["type"].tolist(),
            recs["key_size"].tolist(),
            recs["value_size"].tolist(),
            recs["max_entries"].tolist(),
            recs["map_flags"].tolist(),
            counts,
            has_count,
            used,
            has_used,
        )
    ]


def observe(record: MapRecord, programs: Sequence[str] = (), read_memory: bool = True) -> MapObservation | None:
    """Open the map by id and measure it; None when the map was freed since it was listed.

    ``read_memory=False`` skips the memory reading (``memory`` None) and opens the map only when its
    count needs an fd (iteration, ring buffer position)."""
    method = count_method(record.type, record.elem_count is not None)
    entries: int | None = None
    used: int | None = record.ringbuf_used
    memory: int | None = None
    if method is CountMethod.KFUNC:
        entries = record.elem_count
    elif method is CountMethod.MAX_ENTRIES:
        entries = record.max_entries
    if not read_memory and not count_needs_fd(method, used):
        fd = -1
    else:
        fd = _open_by_id(record)
        if fd is None:
            return None
    if fd >= 0:
        try:
            if read_memory:
                memory = map_memlock(fd)
            if method is CountMethod.ITERATION:
                entries = len(_wrap(fd, record).keys())
            elif method is CountMethod.RINGBUF and used is None:
                used = ringbuf_used(fd)
        except OSError as exc:
            log.debug("map %d (%s): %s", record.id, record.name, exc)
        finally:
            os.close(fd)
    return MapObservation(
        id=record.id,
        name=record.name,
        type=map_type_name(record.type),
        max_entries=record.max_entries,
        count_method=method,
        entries=entries,
        ringbuf_used=used,
        memory=memory,
        programs=tuple(programs),
    )


@functools.lru_cache(maxsize=None)
def _say_cannot_open_by_id() -> None:
    """Once per process: the agent runs without CAP_SYS_ADMIN (see docs/security.md)."""
    log.info("map pressure: maps cannot be opened by id without CAP_SYS_ADMIN; "
             "bpf.map.memory is not reported (add CAP_SYS_ADMIN to [security] "
             "keep_capabilities for it)")


def count_needs_fd(method: CountMethod, ringbuf_used: int | None = None) -> bool:
    """Counting needs the map opened (key walk, ring buffer positions the iterator did not read);
    other counts come with the enumeration."""
    return method is CountMethod.ITERATION or (method is CountMethod.RINGBUF and ringbuf_used is None)


def _open_by_id(record: MapRecord) -> int | None:
    """A new fd for the map, -1 when it cannot be opened, None when it was freed since listed."""
    try:
        return info.map_fd_by_id(record.id)
    except LibbpfError as exc:
        if exc.errno == errno.ENOENT:
            return None
        if exc.errno == errno.EPERM:
            _say_cannot_open_by_id()
        log.debug("map %d (%s): cannot open by id: %s", record.id, record.name, exc)
        return -1


def _wrap(fd: int, record: MapRecord) -> BpfMap:
    return BpfMap(
        fd,
        name=record.name,
        type=record.type,
        key_size=record.key_size,
        value_size=record.value_size,
        max_entries=record.max_entries,
        flags=record.flags,
        id=record.id,
        owned=False,
    )


def _records_by_id() -> list[MapRecord]:
    return [
        MapRecord(id=mi.id, name=mi.name, type=mi.type, key_size=mi.key_size,
                  value_size=mi.value_size, max_entries=mi.max_entries, flags=mi.map_flags,
                  elem_count=None)
        for mi in info.map_infos()
    ]


def _program_maps(iterator=None) -> list[tuple[str, tuple[int, ...]]]:
    """(name, map_ids) of every program on the host, for the ``bpf.map.programs`` attribute."""
    return [(pi.name, pi.map_ids) for pi in info.prog_infos(iterator)]
