"""SIGHUP reload: added programs load, removed ones detach and lose their pins, changed ones reload,
unchanged ones keep counting; a bad new config is rejected as a whole and the running set stays."""

from __future__ import annotations

import shutil
import signal

import pytest
from agentproc import CONF_D, AgentProcess, programs_dir, write_agent_config
from reliability_harness import no_traceback, wait_flushes
from workloads import GetpidChild, fsync_writes

pytestmark = [pytest.mark.kernel, pytest.mark.backend, pytest.mark.slow]


def reload(agent: AgentProcess, event: str = "config reloaded") -> dict:
    seen = agent.count_events(event)
    agent.signal(signal.SIGHUP)
    return agent.wait_log(lambda e: e.get("event") == event and agent.count_events(event) > seen)


def test_reload_add_change_remove_and_reject(tmp_path, bpf_build, victoria_metrics, run_id, pin_dir):
    vm = victoria_metrics
    sel = f'test_run="{run_id}"'
    getpid = f'syscalls_total{{syscall="getpid",{sel}}}'
    with GetpidChild() as child:
        programs = programs_dir(tmp_path, child.pid)
        write = lambda names: write_agent_config(
            tmp_path, endpoint=vm.otlp_http_endpoint, programs=names, programs_dir=programs,
            pin_dir=pin_dir)
        config = write(["syscalls"])
        with AgentProcess(config, env={"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"}) as agent:
            wait_flushes(agent, ok=True)
            child.getpid(100)

            # Add biolatency: it loads, syscalls keeps running untouched.
            shutil.copy(CONF_D / "biolatency.toml", programs / "biolatency.toml")
            write(["syscalls", "biolatency"])
            done = reload(agent)
            assert done["programs"] == ["biolatency", "syscalls"] and done["failed"] == []
            assert agent.count_events("program changed, reloading") == 0
            child.getpid(20)
            fsync_writes(8)
            wait_flushes(agent, ok=True)
            assert vm.value(getpid) == 120
            assert vm.query(f"bio_latency_microseconds_count{{{sel}}}") != []
            assert (pin_dir / "biolatency" / "bio_latency").exists()

            # Change syscalls (a new help text): it reloads and continues from its pinned map.
            text = (programs / "syscalls.toml").read_text()
            (programs / "syscalls.toml").write_text(
                text.replace('help = "System calls entered, by system call"',
                             'help = "System calls entered (reloaded)"'))
            reload(agent)
            assert agent.count_events("program changed, reloading") == 1
            child.getpid(3)
            wait_flushes(agent, ok=True)
            assert vm.value(getpid) == 123

            # Remove biolatency: detached and its pins are gone.
            write(["syscalls"])
            done = reload(agent)
            assert done["programs"] == ["syscalls"]
            agent.wait_event("program removed", program="biolatency")
            assert not (pin_dir / "biolatency").exists()
            assert (pin_dir / "syscalls" / "syscall_counts").exists()

            # Bad configs are rejected whole; the running set and its counts continue.
            good = config.read_text()
            config.write_text(good + "\n[export\n")  # malformed TOML
            line = reload(agent, "reload rejected: config invalid, keeping the running set")
            assert str(config) in line["error"] and "invalid TOML" in line["error"]
            config.write_text(good.replace("[agent]", "[agent]\nintervall = \"5s\""))  # typo
            line = reload(agent, "reload rejected: config invalid, keeping the running set")
            assert "intervall" in line["error"] and "interval" in line["error"].split("unknown key")[1]
            config.write_text(good.replace('programs = ["syscalls"]',
                                           'programs = ["syscalls", "biolatency"]'))
            (programs / "biolatency.toml").write_text("[[histograms]]\nname = \n")
            line = reload(agent, "reload rejected: program config invalid, keeping the running set")
            assert line["program"] == "biolatency" and "biolatency.toml" in line["error"]
            assert agent.count_events("config reloaded") == 3
            child.getpid(4)
            assert agent.stop() == 0
        no_traceback(agent)
    assert vm.value(getpid) == 127
    assert vm.value(f"resets(syscalls_total{{syscall=\"getpid\",{sel}}}[1h])") == 0
