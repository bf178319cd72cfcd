"""Keeps a program's cgroup id map filled: the cgroups whose path matches the config's regexps.

ebpf_exporter's ``cgroup_id_map``: a BPF program looks up the current cgroup in this map to count
only (or apart) the cgroups of interest. otelbpf walks the cgroup2 filesystem when the program is
loaded and again at every collection (cgroups come and go), adds the matching cgroups that are
new and, for ``hash`` maps, removes the ids of cgroups that are gone (``cgrp_storage`` entries go
away with their cgroup). Paths are matched as ebpf_exporter matches them: the absolute path
(``/sys/fs/cgroup/system.slice/ssh.service``), regexps searched anywhere in it.
"""

from __future__ import annotations

import logging
import os
import re
import struct

from otelbpf.decoders.cgroup import cgroup2_mount, index_cgroups
from otelbpf.streams.source import DrainedSource

_log = logging.getLogger(__name__)
_PRESENT = struct.pack("=Q", 1)


class CgroupIdMapFiller(DrainedSource):
    """Drained like a stream (nothing to drain) and collected each interval, when it resyncs."""

    def __init__(self, config, bpf_map, *, program: str):
        self.config = config
        self.map = bpf_map
        self.name = f"{program}/{config.name}"
        self.patterns = tuple(re.compile(expr) for expr in config.regexps)
        self.caught_up = True
        self.present: set[int] = set()  # cgroup ids written to the map
        self.sync()

    def sync(self) -> None:
        root = cgroup2_mount()
        if root is None:
            return
        base = str(root).rstrip("/")
        wanted = {}
        for cgroup_id, rel in index_cgroups(root).items():
            path = base if rel == "/" else base + rel
            if any(p.search(path) for p in self.patterns):
                wanted[cgroup_id] = path
        for cgroup_id, path in wanted.items():
            if cgroup_id not in self.present:
                self._add(cgroup_id, path)
        for cgroup_id in self.present - set(wanted):
            if self.config.type == "hash":
                self.map.delete(struct.pack("=Q", cgroup_id))
            self.present.discard(cgroup_id)

    def _add(self, cgroup_id: int, path: str) -> None:
        try:
            if self.config.type == "hash":
                self.map.update(struct.pack("=Q", cgroup_id), _PRESENT)
            else:  # cgrp_storage is keyed by an open fd of the cgroup directory
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    self.map.update(struct.pack("=i", fd), _PRESENT)
                finally:
                    os.close(fd)
        except OSError as exc:  # removed meanwhile, or the map is full: try again next time
            _log.warning("cannot add cgroup to %s: %s: %s", self.name, path, exc)
            return
        self.present.add(cgroup_id)

    def filenos(self) -> list[int]:
        return []

    def drain(self, max_batches: int = 64) -> int:
        return 0

    def collect(self, now_ns: int) -> list:
        self.sync()
        return []

    def close(self) -> None:
        """The map goes with the program; nothing of ours to release."""
