"""The example stream programs end to end, wired the way the agent wires them:
conf/conf.d/NAME.toml → BpfObject → open_stream → StreamDrainer thread → collect().

Each test drives an exact workload and expects exact counts for its own label set (other
processes on the host may exec or signal too; their series are ignored)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from otelbpf.config.program import load_program_config
from otelbpf.config.validate import validate_against_object
from otelbpf.kernel.object import BpfObject
from otelbpf.streams.drain import StreamDrainer
from otelbpf.streams.source import open_stream

pytestmark = pytest.mark.kernel
REPO = Path(__file__).resolve().parents[2]


def running_stream(bpf_build, name: str, **options):
    """(object, source, drainer) for conf/conf.d/NAME.toml with its single stream, draining."""
    config = load_program_config(REPO / "conf" / "conf.d" / f"{name}.toml", bpf_build)
    obj = BpfObject.open(config.object, parameters=config.parameters)
    assert validate_against_object(config, obj.maps) == []
    obj.load()
    source = open_stream(config.streams[0], obj.maps, program=config.name, **options)
    drainer = StreamDrainer(poll_timeout=0.1)
    drainer.add(source)
    drainer.start()
    for prog in obj.programs:
        obj.attach(prog)
    return obj, source, drainer


def counter(source, name: str, attributes) -> int:
    for metric in source.collect(time.time_ns()):
        if metric.name == name:
            for point in metric.points:
                if point.attributes == attributes:
                    return point.value
    return 0


def settle(read, expected: int, timeout: float = 10.0) -> int:
    """The value once it reached `expected` (or the timeout passed), re-read after a pause so
    that extra events would show."""
    deadline = time.monotonic() + timeout
    while read() < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    return read()


def unique_name() -> str:
    return "otb" + uuid.uuid4().hex[:10]  # 13 characters: comm keeps 15


def test_execsnoop_counts_every_exec_by_command_and_parent(bpf_build, tmp_path):
    obj, source, drainer = running_stream(bpf_build, "execsnoop")
    try:
        name = unique_name()
        exe = tmp_path / name
        shutil.copy("/bin/true", exe)
        for _ in range(25):
            subprocess.run([exe], check=True)
        parent = Path("/proc/self/comm").read_text().strip()
        labels = (("process.executable.name", name), ("parent_command", parent))
        assert settle(lambda: counter(source, "execsnoop.execs", labels), 25) == 25
        assert counter(source, "otelbpf.stream.lost", source.aggregator.self_attributes) == 0
        attrs = dict(source.aggregator.self_attributes)
        assert attrs == {"otelbpf.program": "execsnoop", "otelbpf.stream": "exec_events"}
        assert counter(source, "otelbpf.stream.events", source.aggregator.self_attributes) >= 25
        sizes = [m for m in source.collect(time.time_ns()) if m.name == "otelbpf.stream.ringbuf.limit"]
        assert sizes[0].points[0].value == 256 * 1024
    finally:
        drainer.close()
        obj.close()


def test_signals_counts_every_signal_by_number_and_target(bpf_build, tmp_path):
    obj, source, drainer = running_stream(bpf_build, "signals", pages_per_cpu=8)
    name = unique_name()
    exe = tmp_path / name
    shutil.copy("/bin/sleep", exe)
    child = subprocess.Popen([exe, "60"])
    try:
        # Popen returns once exec closed its close-on-exec pipe, which happens before the kernel
        # renames the task (setup_new_exec): wait for the new comm, or signals count as "python3".
        comm = Path(f"/proc/{child.pid}/comm")
        deadline = time.monotonic() + 10
        while comm.read_text().strip() != name and time.monotonic() < deadline:
            time.sleep(0.001)
        for _ in range(40):
            os.kill(child.pid, signal.SIGWINCH)  # ignored by default: the target keeps sleeping
        for _ in range(3):
            os.kill(child.pid, signal.SIGCONT)
        winch = (("signal", "SIGWINCH"), ("process.executable.name", name))
        cont = (("signal", "SIGCONT"), ("process.executable.name", name))
        assert settle(lambda: counter(source, "signals.generated", winch), 40) == 40
        assert counter(source, "signals.generated", cont) == 3
        assert counter(source, "otelbpf.stream.lost", source.aggregator.self_attributes) == 0
    finally:
        child.kill()
        child.wait()
        drainer.close()
        obj.close()
