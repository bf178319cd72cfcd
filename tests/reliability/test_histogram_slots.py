"""Histogram slots the config does not declare: counted, warned about once, never silently lost.

kernel_maps.bpf.o counts getpgid(key) under `key` in `hash_counts`; read as a linear histogram
with bucket_max 5, keys 0..5 are buckets, key 6 is the sum slot and keys 7.. are outside the
layout, so exactly how many events land outside is known.
"""

from __future__ import annotations

import pytest
from agentproc import AgentProcess, write_agent_config
from reliability_harness import no_traceback, wait_flushes
from workloads import SYS_GETPGID, SyscallChild

pytestmark = [pytest.mark.kernel, pytest.mark.backend]

KEYS = 20


def points(export, name: str) -> list:
    return [dp for rm in export.request.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics if m.name == name for dp in getattr(m, m.WhichOneof("data")).data_points]


def test_events_outside_the_slots_are_counted_in_out_of_range(tmp_path, bpf_build, grpc_receiver, pin_dir):
    with SyscallChild() as child:
        programs = tmp_path / "conf.d"
        programs.mkdir()
        (programs / "slots.toml").write_text(
            f'object = "tests/kernel_maps.bpf.o"\n[parameters]\ntarget_tgid = {child.pid}\n'
            '[[histograms]]\nname = "slots.hist"\nmap = "hash_counts"\nbucket_type = "linear"\n'
            'bucket_min = 0\nbucket_max = 5\nlabels = [{ name = "bucket", size = 4 }]\n')
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    programs=["slots"], programs_dir=programs, pin_dir=pin_dir)
        with AgentProcess(config) as agent:
            wait_flushes(agent, ok=True)
            for key in range(KEYS):
                child.call(SYS_GETPGID, key, key + 1)
            wait_flushes(agent, 2, ok=True)
            for key in range(KEYS):
                child.call(SYS_GETPGID, key, 1)
            wait_flushes(agent, 2, ok=True)
            assert agent.stop() == 0
        no_traceback(agent)

    outside = [e for e in agent.logs if "otelbpf.histogram.out_of_range" in str(e.get("event"))]
    assert len(outside) == 1, outside  # one warning, not one per interval
    assert "slots.hist" in outside[0]["event"] and "slots 7, 8" in outside[0]["event"]
    (counted,) = points(grpc_receiver.received[-1], "otelbpf.histogram.out_of_range")
    attrs = {a.key: a.value.string_value for a in counted.attributes}
    assert attrs == {"otelbpf.program": "slots", "otelbpf.metric": "slots.hist"}
    assert counted.as_int == sum(key + 2 for key in range(7, KEYS))
    (hist,) = points(grpc_receiver.received[-1], "slots.hist")
    assert hist.count == sum(key + 2 for key in range(6))  # the buckets still count exactly
