"""Kernel cost of every program in conf/conf.d, side by side, under a fixed workload each.

    sudo python3 benchmarks/programs.py [--scale 1.0] [--only NAME,...]
    sudo python3 benchmarks/programs.py --only NAME --against OTHER.bpf.o [--pairs 3]

--against compares two builds of one program: its shipped object and OTHER (say, the previous
version, built from `git show REV:bpf/NAME.bpf.c`), measured alternately, --pairs times each.

For each program: its workload runs alternately with nothing attached and with the program
attached, 5 times each; the medians are compared, so one run slowed by other work on the host
does not count as the program's cost. With kernel run-time statistics on
(BPF_ENABLE_STATS, the same switch the agent's program_stats uses), each BPF program's
run_time_ns / run_cnt over the attached run is its average cost per run. Beside it, measured
the same way under the same workload right after: the floor, do-nothing programs of the same
kind on the same hooks attached alone (bpf/tests/bench_floor.bpf.c), which is what any program
costs there; and for the programs of LEAST_WORK, programs that do only the one step the job
cannot do without (read the clock, add in a hash or an array), the least such a program costs
there. Both are attached alone because the first BPF program a rare hook calls pays the hook's
cold cache misses: attached together, the order decides who pays. The added wall time per
workload event (attached minus baseline) and the ratio attached / baseline are the cost as the
workload sees it. Run counts include other processes' events: the average per run stays
meaningful, the run count is not the workload's event count.

Bars (see README, "The program library"): every counter program <= 100 ns per run, every
histogram program <= 200 ns (a program's average per run: the run time of all its BPF programs
over all their runs in one attached round, the median of the 5 rounds; the average over all
rounds and each BPF program's own average are reported too), and otelbpf_exp_index() at scale 3
<= 30 ns more than log2 (bpf/tests/exp_bench.bpf.c, both run 10^6 times in the kernel with
BPF_PROG_TEST_RUN).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import ctypes
import json
import mmap
import os
import platform
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from otelbpf.config.program import load_program_config  # noqa: E402
from otelbpf.decoders.cgroup import cgroup2_mount  # noqa: E402
from otelbpf.health.run_stats import RunTimeStats  # noqa: E402
from otelbpf.kernel import info  # noqa: E402
from otelbpf.kernel.object import BpfObject  # noqa: E402
from otelbpf.streams.drain import StreamDrainer  # noqa: E402
from otelbpf.streams.source import open_stream  # noqa: E402
from tests.workloads import fill_accept_queue  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CONF_D = REPO / "conf" / "conf.d"
BUILD = REPO / "bpf" / "build"
FLOOR = BUILD / "tests" / "bench_floor.bpf.o"
# The least work a program doing the same job must do on each of its hooks (bench_floor.bpf.c),
# for the programs whose bar is in question: timing an interval reads the clock at both ends;
# counting by something only a hash map can hold (a drop reason, a port, a command, a cgroup, a
# device) updates a hash; counting by a small index adds in an array.
LEAST_WORK = {
    "hardirqs": ("clock_irq_handler_entry", "clock_irq_handler_exit"),
    "softirqs": ("clock_softirq_entry", "clock_softirq_exit"),
    "timers": ("array_timer_expire_entry", "array_hrtimer_expire_entry"),
    "skb-drops": ("hash_kfree_skb",),
    "udp-drops": ("hash_udp_fail_queue_rcv_skb",),
    "page-faults": ("hash_page_fault_user",),
    "cgroup-cpu@two-cgroups": ("hash_sched_switch",),  # a cgroup change at every switch
    "bio-size": ("hash_block_rq_issue",),
}
COUNTER_BAR_NS, HISTOGRAM_BAR_NS, EXP_INDEX_BAR_NS = 100.0, 200.0, 30.0
ROUNDS = 5

libc = ctypes.CDLL(None, use_errno=True)
SYS_GETPID = {"x86_64": 39, "aarch64": 172}[platform.machine()]


# -- workloads: each runs n events of its kind and returns how many it ran ---------------------

def getpid_calls(n: int) -> int:
    for _ in range(n):
        libc.syscall(SYS_GETPID)
    return n


def pipe_ping_pong(n: int, child_cgroup: Path | None = None) -> int:
    """n round trips with a child over two pipes: each one wakes and switches to the other side.
    With `child_cgroup`, the child runs there (cgroup.procs)."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        if child_cgroup is not None:
            (child_cgroup / "cgroup.procs").write_text("0")
        os.close(w1)
        os.close(r2)
        while os.read(r1, 1):
            os.write(w2, b"x")
        os._exit(0)
    os.close(r1)
    os.close(w2)
    for _ in range(n):
        os.write(w1, b"x")
        os.read(r2, 1)
    os.close(w1)
    os.waitpid(pid, 0)
    os.close(r2)
    return n


