"""Keep the kernel's per-program run-time statistics (run_cnt, run_time_ns) switched on.

The kernel only counts program runs while statistics are enabled: BPF_ENABLE_STATS hands out an
fd and counting stays on, host-wide, until the last such fd closes (kernel/bpf/syscall.c
bpf_enable_runtime_stats), so nothing is left switched on if the agent dies. The sysctl
``kernel.bpf_stats_enabled`` is the fallback for kernels without BPF_ENABLE_STATS (< 5.8); it is
global state, so the previous value is put back on close.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from otelbpf.kernel import info

log = logging.getLogger("otelbpf.health.run_stats")

SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


class RunTimeStats:
    """Statistics are on from construction until ``close()``; ``method`` says how, ``reason`` why not."""

    def __init__(self) -> None:
        self.method: str | None = None  # "bpf_enable_stats" | "sysctl" | None
        self.reason: str | None = None
        self._fd = -1
        self._sysctl_previous: str | None = None
        try:
            self._fd = info.enable_stats()
            self.method = "bpf_enable_stats"
            return
        except OSError as exc:
            first_error = exc
        try:
            previous = SYSCTL.read_text().strip()
            if previous != "1":
                SYSCTL.write_text("1\n")
                self._sysctl_previous = previous
            self.method = "sysctl"
            log.info("BPF_ENABLE_STATS failed (%s); enabled %s instead", first_error, SYSCTL)
        except OSError as exc:
            self.reason = f"BPF_ENABLE_STATS: {first_error}; {SYSCTL}: {exc}"
            log.warning("program run-time statistics unavailable: %s; run counts stay 0", self.reason)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._sysctl_previous is not None:
            try:
                SYSCTL.write_text(self._sysctl_previous + "\n")
            except OSError as exc:
                log.warning("could not restore %s to %s: %s", SYSCTL, self._sysctl_previous, exc)
            self._sysctl_previous = None
