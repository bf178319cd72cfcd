"""Refuse config files and BPF objects that someone other than root could have changed.

Loading BPF is root-equivalent: whoever can edit a program config or replace a BPF object the
agent loads can run code in the kernel. A file is trusted when it and every directory above it
can be changed only by root, the agent's own user, or the user who ran the agent through sudo
(who can become root anyway): owned by one of them, and not writable by group or others (a
directory with the sticky bit, like /tmp, only lets each owner replace their own entries).
On a read-only mount, modes do not matter (nobody can write there), owners still do: Kubernetes
mounts ConfigMap volumes read-only but with world-writable directories.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from otelbpf.errors import ConfigError


def trusted_owners() -> frozenset[int]:
    owners = {0, os.geteuid()}
    sudo_uid = os.environ.get("SUDO_UID", "")
    if os.geteuid() == 0 and sudo_uid.isdigit():
        owners.add(int(sudo_uid))
    return frozenset(owners)


def untrusted_reason(path: Path, owners: frozenset[int] | None = None) -> tuple[Path, str] | None:
    """(the file or directory at fault, why) when a user outside ``owners`` can change ``path``."""
    owners = trusted_owners() if owners is None else owners
    real = Path(os.path.realpath(path))
    for p in (real, *real.parents):
        st = os.stat(p)
        if st.st_uid not in owners:
            return p, f"is owned by uid {st.st_uid}"
        if os.statvfs(p).f_flag & os.ST_RDONLY:
            continue
        sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (sticky_dir and p != real):
            who = "others" if st.st_mode & stat.S_IWOTH else f"group {st.st_gid}"
            return p, f"is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def check_trusted(path: Path, what: str) -> None:
    """Raise ConfigError naming the file and the fix when ``path`` (which exists) is not trusted."""
    found = untrusted_reason(path)
    if found is None:
        return
    at_fault, why = found
    owned = why.startswith("is owned")
    if at_fault == Path(os.path.realpath(path)):
        message = f"{what} {why}"
        fix = f"sudo chown root:root {path}" if owned else f"sudo chmod go-w {path}"
    else:
        message = f"{what} is in {at_fault}, which {why}"
        fix = (f"move it to a directory only root can change, e.g. /etc/otelbpf, or "
               + (f"sudo chown root:root {at_fault}" if owned else f"sudo chmod go-w {at_fault}"))
    raise ConfigError(path, None, None,
                      f"{message}: a user other than root could change what the agent loads "
                      "into the kernel", fix)
