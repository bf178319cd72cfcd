"""Sections ebpf_exporter's examples use beyond tracepoints: perf_event/type=…,config=…,frequency=…
on every CPU and xdp/IFNAME (which ebpf_exporter attaches itself) and usdt/BINARY:PROVIDER:NAME.
Loaded and attached on the real kernel, counting what the test drives."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from otelbpf.kernel import BpfObject, perf
from otelbpf.kernel.object import perf_event_target

PORT = 9435  # the UDP port bpf/tests/ebpf_exporter_attach.bpf.c counts


@pytest.mark.kernel
def test_perf_event_and_xdp_sections_attach_and_count(objects: Path):
    with BpfObject.open(objects / "ebpf_exporter_attach.bpf.o") as obj:
        obj.load()
        results = obj.attach_all()
        assert set(results) == {"count_cpu_clock", "count_lo_packets", "count_python_imports",
                                "count_cycles"}
        failed = {name: str(r) for name, r in results.items() if not hasattr(r, "fd")}
        # Hardware cycles need a PMU: probe perf_event_open itself, then expect exactly that.
        try:
            os.close(perf.open_event(perf.PERF_TYPE_HARDWARE, 0, perf.online_cpus()[0],
                                     sample_freq=99))
            has_pmu = True
        except OSError:
            has_pmu = False
        cycles = failed.pop("count_cycles", None)
        if has_pmu:
            assert cycles is None
        else:
            assert "perf_event_open(type=0, config=0, cpu=" in cycles, cycles
        assert not failed, failed
        # One perf event per online CPU, each its own link.
        assert sum(1 for link in obj.links if link.program == "count_cpu_clock") >= 1

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for payload, n in ((b"A", 5), (b"B", 3)):
                for _ in range(n):
                    sock.sendto(payload, ("127.0.0.1", PORT))
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:  # cpu-clock samples need CPU time
            pass
        packets = obj.maps["xdp_lo_packets_total"].read_all()
        by_byte = dict(zip(packets.keys[:, 0].tolist(), packets.u64()[:, 0].tolist()))
        assert by_byte == {ord("A"): 5, ord("B"): 3}
        samples = int(obj.maps["cpu_clock_samples_total"].read_all().u64().sum())
        assert samples >= 50  # 997 Hz for 0.3 s of busy CPU, less under load

        def imports() -> int:
            return int(obj.maps["python_imports_total"].read_all().u64().sum())
        before = imports()
        subprocess.run(["/usr/bin/python3", "-S", "-c", "import json, csv, decimal"],
                       check=True)
        assert imports() - before >= 3  # at least the three modules (and what they import)


def test_perf_event_section_parsing():
    assert perf_event_target("perf_event/type=1,config=0,frequency=99") == {
        "type": 1, "config": 0, "sample_freq": 99}
    assert perf_event_target("perf_event/type=0,config=3,period=100000") == {
        "type": 0, "config": 3, "sample_period": 100000}
    for bad, message in (("perf_event/type=1,config=0", "one of frequency= or period="),
                         ("perf_event/type=1,config=x,frequency=9", 'cannot read "config=x"'),
                         ("perf_event/tpye=1,config=0,frequency=9", 'cannot read "tpye=1"')):
        with pytest.raises(ValueError, match=message):
            perf_event_target(bad)
