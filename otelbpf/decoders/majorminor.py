"""majorminor: a block device number as the kernel encodes it (``dev_t``: major in the top 12
bits, minor in the low 20, as block tracepoints report it) → the device name, e.g. ``sda``.

The name comes from DEVNAME in /sys/dev/block/MAJOR:MINOR/uevent; devices without one show as
``MAJOR:MINOR``. Names are cached until the label cache refreshes (a device number can be given
to another disk); unknown devices are looked up again after a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otelbpf.decoders.base import Decoder, as_int

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

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(options)
        self._names: dict[int, bytes] = {}
        self._misses: dict[int, float] = {}

    def decode(self, raw: bytes) -> bytes:
        dev = as_int(raw) & 0xFFFFFFFF
        name = self._names.get(dev)
        if name is not None:
            return name
        major, minor = dev >> _MINORBITS, dev & ((1 << _MINORBITS) - 1)
        fallback = f"{major}:{minor}".encode()
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
