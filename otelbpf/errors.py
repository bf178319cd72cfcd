"""Errors that reach users: each names where the problem is and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class OtelbpfError(Exception):
    """Base class for every error otelbpf reports to a user without a traceback."""


@dataclass
class ConfigError(OtelbpfError):
    """A config value that cannot be used.

    Rendered as ``FILE: ENTRY: FIELD: MESSAGE (fix: FIX)`` so the user can jump straight to it.
    ``entry`` is the table path inside the file, e.g. ``histograms[1] "bio_latency"``.
    """

    path: Path | str | None
    entry: str | None
    field: str | None
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        parts = [str(p) for p in (self.path, self.entry, self.field) if p]
        text = ": ".join(parts + [self.message])
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


class ConfigErrors(OtelbpfError):
    """Several config errors found in one pass, reported together."""

    def __init__(self, errors: list[ConfigError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


@dataclass
class LoadError(OtelbpfError):
    """libbpf could not open or load an object; ``log`` holds the relevant verifier lines."""

    object: Path | str
    program: str | None
    message: str
    log: str = ""

    def __str__(self) -> str:
        where = f"{self.object}" + (f": program {self.program}" if self.program else "")
        text = f"{where}: {self.message}"
        if self.log:
            text += "\nverifier log (tail):\n" + self.log
        return text


@dataclass
class AttachError(OtelbpfError):
    """One program could not be attached; the others keep running."""

    object: Path | str
    program: str
    section: str
    reason: str

    def __str__(self) -> str:
        return f"{self.object}: program {self.program} ({self.section}): {self.reason}"
