"""Run the real agent as a child process, with a config written for one test.

The agent logs JSON lines to stderr (not a TTY); tests wait on those lines rather than sleeping
blindly, and stop the agent with the same signals systemd would send.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def write_agent_config(directory: Path, *, endpoint: str | None, programs: list[str],
                       programs_dir: Path, objects_dir: Path | None = None,
                       interval: str = "1s", protocol: str = "http/protobuf",
                       temporality: str = "cumulative", pin_dir: Path | None = None,
                       state_dir: Path | None = None, extra: str = "",
                       builtins: bool = False) -> Path:
    """An agent config for tests: isolated pin and state directories, fast interval."""
    pin_dir = pin_dir or Path("/sys/fs/bpf") / f"otelbpf-test-{uuid.uuid4().hex[:8]}"
    state_dir = state_dir or directory / "state"
    lines = [
        "[agent]",
        f"interval = {toml_value(interval)}",
        f"programs_dir = {toml_value(str(programs_dir))}",
        f"objects_dir = {toml_value(str(objects_dir or REPO / 'bpf' / 'build'))}",
        f"programs = {toml_value(programs)}",
        "",
        "[export]",
        f"protocol = {toml_value(protocol if endpoint else 'console')}",
    ]
    if endpoint:
        lines += [f"endpoint = {toml_value(endpoint)}", f"temporality = {toml_value(temporality)}",
                  'timeout = "2s"', 'max_backoff = "1s"']
    lines += [
        "",
        "[state]",
        f"pin_dir = {toml_value(str(pin_dir))}",
        f"state_dir = {toml_value(str(state_dir))}",
        "",
        "[builtin.map_pressure]",
        f"enabled = {toml_value(builtins)}",
        "",
        "[builtin.program_stats]",
        f"enabled = {toml_value(builtins)}",
        "",
        extra,
    ]
    path = directory / "otelbpf.toml"
    path.write_text("\n".join(lines))
    return path


class AgentProcess:
    """``python -m otelbpf run`` with its JSON log lines collected as they arrive."""

    def __init__(self, config: Path, *, env: dict[str, str] | None = None, log_level: str = "debug",
                 args: tuple[str, ...] = ()):
        self.config = config
        self.logs: list[dict] = []
        self.raw_stderr: list[str] = []
        self.stdout_lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "otelbpf", "--log-format", "json", "--log-level", log_level,
             "run", "--config", str(config), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, **(env or {})},
        )
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stderr, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stdout, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream, is_log: bool) -> None:
        for line in stream:
            with self._cond:
                if is_log:
                    self.raw_stderr.append(line)
                    try:
                        self.logs.append(json.loads(line))
                    except ValueError:
                        pass
                else:
                    self.stdout_lines.append(line)
                self._cond.notify_all()

    def wait_log(self, predicate: Callable[[dict], bool], timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for entry in self.logs[seen:]:
                    if predicate(entry):
                        return entry
                seen = len(self.logs)
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and seen == len(self.logs):
                    raise AssertionError(
                        f"log line not seen within {timeout}s; agent exit={self.proc.poll()}; "
                        f"stderr tail:\n{''.join(self.raw_stderr[-30:])}")
                self._cond.wait(min(left, 0.2))

    def wait_event(self, event: str, timeout: float = 30.0, **fields) -> dict:
        return self.wait_log(
            lambda e: e.get("event") == event and all(e.get(k) == v for k, v in fields.items()),
            timeout)

    def count_events(self, event: str) -> int:
        with self._cond:
            return sum(1 for e in self.logs if e.get("event") == event)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            for t in self._threads:
                t.join(5)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.kill()


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
