"""State that outlives the agent process: pinned maps (and, with keep_attached, links), their
series start times and, with delta temporality, the last exported cumulative values.

Kernel maps that hold counters and histograms are pinned under ``pin_dir/PROGRAM/MAP`` so a
restart or an upgrade reuses them and the kernel's counts continue. A cumulative series must keep
its start time for as long as its map lives, so the start time of every pinned map is persisted in
``state_dir/start_times.json`` with what the counts mean: the config's reading of the map's bytes
(``config_layout`` in agent/program.py) and the program's ``[parameters]``.

A pinned map's old counts are reused only when they still mean what the config says
(``pin_plan``); otherwise the map starts empty with a new start time:
- the map itself changed (type, key/value size, max_entries): the kernel layer sees it;
- the config reads the same bytes differently, or the parameters changed, or the start time is
  lost: only this state can tell.
Nothing is unlinked while planning: the kernel layer creates such maps unpinned and pins them
when the new version goes live, so a rejected reload leaves the running version's pins intact.

``pin_dir`` belongs to otelbpf alone (``claim_pin_dir``): a marker pin says so, and unpinning
only ever removes ``pin_dir/PROGRAM``. With ``keep_attached`` the links are pinned under
``pin_dir/PROGRAM/@links`` with the program's identity, so the next agent can adopt them, and
their BPF programs under ``pin_dir/PROGRAM/@programs``, so it can attach them again.

With delta temporality the agent exports differences against the last *exported* cumulative
values. Pinned maps keep counting across a restart, so that baseline must survive it too, or the
first delta after a restart would send everything since the series start again:
``state_dir/delta_baseline.json`` holds it, rewritten after each successful export.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from otelbpf import log
from otelbpf.errors import ConfigError
from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.maps import BpfMap, MapType
from otelbpf.kernel.pinned_programs import PinnedProgram
from otelbpf.metrics.model import (
    ExponentialHistogramPoint,
    HistogramPoint,
    MetricKind,
    NumberPoint,
)

_log = log.get("otelbpf.state")

START_TIMES_FILE = "start_times.json"
# bpffs holds only pins, so the mark that says "otelbpf made this pin_dir" is a pinned 1-entry map.
PIN_DIR_MARKER = "@otelbpf"
LINKS_DIR = "@links"
PROGRAMS_DIR = "@programs"
DELTA_BASELINE_FILE = "delta_baseline.json"
_POINT_TYPES = {cls.__name__: cls for cls in (NumberPoint, HistogramPoint, ExponentialHistogramPoint)}


@dataclass(frozen=True)
class MapStart:
    start_ns: int
    reason: str  # "reused", "created", "replaced: ...", "unpinned"


class AgentState:
    """Owns ``pin_dir`` (None: pinning disabled) and ``state_dir`` (None: nothing persisted,
    as for ``otelbpf check``, which must never disturb a running agent's state)."""

    def __init__(self, pin_dir: Path | None, state_dir: Path | None, *,
                 keep_attached: bool = False):
        self.pin_dir = pin_dir
        self.state_dir = state_dir
        self.keep_attached = keep_attached and pin_dir is not None
        self._lock = threading.Lock()
        self._starts: dict[str, dict] = self._read()

    # -- ownership and writability -----------------------------------------------------------

    def check_writable(self, config_path: Path | str | None) -> None:
        """Refuse to run with a state_dir the agent cannot write: start times could not be kept,
        and the next agent would find pinned counts without a start time."""
        if self.state_dir is None:
            return
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.state_dir, prefix=".write-check.")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise ConfigError(config_path, "state", "state_dir",
                              f"cannot write {self.state_dir}: {exc.strerror or exc}",
                              "make it writable by the agent (it keeps series start times there) "
                              "or point state_dir at a directory that is") from None

    def claim_pin_dir(self, config_path: Path | str | None) -> None:
        """Make sure pin_dir is ours alone, so that unpinning there can only remove our pins.

        Accepted: a new or empty directory (marked now), one holding our marker, or one from an
        agent older than the marker whose every entry is a program this state_dir knows.
        Refused: the bpffs root and any other directory.
        """
        if self.pin_dir is None:
            return
        fix = ("set [state] pin_dir to a directory of its own under bpffs, e.g. "
               "\"/sys/fs/bpf/otelbpf\" (otelbpf creates it)")
        if os.path.ismount(self.pin_dir):
            raise ConfigError(config_path, "state", "pin_dir",
                              f"{self.pin_dir} is the root of a BPF filesystem, shared with "
                              "every other BPF user", fix)
        marker = self.pin_dir / PIN_DIR_MARKER
        try:
            if marker.exists():
                return
            self.pin_dir.mkdir(parents=True, exist_ok=True)
            entries = list(self.pin_dir.iterdir())
        except OSError as exc:  # e.g. bpffs not mounted: /sys/fs/bpf is then read-only sysfs
            self._pinning_off(f"cannot create {self.pin_dir}: {exc.strerror or exc}")
            return
        with self._lock:
            known = {key.split("/", 1)[0] for key in self._starts}
        foreign = [p.name for p in entries if not (p.is_dir() and p.name in known)]
        if foreign:
            raise ConfigError(config_path, "state", "pin_dir",
                              f"{self.pin_dir} holds pins otelbpf did not create "
                              f"({', '.join(sorted(foreign)[:5])}); they are not ours to replace",
                              fix)
        try:
            with BpfMap.create(MapType.ARRAY, 4, 4, 1, name="otelbpf_pin_dir") as mark:
                lb.check(lb.bpf_obj_pin(mark.fd, os.fsencode(marker)), f"bpf_obj_pin({marker})")
        except lb.LibbpfError as exc:  # not on a BPF filesystem
            self._pinning_off(f"cannot pin in {self.pin_dir}: {exc.strerror}")

    def _pinning_off(self, why: str) -> None:
        """Run unpinned rather than not at all: counts then restart with the agent (and say so)."""
        _log.warning("pinning disabled: counters start from zero whenever the agent starts",
                     reason=why, keep_attached_ignored=self.keep_attached,
                     fix="mount bpffs (mount -t bpf bpf /sys/fs/bpf) and keep pin_dir on it, "
                         "or set [state] pin_dir = \"\" to silence this")
        self.pin_dir = None
        self.keep_attached = False

    # -- pins -------------------------------------------------------------------------------

    def pin_plan(self, program: str, layouts: Mapping[str, str], parameters: str,
                 others: Sequence[str] = ()) -> tuple[dict[str, Path], dict[str, str]]:
        """Pin paths for ``program``'s maps and the maps whose pinned counts must not be reused.

        ``layouts`` are the aggregate maps, {map name: config layout}; ``parameters`` a digest of
        the program's ``[parameters]``; ``others`` maps pinned only so that a program left
        attached keeps its ring buffers (they hold no series). Returns ({map: path},
        {map: why it starts empty}). Nothing is unlinked here: the kernel layer creates those maps
        anew and pins them only when the new version goes live (BpfObject.commit_pins).
        """
        if self.pin_dir is None:
            return {}, {}
        base = self.pin_dir / program
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _log.warning(
                "pinning disabled for program: cannot create pin directory",
                program=program,
                path=str(base),
                error=str(exc),
                fix="mount bpffs (mount -t bpf bpf /sys/fs/bpf) or set [state] pin_dir = \"\"",
            )
            return {}, {}
        paths = {name: base / name for name in sorted({*layouts, *others})}
        fresh = {}
        for name, layout in layouts.items():
            why = self._why_fresh(program, name, layout, parameters)
            if why and paths[name].exists():
                fresh[name] = why
        return paths, fresh

    def _why_fresh(self, program: str, map_name: str, layout: str, parameters: str) -> str | None:
        """Why a pinned map's counts would not mean what the config now says (None: they do)."""
        with self._lock:
            saved = self._starts.get(f"{program}/{map_name}")
        if saved is None:
            # Its start time is lost: reporting the old counts with start = now would be a lie.
            return "pinned map without a saved start time"
        if saved.get("config_layout") != layout:
            # Same bytes, new meaning (e.g. a label split in two): old counts, wrong series.
            return "metric layout changed (labels or buckets)"
        if saved.get("parameters", parameters) != parameters:
            # A filter or sample rate changed what the counts mean.
            return "parameters changed"
        return None

    # -- links left attached (keep_attached) --------------------------------------------------

    def link_dir(self, program: str) -> Path | None:
        # "@" cannot start a map name (a C identifier), so this never clashes with a map pin.
        return self.pin_dir / program / LINKS_DIR if self.pin_dir is not None else None

    def program_pin_dir(self, program: str) -> Path | None:
        """Where the BPF programs behind the pinned links are pinned too: a later agent, without
        CAP_SYS_ADMIN, can open them only so, to attach them again (kernel/pinned_programs.py)."""
        return self.pin_dir / program / PROGRAMS_DIR if self.pin_dir is not None else None

    def pinned_programs(self, program: str) -> list[PinnedProgram]:
        """BPF programs of ``program`` that an earlier agent left attached (still attached; the
        caller closes them). A pin that cannot be opened is left alone and logged."""
        base = self.link_dir(program)
        if base is None or not base.is_dir():
            return []
        left = []
        for path in sorted(base.iterdir()):
            try:
                left.append(PinnedProgram.open(path, self.program_pin_dir(program) / path.name))
            except OSError as exc:  # bpf(2) or tracefs
                _log.warning("cannot open a pinned link", path=str(path), error=str(exc))
        return left

    def adoptable_links(self, program: str, identity: str) -> dict[str, Path]:
        """The pinned links of ``program`` when they were made by this same version of it
        (config, parameters and object unchanged): {BPF program: link pin}; else {}."""
        base = self.link_dir(program)
        with self._lock:
            saved = (self._starts.get(f"{program}/{LINKS_DIR}") or {}).get("identity")
        if base is None or saved != identity or not base.is_dir():
            return {}
        return {path.name: path for path in sorted(base.iterdir())}

    def save_identity(self, program: str, identity: str, not_attached: Sequence[str]) -> None:
        """What the pinned links are a version of, and which of its BPF programs did not run:
        a later version is refused at start only for programs this one did run."""
        with self._lock:
            self._starts[f"{program}/{LINKS_DIR}"] = {"identity": identity,
                                                      "not_attached": sorted(not_attached)}
            self._write()

    def not_attached(self, program: str) -> set[str]:
        """BPF programs that the version whose links are pinned did not run (saved with them)."""
        with self._lock:
            return set((self._starts.get(f"{program}/{LINKS_DIR}") or {}).get("not_attached", ()))

    def programs_pinned(self) -> list[str]:
        """Programs with a directory of pins under pin_dir."""
        if self.pin_dir is None or not self.pin_dir.is_dir():
            return []
        return sorted(p.name for p in self.pin_dir.iterdir() if p.is_dir())

    def unpin_program(self, program: str) -> None:
        """Remove a program's pins and start times: called when the program leaves the config."""
        if self.pin_dir is not None:
            base = self.pin_dir / program
            if base.is_dir():
                # Only ever our own directory: pin_dir/PROGRAM, never anything else on bpffs.
                shutil.rmtree(base, ignore_errors=True)
        with self._lock:
            for key in [k for k in self._starts if k.startswith(program + "/")]:
                del self._starts[key]
            self._write()

    # -- start times --------------------------------------------------------------------------

    def map_start(self, program: str, map_name: str, pin_state: str | None, layout: str,
                  parameters: str, now_ns: int) -> MapStart:
        """Start time for the series of one map.

        ``pin_state`` is what the kernel layer did with the pin: "reused" keeps the persisted
        start time (pin_plan made sure it exists and still applies); anything else starts the
        series now.
        """
        key = f"{program}/{map_name}"
        with self._lock:
            saved = self._starts.get(key)
            if pin_state == "reused" and saved:
                return MapStart(int(saved["start_ns"]), "reused")
            self._starts[key] = {"start_ns": now_ns, "config_layout": layout,
                                 "parameters": parameters}
            self._write()
        return MapStart(now_ns, pin_state or "unpinned")

    # -- delta baselines ----------------------------------------------------------------------

    def save_delta_baselines(self, baselines: dict[str, dict]) -> None:
        """Per scope, DeltaConverter.baseline(): what the backend has received so far."""
        if self.state_dir is None:
            return
        doc = {scope: [[name, kind.value, _plain(point.attributes), type(point).__name__,
                        _plain(_point_fields(point))]
                       for (name, kind, _attrs), point in baseline.items()]
               for scope, baseline in baselines.items()}
        self._write_json(DELTA_BASELINE_FILE, doc, "cannot persist the delta baseline; a restart "
                         "will send counts since each series' start again")

    def drop_delta_baselines(self) -> None:
        if self.state_dir is None:
            return
        try:
            (self.state_dir / DELTA_BASELINE_FILE).unlink(missing_ok=True)
        except OSError as exc:
            _log.warning("cannot remove the delta baseline", path=str(self.state_dir),
                         error=str(exc))

    def load_delta_baselines(self) -> dict[str, dict]:
        if self.state_dir is None:
            return {}
        path = self.state_dir / DELTA_BASELINE_FILE
        try:
            doc = json.loads(path.read_text())
            return {scope: {(name, MetricKind(kind), _frozen(attrs)):
                            _POINT_TYPES[ptype](**{k: _frozen(v) for k, v in fields.items()})
                            for name, kind, attrs, ptype, fields in series}
                    for scope, series in doc.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            _log.warning("ignoring unreadable delta baseline; the first export after this restart "
                         "carries each series from its start", path=str(path), error=str(exc))
            return {}

    # -- persistence --------------------------------------------------------------------------

    def _read(self) -> dict[str, dict]:
        if self.state_dir is None:
            return {}
        path = self.state_dir / START_TIMES_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            _log.warning("ignoring unreadable state file; series start anew", path=str(path),
                         error=str(exc))
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self) -> None:
        self._write_json(START_TIMES_FILE, self._starts,
                         "cannot persist start times; a restart will start new series", indent=1)

    def _write_json(self, name: str, doc, failure: str, indent: int | None = None) -> None:
        if self.state_dir is None:
            return
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            # Write-then-rename so a kill -9 mid-write never leaves a torn file.
            fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=f".{name}.")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(doc, f, indent=indent, sort_keys=True)
                os.replace(tmp, self.state_dir / name)
            except BaseException:
                os.unlink(tmp)
                raise
        except (OSError, ValueError) as exc:
            _log.warning(failure, path=str(self.state_dir), error=str(exc))


def _point_fields(point) -> dict:
    return {f.name: getattr(point, f.name) for f in dataclasses.fields(point)}


def _plain(value):
    """Tuples → lists, non-finite floats → {"float": "inf"}: strict JSON, any reader takes it."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    return value


def _frozen(value):
    """The inverse of `_plain`: lists → tuples (attributes, bounds, bucket counts)."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    return value
