"""BPF iterator programs (iter/bpf_map, iter/bpf_prog, ...): loaded and attached once, then run on
demand; each run returns what the program wrote with seq_write, to be parsed by the caller."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from otelbpf.kernel import info
from otelbpf.kernel.object import BpfObject


class IteratorProgram:
    """The iterator program ``program`` of ``object_path``, loaded and attached; ``run()`` runs it."""

    def __init__(self, object_path: Path, program: str,
                 parameters: Mapping[str, int] | None = None) -> None:
        self._object = BpfObject.open(object_path, parameters=dict(parameters or {}))
        try:
            self._object.load()
            self._link = self._object.attach(program)
        except BaseException:
            self._object.close()
            raise

    def run(self) -> bytes:
        return info.iter_read(self._link)

    def close(self) -> None:
        self._link.close()
        self._object.close()
