"""Which programs and maps on the host an otelbpf agent loaded, and which metrics they feed.

Kernel names are truncated to 15 characters and any process may reuse them, so names alone
prove nothing. Two exact facts are used instead:

1. Pins. The agent pins every counter and histogram map as ``pin_dir/PROGRAM/MAP``
   (agent/state.py). Opening a pin gives the map's id; the program config ``PROGRAM.toml`` says
   which metrics read ``MAP``; every program whose ``map_ids`` include that id is PROGRAM's.
2. Ownership. A program held (fdinfo ``prog_id``) by a process running ``otelbpf run`` is the
   agent's; it is matched to the program config one of whose map names its maps carry. This
   covers stream-only programs (ring/perf buffers are not pinned) and ``pin_dir = ""``.

The other maps of an agent program (ring buffers, helper maps) are marked with the metrics of the
config entry that names them, or with the program name alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from otelbpf.config.agent import AgentConfig
from otelbpf.config.program import ProgramConfig
from otelbpf.kernel import info
from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.info import BPF_OBJ_NAME_LEN, ProgInfo
from otelbpf.top.owners import Owner

log = logging.getLogger("otelbpf.top.ours")


def metrics_by_map(config: ProgramConfig) -> dict[str, tuple[str, ...]]:
    """map name (as the kernel truncates it) -> metric names the config makes of it."""
    out: dict[str, list[str]] = {}
    for m in (*config.counters, *config.histograms):
        out.setdefault(_kernel_name(m.map), []).append(m.name)
    for s in config.streams:
        out.setdefault(_kernel_name(s.map), []).extend(x.name for x in (*s.counters, *s.histograms))
    return {name: tuple(dict.fromkeys(metrics)) for name, metrics in out.items()}


def _kernel_name(name: str) -> str:
    return name[: BPF_OBJ_NAME_LEN - 1]


def pinned_map_ids(pin_dir: Path | None) -> dict[int, tuple[str, str]]:
    """map id -> (program, map) of every map pinned as pin_dir/PROGRAM/MAP."""
    found: dict[int, tuple[str, str]] = {}
    if pin_dir is None or not pin_dir.is_dir():
        return found
    for program_dir in pin_dir.iterdir():
        if not program_dir.is_dir():
            continue
        for pin in program_dir.iterdir():
            fd = lb.bpf_obj_get(str(pin).encode())
            if fd < 0:
                continue  # not a map pin, or not ours to open
            try:
                found[info.map_info(fd).id] = (program_dir.name, pin.name)
            except lb.LibbpfError:
                continue  # a program or link pin
            finally:
                os.close(fd)
    return found


def is_agent(pid: int) -> bool:
    """The process runs ``otelbpf run`` (installed script or ``python -m otelbpf``)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"run" in argv and any(a.endswith(b"otelbpf") for a in argv)


@dataclass
class Ours:
    """What the agent loaded: program id / map id -> "PROGRAM: metric, metric"."""

    programs: dict[int, str] = field(default_factory=dict)
    maps: dict[int, str] = field(default_factory=dict)


def find_ours(
    configs: Mapping[str, ProgramConfig],
    pin_dir: Path | None,
    progs: Iterable[ProgInfo],
    map_names: Mapping[int, str],
    owners: Mapping[int, tuple[Owner, ...]],
) -> Ours:
    progs = list(progs)
    by_map = {name: metrics_by_map(cfg) for name, cfg in configs.items()}
    program_of: dict[int, str] = {}  # prog id -> PROGRAM
    pinned = pinned_map_ids(pin_dir)
    for pi in progs:
        for map_id in pi.map_ids:
            if map_id in pinned:
                program_of[pi.id] = pinned[map_id][0]
                break
    agents: dict[int, bool] = {}
    for pi in progs:
        if pi.id in program_of:
            continue
        holders = owners.get(pi.id, ())
        if not any(agents.setdefault(o.pid, is_agent(o.pid)) for o in holders):
            continue
        names = {map_names.get(m) for m in pi.map_ids}
        for program, maps in by_map.items():
            if names & maps.keys():
                program_of[pi.id] = program
                break
    ours = Ours()
    for pi in progs:
        program = program_of.get(pi.id)
        if program is None:
            continue
        maps = by_map.get(program, {})
        ours.programs[pi.id] = _label(program, [m for ms in maps.values() for m in ms])
        for map_id in pi.map_ids:
            ours.maps[map_id] = _label(program, maps.get(map_names.get(map_id, ""), ()))
    for map_id, (program, map_name) in pinned.items():
        ours.maps[map_id] = _label(program, by_map.get(program, {}).get(_kernel_name(map_name), ()))
    return ours


def _label(program: str, metrics: Iterable[str]) -> str:
    metrics = list(dict.fromkeys(metrics))
    return f"{program}: {', '.join(metrics)}" if metrics else program


def load_configs(agent: AgentConfig) -> dict[str, ProgramConfig]:
    """The agent's program configs; ones that do not load are left out (``otelbpf check`` says why)."""
    from otelbpf.agent.runtime import read_program_configs

    configs, errors = read_program_configs(agent)
    for name, err in errors.items():
        log.debug("program config %s: %s", name, err)
    return configs
