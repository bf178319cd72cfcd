"""ebpf_exporter ``tracing.spans`` → OTLP traces: our program writes one span record per observed
value into a ring buffer; the agent builds spans with the OpenTelemetry SDK and sends them with its
OTLP/gRPC span exporter to an in-process receiver (tests/backends.py GrpcTraceReceiver)."""

from __future__ import annotations

import shutil
import time

import pytest
from agentproc import AgentProcess, write_agent_config
from backends import GrpcTraceReceiver
from test_ebpf_exporter_e2e import HERE, VALUES, named_child
from workloads import SYS_GETPGID

pytestmark = pytest.mark.kernel


def as_id(value: int, size: int) -> bytes:
    """The id bytes of a little-endian integer field, as the hex decoder reads them."""
    return value.to_bytes(size, "little")


@pytest.mark.parametrize("source", ["yaml", "converted"])
def test_spans_arrive_with_the_record_ids_and_times(source, tmp_path, bpf_build, pin_dir):
    """The YAML, and the native TOML `otelbpf convert` writes from it, send the same spans."""
    from otelbpf.cli import main as otelbpf_main

    directory = tmp_path / "ebpf_exporter"
    directory.mkdir()
    shutil.copy(HERE / "ebpfxspans.yaml", directory / "ebpfxspans.yaml")
    shutil.copy(bpf_build / "tests" / "ebpf_exporter_features.bpf.o",
                directory / "ebpfxspans.bpf.o")
    natives = tmp_path / "conf.d"
    natives.mkdir()
    if source == "converted":
        assert otelbpf_main(["convert", str(directory / "ebpfxspans.yaml"), "-o",
                             str(natives / "ebpfxspans.toml")]) == 0
        programs, extra, program = ["ebpfxspans"], "", "ebpfxspans"
    else:
        programs, extra = [], f'[ebpf_exporter]\ndir = "{directory}"\n'
        program = "ebpf_exporter-ebpfxspans"
    with GrpcTraceReceiver() as receiver:
        config = write_agent_config(
            tmp_path, endpoint=receiver.endpoint, protocol="grpc", programs=programs,
            programs_dir=natives, pin_dir=pin_dir, extra=extra)
        with named_child(tmp_path) as child:
            with AgentProcess(config) as agent:
                agent.wait_event("agent started", programs=[program])
                before = time.time_ns()
                for v in VALUES:
                    child.call(SYS_GETPGID, v)
                after = time.time_ns()
                rc = agent.stop()
                assert rc == 0, "".join(agent.raw_stderr[-15:])  # shutdown flushes the batch span processor
        spans = receiver.spans()

    assert len(spans) == len(VALUES)
    by_value = {}
    for resource, span in spans:
        assert resource["service.name"] == "ebpfx-spans"
        attributes = {a.key: a.value.string_value for a in span.attributes}
        assert attributes["ebpf_exporter.config"] == "ebpfxspans"
        by_value[int(attributes["value"])] = span
    assert sorted(by_value) == sorted(VALUES)
    for v, span in by_value.items():
        assert span.name == "getpgid"
        assert span.trace_id == as_id(v + 1, 8) + as_id(0x0123456789abcdef, 8)
        assert span.span_id == as_id(v + 0x1000, 8)
        assert span.parent_span_id == (as_id(v + 0x2000, 8) if v & 1 else b"")
        assert span.end_time_unix_nano - span.start_time_unix_nano == v * 1000
        # The kernel's monotonic start time, turned into wall-clock time (a little slack for
        # the clock conversion).
        assert before - 50_000_000 <= span.start_time_unix_nano <= after + 50_000_000
