"""Limits: a map with more series than [limits] cardinality exports limit - 1 series of its own plus
one otel.metric.overflow=true series holding the rest (nothing is lost); a tiny label cache still
decodes every key right; the agent exports its own footprint as process.* metrics."""

from __future__ import annotations

import pytest
from agentproc import AgentProcess, write_agent_config
from reliability_harness import no_traceback, wait_flushes
from workloads import SYS_GETPGID, SyscallChild

pytestmark = [pytest.mark.kernel, pytest.mark.backend]

KEYS = 40  # kernel_maps.bpf.o counts getpgid(key) for key < 64 under `key`
LIMIT = 10


def attrs(dp) -> dict:
    out = {}
    for a in dp.attributes:
        v = a.value
        out[a.key] = v.bool_value if v.WhichOneof("value") == "bool_value" else v.string_value
    return out


def metric_points(export, name: str) -> list:
    out = []
    for rm in export.request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    out += list(getattr(m, m.WhichOneof("data")).data_points)
    return out


def test_cardinality_limit_folds_extra_series_into_overflow(tmp_path, bpf_build, grpc_receiver,
                                                            pin_dir):
    with SyscallChild() as child:
        programs = tmp_path / "conf.d"
        programs.mkdir()
        (programs / "maps.toml").write_text(
            f'object = "tests/kernel_maps.bpf.o"\n[parameters]\ntarget_tgid = {child.pid}\n'
            '[[counters]]\nname = "maps.hits"\nmap = "hash_counts"\n'
            'labels = [{ name = "key", size = 4, decoders = [{ name = "uint" }] }]\n'
            # Unknown cgroup ids (the keys are small integers): decoded to their number, no error.
            '[[counters]]\nname = "maps.cgroups"\nmap = "array_counts"\n'
            'labels = [{ name = "cgroup", size = 4, decoders = [{ name = "uint" }, { name = "cgroup" }] }]\n')
        config = write_agent_config(
            tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc", programs=["maps"],
            programs_dir=programs, pin_dir=pin_dir,
            extra=f"[limits]\ncardinality = {LIMIT}\nlabel_cache = 4\n")
        with AgentProcess(config) as agent:
            wait_flushes(agent, ok=True)
            for key in range(KEYS):
                child.call(SYS_GETPGID, key, key + 1)
            wait_flushes(agent, 2, ok=True)
            first = metric_points(grpc_receiver.received[-1], "maps.hits")
            warned = agent.wait_event("cardinality limit reached: further series are merged into "
                                      "the otel.metric.overflow=true series", metric="maps.hits")
            for key in range(KEYS):
                child.call(SYS_GETPGID, key, 1)
            assert agent.stop() == 0
        no_traceback(agent)

    total = sum(k + 1 for k in range(KEYS))
    assert len(first) == LIMIT
    assert sum(dp.as_int for dp in first) == total
    overflow = [dp for dp in first if attrs(dp) == {"otel.metric.overflow": True}]
    own = [dp for dp in first if dp not in overflow]
    assert len(overflow) == 1 and len(own) == LIMIT - 1
    # Each admitted series is exactly its key's count (the 4-entry label cache evicts constantly).
    for dp in own:
        assert dp.as_int == int(attrs(dp)["key"]) + 1
    assert warned["metric"] == "maps.hits" and warned["limit"] == LIMIT

    last = metric_points(grpc_receiver.received[-1], "maps.hits")
    # The admitted series stay the same (no flapping between identities) and counting goes on.
    assert {attrs(dp).get("key") for dp in last} == {attrs(dp).get("key") for dp in first}
    assert sum(dp.as_int for dp in last) == total + KEYS
    # The array map has 64 keys; its 64 series are limited the same way, the decoder never fails.
    cgroups = metric_points(grpc_receiver.received[-1], "maps.cgroups")
    assert len(cgroups) == LIMIT and sum(dp.as_int for dp in cgroups) == total + KEYS
    assert not [e for e in agent.logs if e.get("event") == "cannot read metric"]

    # The agent's own footprint is exported with the data.
    rss = metric_points(grpc_receiver.received[-1], "process.memory.usage")
    cpu = metric_points(grpc_receiver.received[-1], "process.cpu.time")
    share = metric_points(grpc_receiver.received[-1], "process.cpu.utilization")
    assert rss and 10 * 2**20 < rss[0].as_int < 1 << 30
    assert {attrs(dp)["cpu.mode"] for dp in cpu} == {"user", "system"} and sum(dp.as_double for dp in cpu) > 0
    assert {attrs(dp)["cpu.mode"] for dp in share} == {"user", "system"}
    assert all(0 <= dp.as_double <= 1 for dp in share)  # of all the CPUs the agent may use
    threads = metric_points(grpc_receiver.received[-1], "process.thread.count")
    fds = metric_points(grpc_receiver.received[-1], "process.open_file_descriptor.count")
    assert threads and threads[0].as_int >= 2 and fds and fds[0].as_int >= 3