def ping_pong_across_cgroups(n: int) -> int:
    """pipe_ping_pong() on one CPU with the child in a cgroup v2 of its own: every switch on that
    CPU goes from one cgroup to the other."""
    root = cgroup2_mount()
    if root is None:
        sys.exit("benchmarks/programs.py: no cgroup v2 hierarchy mounted (cgroup-cpu@two-cgroups)")
    cgroup = root / f"otelbpf-bench-{os.getpid()}-{time.monotonic_ns()}"
    cgroup.mkdir()
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})
    try:
        return pipe_ping_pong(n, cgroup)
    finally:
        os.sched_setaffinity(0, affinity)
        cgroup.rmdir()


def page_touches(n: int) -> int:
    page = os.sysconf("SC_PAGE_SIZE")
    m = mmap.mmap(-1, n * page)
    m.madvise(mmap.MADV_NOHUGEPAGE)
    for i in range(n):
        m[i * page] = 1
    m.close()
    return n


def udp_datagrams(n: int, *, closed: bool = False, small_buffer: bool = False) -> int:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if small_buffer:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rx.bind(("127.0.0.1", 0))
    address = rx.getsockname()
    if closed:
        rx.close()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(n):
        try:
            tx.sendto(b"x" * 64, address)
        except ConnectionRefusedError:
            pass
        if not closed and not small_buffer and i % 64 == 63:
            try:
                while True:
                    rx.recv(64, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
    tx.close()
    if not closed:
        rx.close()
    return n


def tcp_connections(n: int) -> int:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    for _ in range(n):
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        client.close()
        accepted.close()
    server.close()
    return n


def tcp_ping_pong(n: int) -> int:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    for _ in range(n):
        client.sendall(b"ping")
        accepted.recv(4)
        accepted.sendall(b"pong")
        client.recv(4)
    for s in (client, accepted, server):
        s.close()
    return n


def syn_retransmits(n: int) -> int:
    """n SYNs sent again: n connections to a listener whose accept queue is full, each waiting
    past the first retransmission timeout (1 s); the listener drops every SYN it cannot queue."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    first = fill_accept_queue(server)
    clients = []
    for _ in range(n):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(server.getsockname())
        clients.append(client)
    time.sleep(1.5)  # past the first retransmission, before the second (at 3 s)
    for s in (*clients, first, server):
        s.close()
    return n


def memory_cgroup() -> Path | None:
    """A fresh memory cgroup limited to 32 MiB (cgroup v1, or v2 with the memory controller)."""
    name = f"otelbpf-bench-{os.getpid()}-{time.monotonic_ns()}"
    v2 = cgroup2_mount()
    for root, limit in ((Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),
                        *(((v2, "memory.max"),) if v2 else ())):
        controllers = root / "cgroup.subtree_control"
        if (root / limit).exists() or (controllers.exists() and "memory" in controllers.read_text().split()):
            path = root / name
            path.mkdir()
            (path / limit).write_text(str(32 << 20))
            return path
    return None


def oom_kills(n: int) -> int:
    """n processes killed by the OOM killer: each joins a 32 MiB memory cgroup, then allocates past it."""
    cgroup = memory_cgroup()
    if cgroup is None:
        print("oomkill workload: no memory cgroup controller here, nothing is killed", file=sys.stderr)
        return 0
    child = ("import sys; open(sys.argv[1], 'w').write('0');"
             " b = [bytearray(1 << 20) for _ in range(256)]")
    try:
        for _ in range(n):
            if subprocess.run([sys.executable, "-S", "-c", child, str(cgroup / "cgroup.procs")]).returncode != -9:
                sys.exit("oomkill workload: the OOM killer did not kill the child")
    finally:
        for _ in range(50):
            try:
                cgroup.rmdir()
                break
            except OSError:  # the last child is still being torn down
                time.sleep(0.1)
    return n


def short_sleeps(n: int) -> int:
    for _ in range(n):
        time.sleep(0.0001)
    return n


def fsync_writes(n: int) -> int:
    directory = Path("/var/tmp")
    fd, path = tempfile.mkstemp(dir=directory, prefix=".otelbpf-bench-")
    block = os.urandom(4096)
    for i in range(n):
        os.pwrite(fd, block, i * 4096)
        os.fsync(fd)
    os.close(fd)
    os.unlink(path)
    return n


def page_cache_cycles(n: int) -> int:
    """n pages written, dropped from the cache and read back (added twice, removed once)."""
    page = os.sysconf("SC_PAGE_SIZE")
    fd, path = tempfile.mkstemp(dir="/var/tmp", prefix=".otelbpf-bench-")
    os.write(fd, os.urandom(n * page))
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.pread(fd, n * page, 0)
    os.close(fd)
    os.unlink(path)
    return n


def execs(n: int) -> int:
    for _ in range(n):
        subprocess.run(["/bin/true"], check=True)
    return n


def ignored_signals(n: int) -> int:
    previous = signal.signal(signal.SIGWINCH, signal.SIG_IGN)
    for _ in range(n):
        os.kill(os.getpid(), signal.SIGWINCH)
    signal.signal(signal.SIGWINCH, previous)
    return n


# program -> (workload, events at --scale 1, what one event is); "program@variant": the same
# program under another workload, measured after it.
WORKLOADS = {
    "syscalls": (getpid_calls, 200_000, "getpid call"),
    "syscall-latency": (getpid_calls, 200_000, "getpid call"),
    "runqlat": (pipe_ping_pong, 20_000, "pipe round trip"),
    "cpu-switches": (pipe_ping_pong, 20_000, "pipe round trip"),
    "cgroup-cpu": (pipe_ping_pong, 20_000, "pipe round trip"),
    # The switch pattern its batching cannot help: every switch on the CPU changes cgroup.
    "cgroup-cpu@two-cgroups": (ping_pong_across_cgroups, 20_000, "pipe round trip, one CPU, two cgroups"),
    "page-faults": (page_touches, 50_000, "page first touched"),
    "softirqs": (udp_datagrams, 50_000, "loopback UDP datagram"),
    "softirq-latency": (udp_datagrams, 50_000, "loopback UDP datagram"),
    "skb-drops": (lambda n: udp_datagrams(n, closed=True), 50_000, "datagram to a closed port"),
    "udp-drops": (lambda n: udp_datagrams(n, small_buffer=True), 50_000, "datagram to a full socket"),
    "tcp-states": (tcp_connections, 2_000, "TCP connection"),
    "tcp-retransmits": (syn_retransmits, 200, "SYN sent again to a full listener"),
    "tcp-rtt": (tcp_ping_pong, 10_000, "TCP round trip"),
    "timers": (short_sleeps, 5_000, "100 us sleep"),
    "hardirqs": (fsync_writes, 300, "fsync'd 4 KiB write"),
    "biolatency": (fsync_writes, 300, "fsync'd 4 KiB write"),
    "bio-size": (fsync_writes, 300, "fsync'd 4 KiB write"),
    "cachestat": (page_cache_cycles, 20_000, "page written, dropped, read"),
    "execsnoop": (execs, 300, "exec of /bin/true"),
    "signals": (ignored_signals, 50_000, "ignored signal"),
    "oomkill": (oom_kills, 10, "process killed by the OOM killer"),
}


def kind_of(config) -> str:
    if config.histograms:
        return "histogram"
    if config.counters:
        return "counter"
    return "stream"


def prog_stats(obj: BpfObject) -> dict[str, tuple[int, int]]:
    out = {}
    for name, prog in obj.programs.items():
        pi = info.prog_info(prog.fd)
        out[name] = (pi.run_cnt, pi.run_time_ns)
    return out


def timed(workload, n: int) -> float:
    start = time.perf_counter()
    workload(n)
    return time.perf_counter() - start


def floor_of(section: str) -> str:
    """The do-nothing program of bench_floor.bpf.c on the same hook as SEC(section)."""
    kind, _, hook = section.partition("/")
    hook = hook.rsplit("/", 1)[-1]  # tracepoint/CATEGORY/NAME
    return {"tp_btf": f"floor_{hook}", "raw_tp": f"floor_raw_{hook}", "tracepoint": f"floor_tp_{hook}"}.get(kind, "")


def measure(name: str, scale: float, object_path: Path | None = None, workload=None,
            attach_only: Sequence[str] = ()) -> dict:
    """`object_path` and `workload`: another object (bench_floor.bpf.o) on another workload;
    `attach_only`: attach only these of its programs."""
    default_workload, events, event = WORKLOADS[name]
    workload = workload or default_workload
    n = max(1, int(events * scale))
    config = load_program_config(CONF_D / f"{name.partition('@')[0]}.toml", BUILD)
    if object_path is not None:
        config = dataclasses.replace(config, object=object_path, streams=())
    with BpfObject.open(config.object, parameters=config.parameters if object_path is None else {}) as obj:
        obj.load()
        drainers = []
        for stream in config.streams:  # consumed as the agent would, so the ring never fills
            source = open_stream(stream, obj.maps, program=config.name)
            drainer = StreamDrainer(poll_timeout=0.1)
            drainer.add(source)
            drainer.start()
            drainers.append((drainer, source))
        workload(max(1, n // 10))  # warm caches, sockets, the page allocator
        # Bare and attached runs alternate, ROUNDS each, and the medians are compared: on a
        # shared machine one run of either kind can be slowed by whatever else runs.
        bare, attached = [], []
        rounds = []  # per attached round: BPF program -> (runs, run time ns) in that round
        sections = {p: prog.section for p, prog in obj.programs.items()}
        for _ in range(ROUNDS):
            bare.append(timed(workload, n))
            links = ([obj.attach(p) for p in attach_only] if attach_only else
                     [r for r in obj.attach_all().values() if not isinstance(r, Exception)])
            before = prog_stats(obj)
            attached.append(timed(workload, n))
            after = prog_stats(obj)
            for link in links:
                link.close()
            rounds.append({p: (after[p][0] - before[p][0], after[p][1] - before[p][1]) for p in after})
        for drainer, source in drainers:
            drainer.stop()
            source.close()
    runs = {p: (sum(r[p][0] for r in rounds), sum(r[p][1] for r in rounds)) for p in sections}
    per_prog = {p: (round(t / c, 1) if c else None) for p, (c, t) in runs.items()}
    total_cnt = sum(c for c, _ in runs.values())
    total_ns = sum(t for _, t in runs.values())
    # The program's ns per run in each attached round (all its BPF programs together).
    round_avgs = [sum(t for _, t in r.values()) / cnt for r in rounds
                  if (cnt := sum(c for c, _ in r.values()))]
    baseline, with_program = statistics.median(bare), statistics.median(attached)
    kind = kind_of(config)
    # Streams have no bar: their cost is the ring or perf buffer output, per event streamed.
    bar = {"histogram": HISTOGRAM_BAR_NS, "counter": COUNTER_BAR_NS}.get(kind)
    measured = [v for v in per_prog.values() if v is not None]
    median_ns = round(statistics.median(round_avgs), 1) if round_avgs else None
    return {
        "program": name,
        "kind": kind,
        "event": event,
        "events": n,
        "bpf_programs": per_prog,
        "sections": sections,
        "runs": total_cnt,
        "avg_ns_per_run": round(total_ns / total_cnt, 1) if total_cnt else None,
        "round_ns_per_run": [round(a, 1) for a in round_avgs],
        "median_round_ns_per_run": median_ns,
        "max_prog_avg_ns_per_run": max(measured) if measured else None,
        "baseline_ns_per_event": round(baseline / n * 1e9, 1),
        "added_ns_per_event": round((with_program - baseline) / n * 1e9, 1),
        "ratio_to_bare": round(with_program / baseline, 3),
        "bar_ns": bar,
        # The bar is on the program's average per run (all its BPF programs' run time over all
        # their runs; a rare hook's few cold runs show in bpf_programs, not in the bar), in the
        # median round: one host interrupt inside a run of a rare hook (a 200 us stall over a
        # few hundred runs) moves one round's average, not the median.
        "within_bar": (median_ns <= bar) if median_ns is not None and bar else None,
    }


def exp_index_cost(rounds: int = 1_000_000, repeats: int = 5) -> dict:
    """ns per call of otelbpf_exp_index(v, 3) and of exp2_slot(v), best of `repeats`."""
    with BpfObject.open(BUILD / "tests" / "exp_bench.bpf.o", parameters={"rounds": rounds}) as obj:
        obj.load()
        best = {}
        for prog in ("bench_exp_index", "bench_log2"):
            times = []
            for _ in range(repeats):
                start = time.perf_counter_ns()
                obj.programs[prog].test_run()
                times.append((time.perf_counter_ns() - start) / rounds)
            best[prog] = min(times)
    extra = best["bench_exp_index"] - best["bench_log2"]
    return {"exp_index_ns": round(best["bench_exp_index"], 2), "log2_ns": round(best["bench_log2"], 2),
            "extra_ns": round(extra, 2), "bar_ns": EXP_INDEX_BAR_NS, "within_bar": extra <= EXP_INDEX_BAR_NS}


def alone(name: str, scale: float, programs: Sequence[str]) -> dict:
    """Programs of bench_floor.bpf.c attached alone under `name`'s workload: each one's ns per run
    and the median round of all of them ({} without programs)."""
    if not programs:
        return {}
    r = measure(name, scale, FLOOR, attach_only=programs)
    return {"bpf_programs": {p: r["bpf_programs"][p] for p in programs},
            "median_round_ns_per_run": r["median_round_ns_per_run"]}


def compare(names: list[str], other: Path, pairs: int, scale: float) -> None:
    """The median round of one program's shipped object and of `other`, alternately."""
    if len(names) != 1 or not other.is_file():
        sys.exit("benchmarks/programs.py: --against needs one --only program and an object file")
    name, load = names[0], os.getloadavg()[0]
    shipped = load_program_config(CONF_D / f"{name.partition('@')[0]}.toml", BUILD).object
    medians: dict[str, list[float | None]] = {"shipped": [], "against": []}
    for _ in range(pairs):
        for which, path in (("shipped", shipped), ("against", other)):
            r = measure(name, scale, path)
            medians[which].append(r["median_round_ns_per_run"])
            print(f"{which:8} {r['median_round_ns_per_run']} ns  per prog {r['bpf_programs']}", flush=True)
    print(json.dumps({"benchmark": "programs-against", "program": name, "load_average_at_start": load,
                      "shipped": str(shipped), "against": str(other),
                      "median_round_ns_per_run": medians}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every workload's event count")
    parser.add_argument("--only", default="", help="comma-separated program names (default: all)")
    parser.add_argument("--against", type=Path, metavar="OBJECT",
                        help="with one --only program: alternate its shipped object and OBJECT")
    parser.add_argument("--pairs", type=int, default=3, help="rounds of --against (default 3)")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or sorted(
        [p.stem for p in CONF_D.glob("*.toml")] + [n for n in WORKLOADS if "@" in n])
    missing = [n for n in names if n not in WORKLOADS]
    if missing:
        sys.exit(f"benchmarks/programs.py: no workload for {', '.join(missing)}: add one to WORKLOADS")
    stats = RunTimeStats()
    if stats.method is None:
        sys.exit(f"benchmarks/programs.py: kernel run-time statistics unavailable: {stats.reason}")
    if args.against:
        try:
            compare(names, args.against, args.pairs, args.scale)
        finally:
            stats.close()
        return
    results, load = [], os.getloadavg()[0]
    with BpfObject.open(FLOOR) as floor_object:
        floor_programs = set(floor_object.programs)
    try:
        exp = exp_index_cost()
        print(f"exp index scale 3: {exp['exp_index_ns']} ns, log2: {exp['log2_ns']} ns, "
              f"+{exp['extra_ns']} ns (bar {EXP_INDEX_BAR_NS})", flush=True)
        # What one bpf_ktime_get_ns() adds to a program: an empty program and one that only reads
        # the clock, on a hook that fires a million times a round (its cache stays warm).
        clock = alone("syscalls", args.scale, ("floor_raw_sys_enter", "clock_raw_sys_enter"))["bpf_programs"]
        clock_ns = round(clock["clock_raw_sys_enter"] - clock["floor_raw_sys_enter"], 1)
        print(f"one bpf_ktime_get_ns(): +{clock_ns} ns", flush=True)
        for name in names:
            r = measure(name, args.scale)
            floors = {p: floor_of(section) for p, section in r.pop("sections").items()}
            # The empty program of each of its hooks, alone, under the same workload: what any
            # program costs there, and what this one adds to it.
            r["floor"] = alone(name, args.scale, sorted(set(floors.values()) & floor_programs))
            if r["median_round_ns_per_run"] is not None and r["floor"].get("median_round_ns_per_run") is not None:
                r["added_ns_per_run"] = round(r["median_round_ns_per_run"] - r["floor"]["median_round_ns_per_run"], 1)
            least = LEAST_WORK.get(name)
            if least:
                r["least"] = alone(name, args.scale, least)
            results.append(r)
            print(f"{name:16} {r['kind']:9} avg/run {r['avg_ns_per_run']} ns, median round "
                  f"{r['median_round_ns_per_run']} ns {r['round_ns_per_run']}  per prog {r['bpf_programs']}"
                  f"  empty programs alone {r['floor']}  least work alone {r.get('least')}"
                  f"  added/event {r['added_ns_per_event']} ns  x{r['ratio_to_bare']}  ({r['event']})", flush=True)
    finally:
        stats.close()
    judged = [r for r in results if r["within_bar"] is not None]
    print(json.dumps({
        "benchmark": "programs",
        "load_average_at_start": load,
        "exp_index": exp,
        "clock_read_ns": clock_ns,
        "programs": results,
        "all_within_bars": all(r["within_bar"] for r in judged) and exp["within_bar"],
        "over_bar": [r["program"] for r in judged if not r["within_bar"]],
        "not_triggered": [r["program"] for r in results if not r["runs"]],
    }))


if __name__ == "__main__":
    main()
