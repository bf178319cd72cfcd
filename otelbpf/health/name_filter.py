"""Include/exclude filtering of BPF object names with shell-style globs (``fnmatch``).

Kernel object names are at most 15 characters (BPF_OBJ_NAME_LEN - 1), so globs match the truncated
name the kernel reports, not the name in the source file.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase


class NameFilter:
    """An empty ``include`` keeps every name; ``exclude`` wins over ``include``."""

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def __call__(self, name: str) -> bool:
        if self.include and not any(fnmatchcase(name, glob) for glob in self.include):
            return False
        return not any(fnmatchcase(name, glob) for glob in self.exclude)
