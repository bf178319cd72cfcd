"""Soak: the real agent with every shipped program, under a mixed workload, for minutes.

    sudo python3 benchmarks/soak.py [--minutes 10] [--interval 10] [--warmup 2]

Runs `python -m otelbpf run` with every program of conf/conf.d enabled (and the built-in health
sources, as in conf/otelbpf.toml), exporting over OTLP/HTTP to a real VictoriaMetrics on loopback,
while a workload makes system calls, fsync'd writes, execs and signals. The agent's own RSS and
CPU time are sampled from /proc/PID (ground truth, not the agent's own numbers); after the run,
VictoriaMetrics is asked what the agent reported about itself (process.*, otelbpf.stream.*,
otelbpf.export.*).

Bars (issue #5): RSS growth after warm-up < 5 MB, agent CPU < 1 % of one core, no lost stream
records. The last line is one JSON object; the exit code is 0 when every bar holds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from agentproc import AgentProcess, write_agent_config
from backends import VictoriaMetrics
from workloads import SYS_GETPID, block_device_dir

RSS_GROWTH_BAR = 5 * 1024 * 1024
CPU_BAR = 0.01
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_sample(pid: int) -> tuple[float, int, float]:
    """(monotonic time, RSS bytes, CPU seconds user+system) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * PAGE
    # fields[0] is the state (stat field 3): utime and stime are stat fields 14 and 15.
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return time.monotonic(), rss, cpu


