"""majorminor: a block device number as the kernel encodes it (``dev_t``: major in the top 12
bits, minor in the low 20, as block tracepoints report it) → the device name, e.g. ``sda``.

The name comes from DEVNAME in /sys/dev/block/MAJOR:MINOR/uevent; devices without one show as
``MAJOR:MINOR`` (after ``unknown_prefix``). Names are cached until the label cache refreshes (a
device number can be given to another disk); unknown devices are looked up again after a few
seconds. ``encoding = "userspace"`` reads the user-space ``dev_t`` layout instead (glibc's, and
ebpf_exporter's examples' ``MKDEV``: major in bits 8-19, minor in bits 0-7 and 20-31), which is
what ebpf_exporter's majorminor decoder expects.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otelbpf.decoders.base import Decoder, as_int, unknown_prefix

SYS_DEV_BLOCK = Path("/sys/dev/block")
_MINORBITS = 20
_RETRY_SECONDS = 5.0


def device_name(major: int, minor: int, root: Path = SYS_DEV_BLOCK) -> str | None:
    try:
        text = (root / f"{major}:{minor}" / "uevent").read_text(errors="replace")
    except (OSError, ValueError):
        return None
    for line in text.splitlines():
        if line.startswith("DEVNAME="):
            return line[len("DEVNAME="):] or None
    return None


class MajorMinorDecoder(Decoder):
    name = "majorminor"
    stable = False
    root = SYS_DEV_BLOCK

    option_names = ("encoding", "unknown_prefix")

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(options)
        encoding = options.get("encoding", "kernel")
        if encoding not in ("kernel", "userspace"):
            raise ValueError(f'encoding must be "kernel" (major = dev >> 20) or "userspace" '
                             f"(glibc's major/minor), got {encoding!r}")
        self._userspace = encoding == "userspace"
        self._unknown_prefix = unknown_prefix(options)
        self._names: dict[int, bytes] = {}
        self._misses: dict[int, float] = {}

    def decode(self, raw: bytes) -> bytes:
        dev = as_int(raw) & 0xFFFFFFFF
        name = self._names.get(dev)
        if name is not None:
            return name
        if self._userspace:
            major, minor = (dev >> 8) & 0xFFF, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)
        else:
            major, minor = dev >> _MINORBITS, dev & ((1 << _MINORBITS) - 1)
        fallback = self._unknown_prefix + f"{major}:{minor}".encode()
        now = time.monotonic()
        if now - self._misses.get(dev, -_RETRY_SECONDS) < _RETRY_SECONDS:
            return fallback
        found = device_name(major, minor, self.root)
        if found is None:
            if len(self._misses) > 4096:
                self._misses.clear()
            self._misses[dev] = now
            return fallback
        self._names[dev] = found.encode()
        return self._names[dev]

    def refresh(self) -> None:
        self._names.clear()
        self._misses.clear()
