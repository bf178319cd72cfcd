"""cgroup: a cgroup v2 id (``bpf_get_current_cgroup_id()``) → the cgroup's path, e.g.
``/system.slice/sshd.service``.

A cgroup v2 id is the inode number of its directory in the cgroup2 filesystem, so the decoder
walks that filesystem once and indexes inodes. An unknown id triggers a new walk (at most one
every few seconds, cgroups come and go); ids still unknown stay decimal text.

ebpf_exporter's form (its YAML configs get it): ``path = "absolute"`` includes the mount point
(``/sys/fs/cgroup/system.slice/sshd.service``) and ``unknown_prefix = "unknown_cgroup_id:"``
labels ids still unknown ``unknown_cgroup_id:<id>``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otelbpf.decoders.base import Decoder, as_int, decimal, unknown_prefix

MOUNTINFO = Path("/proc/self/mountinfo")
_RESCAN_SECONDS = 5.0


def cgroup2_mount(mountinfo: Path = MOUNTINFO) -> Path | None:
    """Where the cgroup2 filesystem is mounted (/sys/fs/cgroup, or …/unified on hybrid hosts)."""
    try:
        lines = mountinfo.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        # mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        left, sep, right = line.partition(" - ")
        if sep and right.split(" ", 1)[0] == "cgroup2":
            fields = left.split(" ")
            if len(fields) >= 5:
                return Path(fields[4].replace("\\040", " "))
    return None


def index_cgroups(root: Path) -> dict[int, str]:
    """inode → path relative to ``root`` (``/`` for the root) for every cgroup directory."""
    index: dict[int, str] = {}
    stack = [(str(root), "")]
    while stack:
        directory, rel = stack.pop()
        try:
            index[os.stat(directory).st_ino] = rel or "/"
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, f"{rel}/{entry.name}"))
        except OSError:
            continue  # removed while walking, or unreadable
    return index


class CgroupDecoder(Decoder):
    name = "cgroup"
    option_names = ("path", "unknown_prefix")
    stable = False

    def __init__(self, options: Mapping[str, Any], root: Path | None = None):
        super().__init__(options)
        path = options.get("path", "relative")
        if path not in ("relative", "absolute"):
            raise ValueError(f'path must be "relative" (below the cgroup2 mount) or "absolute", '
                             f"got {path!r}")
        self._absolute = path == "absolute"
        self._unknown_prefix = unknown_prefix(options)
        self._root = root
        self._paths: dict[int, bytes] = {}
        self._scanned = -_RESCAN_SECONDS
        self._lock = threading.Lock()

    def _rescan(self) -> None:
        if self._root is None:
            self._root = cgroup2_mount()
        if self._root is not None:
            base = str(self._root).rstrip("/") if self._absolute else ""
            self._paths = {i: (base + p if base and p != "/" else base or p).encode()
                           for i, p in index_cgroups(self._root).items()}

    def decode(self, raw: bytes) -> bytes:
        cgroup_id = as_int(raw)
        path = self._paths.get(cgroup_id)
        if path is not None:
            return path
        with self._lock:
            now = time.monotonic()
            if now - self._scanned >= _RESCAN_SECONDS:
                self._scanned = now
                self._rescan()
        return self._paths.get(cgroup_id) or self._unknown_prefix + decimal(cgroup_id)
