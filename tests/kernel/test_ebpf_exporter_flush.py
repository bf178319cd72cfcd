"""ebpf_exporter's perf_event_array ``flush_interval`` on the real kernel: records from the perf
buffer count per label set until the interval has passed; the collection after it exports what
was counted and the series restart from zero with that collection's time as their start."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from workloads import SYS_GETPGID, SyscallChild

from otelbpf.config.ebpf_exporter import load_ebpf_exporter_config
from otelbpf.config.validate import validate_against_object
from otelbpf.kernel.object import BpfObject
from otelbpf.streams.drain import StreamDrainer
from otelbpf.streams.source import open_stream

pytestmark = pytest.mark.kernel

# The program counts getpgid(v) of the command "ebpfxchild" as one record {v % 3}.
YAML = """
metrics:
  counters:
    - name: ebpfx_events_total
      help: perf event records by value modulo 3
      perf_event_array: true
      flush_interval: 1s
      labels:
        - name: mod
          size: 4
          decoders:
            - name: uint
            - name: static_map
              static_map: {0: zero, 1: one}
"""


def test_counts_restart_every_flush_interval(tmp_path: Path, objects: Path):
    (tmp_path / "flush.yaml").write_text(YAML)
    shutil.copy(objects / "ebpf_exporter_features.bpf.o", tmp_path / "flush.bpf.o")
    config = load_ebpf_exporter_config(tmp_path / "flush.yaml")
    (stream,) = config.streams
    assert stream.flush_interval == 1.0
    obj = BpfObject.open(config.object, parameters=config.parameters)
    drainer = StreamDrainer(poll_timeout=0.05)
    link = tmp_path / "ebpfxchild"
    os.symlink(os.path.realpath(sys.executable), link)
    try:
        assert validate_against_object(config, obj.maps) == []
        obj.load()
        source = open_stream(stream, obj.maps, program=config.name)
        drainer.add(source)
        drainer.start()
        for prog in obj.programs:
            obj.attach(prog)
        started = time.time_ns()

        def collect(expected_records: int) -> dict:
            deadline = time.monotonic() + 10
            while source.aggregator.events < expected_records and time.monotonic() < deadline:
                time.sleep(0.02)
            now = time.time_ns()
            (metric,) = [m for m in source.collect(now) if m.name == "ebpf_exporter_ebpfx_events_total"]
            return now, {dict(p.attributes)["mod"]: (p.start_time_ns, p.value) for p in metric.points}

        with SyscallChild(str(link)) as child:
            for v in (0, 3, 6, 1):
                child.call(SYS_GETPGID, v)
            now, first = collect(4)
            assert now - started < 1e9, "the machine was too slow to collect before the flush"
            assert {k: v for k, (_, v) in first.items()} == {"zero": 3, "one": 1}
            start = first["zero"][0]
            time.sleep(max(0.0, (started + 1.1e9 - time.time_ns()) / 1e9))
            child.call(SYS_GETPGID, 2)
            flushed_at, due = collect(5)  # exports everything counted, then restarts
            # unknown:2 is new since the first collection, so it starts there
            assert due == {"zero": (start, 3), "one": (start, 1), "unknown:2": (now, 1)}
            child.call(SYS_GETPGID, 9)
            _, after = collect(6)
            # The old series are gone; the new one starts at the flushing collection, so a
            # backend sees a counter reset rather than a drop.
            assert after == {"zero": (flushed_at, 1)}
    finally:
        drainer.close()
        obj.close()
