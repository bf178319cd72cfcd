"""Library programs about interrupts and timers, checked against the kernel's own counters:
softirqs and softirq-latency against /proc/softirqs, hardirqs against /proc/interrupts, timers
against a process that sleeps a known number of times."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from otelbpf.agent.program import LoadedProgram
from otelbpf.agent.state import AgentState
from otelbpf.config.agent import LimitsConfig
from otelbpf.config.program import load_program_config
from otelbpf.labels.keys import KeyDecoder
from tests.kernel.library import CONF_D, attached, exp_series, loaded, metrics, values
from tests.workloads import PythonChild

pytestmark = pytest.mark.kernel

VECTORS = ["HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU"]


def proc_softirqs() -> dict[int, int]:
    out = {}
    for line in Path("/proc/softirqs").read_text().splitlines()[1:]:
        name, *counts = line.split()
        out[VECTORS.index(name.rstrip(":"))] = sum(int(c) for c in counts)
    return out


def proc_interrupts() -> dict[int, int]:
    ncpu = len(Path("/proc/interrupts").read_text().splitlines()[0].split())
    out = {}
    for line in Path("/proc/interrupts").read_text().splitlines()[1:]:
        name, *rest = line.split()
        if name.rstrip(":").isdigit():
            out[int(name.rstrip(":"))] = sum(int(c) for c in rest[:ncpu])
    return out


def udp_loopback(packets: int) -> None:
    """Packets over loopback: every one goes through the NET_RX softirq."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(packets):
        tx.sendto(b"x" * 64, rx.getsockname())
        if i % 50 == 49:
            while True:
                try:
                    rx.recv(64, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
    tx.close()
    rx.close()


def within(ours: int, theirs: int, what: str) -> None:
    # The two counters are read a few microseconds apart from the attach and detach.
    assert abs(ours - theirs) <= 0.02 * theirs + 50, f"{what}: ours {ours}, kernel {theirs}"


def test_softirqs_runs_match_proc_softirqs(bpf_build):
    with loaded(bpf_build, "softirqs") as obj:
        with attached(obj):
            before = proc_softirqs()
            udp_loopback(2000)
            after = proc_softirqs()
        runs = values(obj.maps["softirq_stats"], "=I", 8)
        time_ns = values(obj.maps["softirq_stats"], "=I")
        exported = metrics(bpf_build, "softirqs", obj)
    assert after[3] - before[3] > 0, "loopback traffic ran no NET_RX softirq"
    for vec in range(len(VECTORS)):
        within(runs.get((vec,), 0), after[vec] - before[vec], VECTORS[vec])
    # Both fields of one value, not swapped: each run's time is more than 10 ns (a clock read at
    # each end) and well under a second.
    assert runs[(3,)] * 10 < time_ns[(3,)] < runs[(3,)] * 10**9
    by_name = {name: {dict(p.attributes)["vector"]: p.value for p in exported[name].points}
               for name in ("softirq.runs", "softirq.time")}
    assert by_name["softirq.runs"]["net_rx"] == runs[(3,)]
    assert by_name["softirq.time"]["net_rx"] == pytest.approx(time_ns[(3,)] * 1e-9, rel=1e-12)


def test_counters_of_one_struct_value_come_from_one_read(bpf_build, monkeypatch):
    """The agent reads softirq_stats once per collection for both counters: each run's time and
    its count are from the same moment (read twice, runs counted in between would not match)."""
    config = load_program_config(CONF_D / "softirqs.toml", bpf_build)
    prog = LoadedProgram.load(config, state=AgentState(None, None), limits=LimitsConfig(100, 0))
    try:
        reads = []
        stats_map = prog.obj.maps["softirq_stats"]
        read_all = stats_map.read_all
        monkeypatch.setattr(stats_map, "read_all", lambda: reads.append(1) or read_all())
        udp_loopback(200)
        exported = {m.name: m for m in prog.collect(time.time_ns())}
    finally:
        prog.close()
    assert len(reads) == 1
    runs = {dict(p.attributes)["vector"]: p.value for p in exported["softirq.runs"].points}
    seconds = {dict(p.attributes)["vector"]: p.value for p in exported["softirq.time"].points}
    assert runs.keys() == seconds.keys() and runs["net_rx"] > 0
    assert all(runs[v] * 10e-9 < seconds[v] for v in runs if runs[v])


def test_softirq_latency_measures_raised_net_rx(bpf_build):
    with loaded(bpf_build, "softirq-latency") as obj:
        with attached(obj):
            before = proc_softirqs()
            udp_loopback(2000)
            after = proc_softirqs()
        seen = values(obj.maps["softirq_latency"], "=Ii")
        metric = metrics(bpf_build, "softirq-latency", obj)["softirq.latency"]
    buckets, zero, total = exp_series(seen, (3,))
    waits = sum(buckets.values()) + zero
    # A raise is measured once, when the vector next runs on that CPU: at most one per run.
    assert 0 < waits <= after[3] - before[3] + 50
    assert total / waits < 100e6  # loopback receive runs within microseconds, at worst ms
    point = next(p for p in metric.points if dict(p.attributes)["vector"] == "net_rx")
    assert point.scale == 3 and point.count == waits


def proc_interrupt_names() -> dict[int, str]:
    """The handler names /proc/interrupts shows per IRQ (after the counts, chip, hwirq and type),
    a shared line's joined by ", "."""
    lines = Path("/proc/interrupts").read_text().splitlines()
    ncpu = len(lines[0].split())
    out = {}
    for line in lines[1:]:
        number, _, rest = line.partition(":")
        if number.strip().isdigit():
            out[int(number)] = " ".join(rest.split()[ncpu + 2:])
    return out


def test_hardirqs_runs_match_proc_interrupts(bpf_build, tmp_path):
    with loaded(bpf_build, "hardirqs") as obj:
        with attached(obj):
            before = proc_interrupts()
            # Disk writes with fsync: the device interrupts on completion.
            fd = os.open(tmp_path / "irq", os.O_WRONLY | os.O_CREAT)
            for _ in range(50):
                os.write(fd, b"x" * 4096)
                os.fsync(fd)
            os.close(fd)
            after = proc_interrupts()
        # An array indexed by IRQ number: the slots of IRQs that never ran stay zero.
        runs = {irq: n for (irq,), n in values(obj.maps["irq_stats"], "=I", 8).items() if n}
        time_ns = {irq: t for (irq,), t in values(obj.maps["irq_stats"], "=I").items() if t}
        exported = metrics(bpf_build, "hardirqs", obj)
    names = proc_interrupt_names()
    assert runs, "no interrupt handler ran during 50 fsyncs"
    for irq, n in runs.items():
        # Shared lines run every handler of the line per interrupt: one count per handler.
        handlers = len(names[irq].split(","))
        within(n, (after[irq] - before[irq]) * handlers, f"irq {irq}")
    assert time_ns.keys() == runs.keys()
    # One series per IRQ that ran (zero slots are skipped), labelled with its number and what
    # /proc/interrupts names the line; the runs are the map's.
    points = exported["irq.handler.runs"].points
    assert {int(dict(p.attributes)["irq"]) for p in points} == runs.keys()
    for point in points:
        attributes = dict(point.attributes)
        irq = int(attributes["irq"])
        assert attributes["handler"] == names[irq].replace(", ", ","), attributes
        assert point.value == runs[irq]
    seconds = {int(dict(p.attributes)["irq"]): p.value for p in exported["irq.handler.time"].points}
    assert seconds == pytest.approx({irq: t * 1e-9 for irq, t in time_ns.items()}, rel=1e-12)
    assert all(runs[irq] * 10 < t < runs[irq] * 10**9 for irq, t in time_ns.items())


def test_hardirqs_last_slot_is_labelled_as_every_irq_from_it_up(bpf_build):
    """IRQ numbers from 2047 up share the array's last slot (bpf/hardirqs.bpf.c)."""
    config = load_program_config(CONF_D / "hardirqs.toml", bpf_build)
    for counter in config.counters:
        decoder = KeyDecoder(counter.labels)
        assert decoder.decode((2047).to_bytes(4, "little"))[0] == "2047+"
        assert decoder.decode((2046).to_bytes(4, "little"))[0] == "2046"
    with loaded(bpf_build, "hardirqs") as obj:
        assert obj.maps["irq_stats"].max_entries == 2048


def test_timers_count_hrtimer_wakeups_of_sleeps(bpf_build):
    sleeps = 200
    with PythonChild() as child, loaded(bpf_build, "timers") as obj:
        child.run("import ctypes\nlibc = ctypes.CDLL(None)\nresult = None")
        with attached(obj):
            # usleep(): a relative sleep that always blocks (time.sleep() may not, see
            # test_library_sched.CHILD_SETUP).
            child.run(f"for _ in range({sleeps}): libc.usleep(1000)")
        metric = metrics(bpf_build, "timers", obj)["timer.expirations"]
        owners = values(obj.maps["timer_functions"], "=I")
        counts = values(obj.maps["timer_expirations"], "=I")
    wakeups = {dict(p.attributes)["function"]: p.value for p in metric.points}
    # Every one of our sleeps ends with its hrtimer calling hrtimer_wakeup (others sleep too).
    assert wakeups.get("hrtimer_wakeup", 0) >= sleeps, sorted(wakeups.items())[:10]
    # Each function owns one slot, and the exported series are exactly the counted slots.
    claimed = [owner for (slot,), owner in owners.items() if owner]
    assert len(claimed) == len(set(claimed))
    assert all(owners[(slot,)] for (slot,), n in counts.items() if n and slot)
    assert sum(wakeups.values()) == sum(counts.values())
    assert len(wakeups) <= sum(1 for n in counts.values() if n)  # two static functions may share a name


def test_timers_functions_without_a_free_slot_are_counted_as_other(bpf_build):
    """With one slot for every callback on the host, all but one share the overflow slot: their
    expirations are still counted, as "[other]", beside a full-size table attached meanwhile."""
    with PythonChild() as child, loaded(bpf_build, "timers") as full, \
            loaded(bpf_build, "timers",
                   object_path=bpf_build / "tests" / "timers_one_slot.bpf.o") as small:
        # Two callbacks at least: hrtimer_wakeup ends each sleep, it_real_fn fires the interval timer.
        child.run("import ctypes, signal\nlibc = ctypes.CDLL(None)\nresult = None\n"
                  "signal.signal(signal.SIGALRM, lambda *a: None)")
        with attached(full):
            with attached(small):
                child.run("signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)\n"
                          "for _ in range(300): libc.usleep(1000)\n"
                          "signal.setitimer(signal.ITIMER_REAL, 0)")
        everything = {dict(p.attributes)["function"]: p.value for p in
                      metrics(bpf_build, "timers", full)["timer.expirations"].points}
        few = {dict(p.attributes)["function"]: p.value for p in
               metrics(bpf_build, "timers", small)["timer.expirations"].points}
        owned = [slot for (slot,), owner in values(small.maps["timer_functions"], "=I").items() if owner]
    assert {"hrtimer_wakeup", "it_real_fn"} <= everything.keys(), sorted(everything)
    assert owned == [1]
    assert few["[other]"] > 0 and len(few) == 2, few
    total = sum(everything.values())
    # The small table ran inside the full one's window: the same expirations, but for those
    # between the two attaches and the two detaches.
    assert total - 200 <= sum(few.values()) <= total, (few, total)