class MixedWorkload:
    """Paced load of each kind the shipped programs watch; counts what it did."""

    def __init__(self, *, syscalls_per_s: int, fsyncs_per_s: int, execs_per_s: int,
                 signals_per_s: int):
        self.rates = {"syscalls": syscalls_per_s, "fsyncs": fsyncs_per_s, "execs": execs_per_s,
                      "signals": signals_per_s}
        self.done = dict.fromkeys(self.rates, 0)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._dir = block_device_dir()

    def start(self) -> None:
        signal.signal(signal.SIGUSR1, lambda *_: None)
        for kind in self.rates:
            t = threading.Thread(target=self._loop, args=(kind,), name=f"soak-{kind}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _loop(self, kind: str) -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        rate = self.rates[kind]
        # Work in 10 slices per second so the load is steady rather than bursty.
        per_slice = max(1, rate // 10)
        fd, path = tempfile.mkstemp(dir=self._dir, prefix=".otelbpf-soak-")
        block = os.urandom(4096)
        try:
            next_slice = time.monotonic()
            while not self._stop.is_set():
                for i in range(per_slice):
                    if kind == "syscalls":
                        libc.syscall(SYS_GETPID)
                    elif kind == "fsyncs":
                        os.pwrite(fd, block, (i % 256) * 4096)
                        os.fsync(fd)
                    elif kind == "execs":
                        subprocess.run(["/bin/true"], check=True)
                    else:
                        os.kill(os.getpid(), signal.SIGUSR1)
                self.done[kind] += per_slice
                next_slice += 0.1
                self._stop.wait(max(0.0, next_slice - time.monotonic()))
        finally:
            os.close(fd)
            os.unlink(path)


def vm_value(vm: VictoriaMetrics, promql: str) -> float | None:
    samples = vm.query(promql)
    return sum(s.value for s in samples) if samples else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="run time (default 10)")
    parser.add_argument("--interval", type=float, default=10.0, help="agent interval in s (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="minutes excluded from the RSS and CPU figures (default 2)")
    parser.add_argument("--syscalls", type=int, default=2000, help="getpid calls per second")
    parser.add_argument("--fsyncs", type=int, default=20, help="fsync'd 4 KiB writes per second")
    parser.add_argument("--execs", type=int, default=20, help="execs of /bin/true per second")
    parser.add_argument("--signals", type=int, default=100, help="SIGUSR1 sent per second")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root (the agent loads BPF programs)")
    warmup = min(args.warmup * 60, args.minutes * 60 / 2)

    run_id = uuid.uuid4().hex[:12]
    work = Path(tempfile.mkdtemp(prefix="otelbpf-soak-"))
    pin_dir = Path("/sys/fs/bpf") / f"otelbpf-soak-{run_id[:8]}"
    programs_dir = work / "conf.d"
    shutil.copytree(REPO / "conf" / "conf.d", programs_dir)
    programs = sorted(p.stem for p in programs_dir.glob("*.toml"))
    vm = VictoriaMetrics().start()
    workload = MixedWorkload(syscalls_per_s=args.syscalls, fsyncs_per_s=args.fsyncs,
                             execs_per_s=args.execs, signals_per_s=args.signals)
    samples: list[tuple[float, int, float]] = []
    result: dict = {}
    try:
        config = write_agent_config(work, endpoint=vm.otlp_http_endpoint, programs=programs,
                                    programs_dir=programs_dir, interval=f"{args.interval}s",
                                    pin_dir=pin_dir, builtins=True)
        with AgentProcess(config, log_level="info",
                          env={"OTEL_RESOURCE_ATTRIBUTES": f"soak.run={run_id}"}) as agent:
            started = agent.wait_event("agent started", timeout=60)
            workload.start()
            t0 = time.monotonic()
            end = t0 + args.minutes * 60
            while time.monotonic() < end:
                if agent.proc.poll() is not None:
                    raise RuntimeError(f"agent exited with {agent.proc.returncode}: "
                                       f"{''.join(agent.raw_stderr[-20:])}")
                samples.append(proc_sample(agent.proc.pid))
                time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            samples.append(proc_sample(agent.proc.pid))
            workload.stop()
            exit_code = agent.stop(timeout=60)

        after = [s for s in samples if s[0] - t0 >= warmup]
        base = after[0]
        last = samples[-1]
        rss_growth = max(s[1] for s in after) - base[1]
        cpu_share = (last[2] - base[2]) / (last[0] - base[0])
        sel = f'soak_run="{run_id}"'
        # Streams report otelbpf.stream.lost (ring/perf buffer full) per stream; None means no
        # stream exported anything (streams not running), which fails the bar.
        lost = vm_value(vm, f"otelbpf_stream_lost_total{{{sel}}}")
        stream_events = vm_value(vm, f"otelbpf_stream_events_total{{{sel}}}")
        errors = [e for e in agent.logs if e.get("level") in ("error", "critical")]
        tracebacks = sum("Traceback" in line for line in agent.raw_stderr)
        result = {
            "benchmark": "soak",
            "minutes": args.minutes,
            "interval_s": args.interval,
            "warmup_s": warmup,
            "programs": programs,
            "loaded": started.get("programs"),
            "failed": started.get("failed"),
            "workload_per_s": workload.rates,
            "workload_done": workload.done,
            "rss_bytes_after_warmup": base[1],
            "rss_bytes_end": last[1],
            "rss_bytes_max": max(s[1] for s in samples),
            "rss_growth_bytes": rss_growth,
            "cpu_share_of_one_core": round(cpu_share, 5),
            "cpu_share_incl_warmup": round((last[2] - samples[0][2]) / (last[0] - samples[0][0]), 5),
            "stream_events": stream_events,
            "stream_lost": lost,
            # syscalls counts every process here (target_tgid = 0): a liveness figure, not exact.
            "exported_getpid_all_processes": vm_value(
                vm, f'syscalls_total{{syscall="getpid",{sel}}}'),
            # The agent's own process.* metrics, as the backend stored them.
            "exported_agent_metrics": {
                s.labels["__name__"] + (f'{{cpu_mode="{s.labels["cpu_mode"]}"}}' if "cpu_mode" in s.labels else ""): s.value
                for s in vm.query(f'{{__name__=~"process_.*",{sel}}}')},
            "export_failures": vm_value(vm, f"otelbpf_export_failures_total{{{sel}}}"),
            "exported_flushes_ok": vm_value(
                vm, f'otelbpf_export_requests_total{{outcome="success",{sel}}}'),
            "error_log_lines": len(errors),
            "first_errors": [e.get("event") + ": " + str(e.get("error", ""))[:200] for e in errors[:5]],
            "tracebacks": tracebacks,
            "agent_exit_code": exit_code,
            "load_average_end": os.getloadavg(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        result["bars"] = {
            "rss_growth_below_5MB": rss_growth < RSS_GROWTH_BAR,
            "cpu_below_1pct": cpu_share < CPU_BAR,
            "no_lost_records": lost == 0,
            "no_tracebacks": tracebacks == 0,
        }
        result["ok"] = all(result["bars"].values())
    finally:
        workload.stop()
        vm.close()
        shutil.rmtree(pin_dir, ignore_errors=True)  # only our own pin directory
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
