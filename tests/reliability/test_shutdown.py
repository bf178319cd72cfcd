"""SIGTERM is bounded: detach, drain, then one last export that gets at most the export timeout,
even when the collector accepts connections and never answers."""

from __future__ import annotations

import socket
import time

import pytest
from agentproc import AgentProcess, programs_dir, write_agent_config
from reliability_harness import no_traceback
from workloads import GetpidChild

pytestmark = [pytest.mark.kernel, pytest.mark.backend]

TIMEOUT = 2.0  # write_agent_config's [export] timeout


def test_sigterm_with_a_silent_collector_exits_within_the_export_timeout(tmp_path, bpf_build,
                                                                         pin_dir):
    with socket.socket() as blackhole, GetpidChild() as child:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(64)  # connections complete in the backlog; nothing is ever read
        endpoint = f"http://127.0.0.1:{blackhole.getsockname()[1]}"
        config = write_agent_config(tmp_path, endpoint=endpoint, programs=["syscalls"],
                                    programs_dir=programs_dir(tmp_path, child.pid),
                                    pin_dir=pin_dir, interval="30s")
        with AgentProcess(config) as agent:
            agent.wait_event("agent started")
            child.getpid(10)
            sent = time.monotonic()
            assert agent.stop(timeout=30) == 0
            took = time.monotonic() - sent
        no_traceback(agent)
    final = [e for e in agent.logs if e.get("event") == "flushed" and e.get("final")]
    assert final and final[0]["ok"] is False  # the last export was tried, and given up on time
    assert agent.count_events("agent stopped") == 1
    # One export timeout plus process teardown; far below the 30 s interval the old deadline used.
    assert took < TIMEOUT + 4, took


def test_sigterm_during_an_export_that_keeps_failing_stays_within_the_bound(tmp_path, bpf_build,
                                                                           pin_dir):
    """SIGTERM while an export retries against a silent collector: the export in flight runs to
    its deadline (the next flush), then the last one gets one timeout. The documented bound is
    max(interval, timeout) + 5 s (stream drain join) + timeout. The interval leaves room for a
    retry after the first attempt's full timeout, so one is always in flight: with 3 s, a host
    that took half a second to start the export saw the export give up without retrying."""
    interval = 5.0
    with socket.socket() as blackhole, GetpidChild() as child:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(64)
        endpoint = f"http://127.0.0.1:{blackhole.getsockname()[1]}"
        config = write_agent_config(tmp_path, endpoint=endpoint, programs=["syscalls"],
                                    programs_dir=programs_dir(tmp_path, child.pid),
                                    pin_dir=pin_dir, interval=f"{interval}s")
        with AgentProcess(config) as agent:
            agent.wait_event("agent started")
            child.getpid(10)
            agent.wait_event("export failed, retrying", timeout=interval + TIMEOUT + 5)
            sent = time.monotonic()
            assert agent.stop(timeout=60) == 0
            took = time.monotonic() - sent
        no_traceback(agent)
    assert [e for e in agent.logs if e.get("event") == "flushed" and e.get("final")]
    assert took < max(interval, TIMEOUT) + 5 + TIMEOUT, took
