"""State that outlives the agent process: pinned aggregate maps, their series start times and,
with delta temporality, the last exported cumulative values.

Kernel maps that hold counters and histograms are pinned under ``pin_dir/PROGRAM/MAP`` so a
restart or an upgrade reuses them and the kernel's counts continue. A cumulative series must keep
its start time for as long as its map lives, so the start time of every pinned map is persisted in
``state_dir/start_times.json`` next to a fingerprint of the map's layout. When the kernel layer
reports that a pin was created or replaced (incompatible layout), the series starts anew.

Two kinds of layout change make old counts meaningless, and both must give a fresh map:
- the map itself changed (type, key/value size, max_entries): the kernel layer sees it on the
  pin and replaces the pin (``pin_states`` "replaced: <why>");
- the *config's* reading of the same bytes changed (label sizes/padding, bucket settings): the
  kernel cannot see that, so ``pin_paths`` gets each map's config layout (``config_layout`` in
  agent/program.py) and unlinks a pin whose saved layout differs, so that the kernel creates a
  new, empty map.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from otelbpf import log
from otelbpf.metrics.model import (
    ExponentialHistogramPoint,
    HistogramPoint,
    MetricKind,
    NumberPoint,
)

_log = log.get("otelbpf.state")

START_TIMES_FILE = "start_times.json"
DELTA_BASELINE_FILE = "delta_baseline.json"
_POINT_TYPES = {cls.__name__: cls for cls in (NumberPoint, HistogramPoint, ExponentialHistogramPoint)}


@dataclass(frozen=True)
class MapStart:
    start_ns: int
    reason: str  # "reused", "created", "replaced: ...", "unpinned"


class AgentState:
    """Owns ``pin_dir`` (None: pinning disabled) and ``state_dir`` (None: nothing persisted,
    as for ``otelbpf check``, which must never disturb a running agent's state)."""

    def __init__(self, pin_dir: Path | None, state_dir: Path | None):
        self.pin_dir = pin_dir
        self.state_dir = state_dir
        self._lock = threading.Lock()
        self._starts: dict[str, dict] = self._read()
        self._replaced: dict[str, str] = {}  # "PROGRAM/MAP" -> why pin_paths unlinked its pin

    # -- pins -------------------------------------------------------------------------------

    def pin_paths(self, program: str, layouts: Mapping[str, str]) -> dict[str, Path]:
        """Pin paths for ``program``'s aggregate maps, given as {map name: config layout}."""
        if self.pin_dir is None:
            return {}
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
            return {}
        paths = {name: base / name for name in sorted(layouts)}
        for name, path in paths.items():
            self._drop_if_read_differently(program, name, path, layouts[name])
        return paths

    def _drop_if_read_differently(self, program: str, map_name: str, path: Path, layout: str) -> None:
        key = f"{program}/{map_name}"
        with self._lock:
            saved = (self._starts.get(key) or {}).get("config_layout")
        if saved is None or saved == layout or not path.exists():
            return
        # Same bytes, new meaning (e.g. a label split in two): the old counts would be decoded
        # into wrong series. Unlinking our own pin makes the kernel layer create an empty map.
        try:
            path.unlink()
        except OSError as exc:
            _log.warning("cannot remove a pin whose config layout changed", path=str(path),
                         error=str(exc))
            return
        self._replaced[key] = "replaced: metric layout changed (labels or buckets)"

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
                  now_ns: int) -> MapStart:
        """Start time for the series of one map.

        ``pin_state`` is what the kernel layer did with the pin: "reused" keeps the persisted
        start time (when the config layout matches); anything else starts the series now.
        """
        key = f"{program}/{map_name}"
        with self._lock:
            saved = self._starts.get(key)
            replaced = self._replaced.pop(key, None)
            if pin_state == "reused" and saved and saved.get("config_layout") == layout:
                return MapStart(int(saved["start_ns"]), "reused")
            if pin_state == "reused" and saved:
                reason = "replaced: metric layout changed"
            elif pin_state == "reused":
                reason = "reused pin without a saved start time"
            elif pin_state == "created" and replaced:
                reason = replaced
            else:
                reason = pin_state or "unpinned"
            self._starts[key] = {"start_ns": now_ns, "config_layout": layout}
            self._write()
        return MapStart(now_ns, reason)

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
