"""Helpers for the reliability tests: program dirs filtered to one child process, what the
agent logged and what the gRPC receiver got, and a child that makes known syscalls."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from agentproc import REPO

CONF_D = REPO / "conf" / "conf.d"


def syscalls_toml(target_tgid: int) -> str:
    """The shipped syscalls config, counting one process only."""
    text, n = re.subn(r"(?m)^target_tgid = 0$", f"target_tgid = {target_tgid}",
                      (CONF_D / "syscalls.toml").read_text())
    assert n == 1, "conf/conf.d/syscalls.toml must set target_tgid = 0 by default"
    return text


def programs_dir(tmp_path: Path, target_tgid: int, *, biolatency: bool = False) -> Path:
    programs = tmp_path / "conf.d"
    programs.mkdir(exist_ok=True)
    (programs / "syscalls.toml").write_text(syscalls_toml(target_tgid))
    if biolatency:
        shutil.copy(CONF_D / "biolatency.toml", programs / "biolatency.toml")
    return programs


def grpc_points(received, metric: str, **attrs) -> list:
    """Every data point of ``metric`` (sums only) whose attributes include ``attrs``, in order."""
    out = []
    for export in received:
        for rm in export.request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name != metric:
                        continue
                    for dp in m.sum.data_points:
                        have = {a.key: a.value.string_value for a in dp.attributes}
                        if all(have.get(k) == v for k, v in attrs.items()):
                            out.append(dp)
    return out


def flushes(agent, ok: bool | None = None) -> int:
    with agent._cond:
        return sum(1 for e in agent.logs if e.get("event") == "flushed"
                   and (ok is None or e.get("ok") is ok))


def wait_flushes(agent, n: int = 1, *, ok: bool | None = True, timeout: float = 30.0) -> None:
    """Wait until ``n`` more flushes (with that outcome) than now have been logged."""
    target = flushes(agent, ok) + n
    agent.wait_log(lambda _entry: flushes(agent, ok) >= target, timeout)


def no_traceback(agent) -> None:
    text = "".join(agent.raw_stderr) + "".join(agent.stdout_lines)
    assert "Traceback" not in text, text[-4000:]


SYS_GETPGID = {"x86_64": 121, "aarch64": 155}[platform.machine()]

_SYSCALL_CHILD = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "exit":
        break
    nr, arg, count = (int(x) for x in line.split())
    for _ in range(count):
        libc.syscall(nr, arg)
    print("done", flush=True)
"""


class SyscallChild:
    """A child that makes exactly ``count`` raw syscalls ``nr(arg)`` when asked (pid known up front)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SYSCALL_CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, nr: int, arg: int, count: int = 1) -> None:
        self.proc.stdin.write(f"{nr} {arg} {count}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("exit\n")
            self.proc.stdin.flush()
            self.proc.wait(10)

    def __enter__(self) -> SyscallChild:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
