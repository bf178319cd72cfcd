"""pci_vendor, pci_device, pci_class, pci_subclass: PCI ids → names from the system's pci.ids.

Inputs follow ebpf_exporter: a vendor id (``0x8086``), vendor and device id in one number
(``0x80861000``), a class id (``0x02``), class and subclass in one number (``0x0200``).
Ids are formatted as ebpf_exporter formats them (``%02x`` vendors and classes, ``%04x`` devices,
so ids with fewer hex digits than pci.ids writes are not found there either), and ids missing
from the database read ``unknown pci vendor: 0x…`` (and so on), as in ebpf_exporter.
Without any pci.ids file (Debian package ``pci.ids``), every id stays the raw hex id and one
warning says which files were looked for.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from otelbpf.decoders.base import Decoder, as_int

PCI_IDS_PATHS = (Path("/usr/share/misc/pci.ids"), Path("/usr/share/hwdata/pci.ids"))

_log = logging.getLogger(__name__)


@dataclass
class PciIds:
    """The parts of pci.ids the decoders need, keyed by lower-case hex ids as pci.ids writes them:
    vendors ``"8086"``, devices ``"80861000"`` (vendor + device), classes ``"02"``, subclasses
    ``"0200"`` (class + subclass)."""

    vendors: dict[str, str] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    subclasses: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> PciIds:
        ids = cls()
        vendor = klass = None
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            if line.startswith("C "):  # "C 02  Network controller"; classes come after vendors
                klass, _, name = line[2:].partition("  ")
                ids.classes[klass] = name
                vendor = None
            elif not line.startswith("\t"):  # "8086  Intel Corporation"
                vendor, _, name = line.partition("  ")
                ids.vendors[vendor] = name
                klass = None
            elif not line.startswith("\t\t"):  # "\t1000  82542 …" or "\t00  Ethernet controller"
                ident, _, name = line[1:].partition("  ")
                if vendor is not None:
                    ids.devices[vendor + ident] = name
                elif klass is not None:
                    ids.subclasses[klass + ident] = name
        return ids

    @classmethod
    def load(cls, paths: tuple[Path, ...] | None = None) -> PciIds | None:
        paths = PCI_IDS_PATHS if paths is None else paths
        for path in paths:
            try:
                return cls.parse(path.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
        _log.warning("no PCI id database (%s): PCI decoders show raw ids; install the pci.ids "
                     "package", ", ".join(str(p) for p in paths))
        return None


_database: PciIds | None = None
_loaded = False
_lock = threading.Lock()


def pci_ids() -> PciIds | None:
    """The system's pci.ids, read once on first use (None, warned once, when there is none)."""
    global _database, _loaded
    with _lock:
        if not _loaded:
            _database, _loaded = PciIds.load(), True
        return _database


class _PciIdDecoder(Decoder):
    """An id looked up in one table of pci.ids: the raw id in hex without the database, an
    "unknown pci KIND" name for an id it does not list."""

    table = ""  # the PciIds attribute to look in
    digits = 2
    kind = ""

    def decode(self, raw: bytes) -> bytes:
        key = f"{as_int(raw):0{self.digits}x}"
        ids = pci_ids()
        if ids is None:
            return f"0x{key}".encode()
        name = getattr(ids, self.table).get(key)
        return (name or f"unknown pci {self.kind}: 0x{key}").encode()


class PciVendorDecoder(_PciIdDecoder):
    name, table, kind = "pci_vendor", "vendors", "vendor"


class PciDeviceDecoder(_PciIdDecoder):
    name, table, kind, digits = "pci_device", "devices", "device", 4


class PciClassDecoder(_PciIdDecoder):
    name, table, kind = "pci_class", "classes", "class"


class PciSubclassDecoder(Decoder):
    name = "pci_subclass"

    def decode(self, raw: bytes) -> bytes:
        number = as_int(raw)
        klass, subclass = f"{number >> 8:02x}", f"{number & 0xff:02x}"
        ids = pci_ids()
        if ids is None:
            return f"0x{klass}{subclass}".encode()
        if klass not in ids.classes:
            return f"unknown pci class: 0x{klass}".encode()
        name = ids.subclasses.get(klass + subclass)
        return (name or f"unknown pci subclass: 0x{subclass} (class 0x{klass})").encode()
