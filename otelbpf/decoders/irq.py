"""irq: an interrupt number → the names of its handlers, as /proc/interrupts lists them
(``virtio3-rx``; a shared line's handlers joined by commas, ``ehci_hcd:usb1,eth0``).

Read from /sys/kernel/irq/N/actions (Linux 4.17+ with sparse IRQs, which x86-64 always has and
common arm64 builds enable; without it every interrupt stays a number). Handlers are registered and freed at run
time (a driver loaded, a device reset), so the decoder is unstable: label caches re-decode it
now and then. An interrupt without handlers, or an unknown number, stays a number (after
``unknown_prefix``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otelbpf.decoders.base import Decoder, as_int, decimal, unknown_prefix

SYS_IRQ = Path("/sys/kernel/irq")


def handler_names(irq: int) -> str:
    try:
        return (SYS_IRQ / str(irq) / "actions").read_text(errors="replace").strip()
    except OSError:
        return ""


class IrqDecoder(Decoder):
    name = "irq"
    option_names = ("unknown_prefix",)
    stable = False

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(options)
        self._unknown_prefix = unknown_prefix(options)

    def decode(self, raw: bytes) -> bytes:
        irq = as_int(raw)
        names = handler_names(irq) if 0 <= irq < 1 << 32 else ""
        return names.encode() if names else self._unknown_prefix + decimal(irq)
