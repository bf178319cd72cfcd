"""SIGHUP reload: added programs load, removed ones detach and lose their pins, changed ones reload,
unchanged ones keep counting; a bad new config is rejected as a whole and the running set stays."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys

import pytest
from agentproc import CONF_D, REPO, AgentProcess, programs_dir, write_agent_config
from reliability_harness import no_traceback, wait_flushes
from workloads import GetpidChild, fsync_writes

from otelbpf.kernel.maps import BpfMap

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


BAD_SYSCALLS = {
    # name: (how the running syscalls.toml is changed, what the rejection must say)
    "map_missing": (lambda t: t.replace('map = "syscall_counts"', 'map = "syscall_count"'),
                    ['map: syscalls.bpf.o has no map "syscall_count"', 'did you mean "syscall_counts"']),
    "object_missing": (lambda t: 'object = "does-not-exist.bpf.o"\n' + t,
                       ["does-not-exist.bpf.o does not exist", "fix: build it with `make -C bpf`"]),
    "verifier_rejects": (
        lambda t: 'object = "tests/kernel_bad_only.bpf.o"\n[[counters]]\nname = "bad.count"\n'
                  'map = "values"\nlabels = [{ name = "key", size = 4, decoders = [{ name = "uint" }] }]\n',
        ["kernel_bad_only.bpf.o", "the verifier rejected the program"]),
    "some_programs_fail_to_load_or_attach": (
        lambda t: 'object = "tests/kernel_attach.bpf.o"\n[parameters]\ntarget_tgid = 1\n'
                  '[[counters]]\nname = "attach.hits"\nmap = "hits"\n'
                  'labels = [{ name = "hit", size = 4, decoders = [{ name = "uint" }] }]\n',
        ["kernel_attach.bpf.o"]),
    "attach_fails": (  # every program loads; one uprobe names a symbol libc does not have
        lambda t: 'object = "tests/kernel_uprobe.bpf.o"\n[[counters]]\nname = "uprobe.hits"\n'
                  'map = "uprobe_hits"\n'
                  'labels = [{ name = "hit", size = 4, decoders = [{ name = "uint" }] }]\n',
        ["on_missing_symbol", "otelbpf_no_such_function"]),
    "bad_parameter": (lambda t: t.replace("[parameters]\n", "[parameters]\nno_such_knob = 3\n"),
                      ["parameters", "unknown parameter(s) no_such_knob",
                       "fix: use the names and types of the program's const volatile globals"]),
}

BAD_AGENT = {
    # name: (how the running otelbpf.toml is changed, what the rejection must say)
    "export_client_key_without_certificate": (
        lambda t, d: t.replace("[export]\n", f'[export]\nclient_key = "{d / "key.pem"}"\n'),
        ["client_key"]),
    "state_dir_unwritable": (
        lambda t, d: re.sub(r'state_dir = ".*"', 'state_dir = "/proc/otelbpf-state"', t),
        ["state_dir", "/proc/otelbpf-state"]),
    "pin_dir_is_bpffs_root": (
        lambda t, d: re.sub(r'pin_dir = ".*"', 'pin_dir = "/sys/fs/bpf"', t),
        ["pin_dir", "root of a BPF filesystem"]),
}


def test_bad_reloads_keep_the_running_version_counting(tmp_path, bpf_build, victoria_metrics,
                                                       run_id, pin_dir):
    """SIGHUP with each bad case while calls are being made: the running syscalls keeps counting
    (exact totals, no reset), keeps its pinned map and the agent lives on."""
    vm = victoria_metrics
    getpid = f'syscalls_total{{syscall="getpid",test_run="{run_id}"}}'
    (tmp_path / "key.pem").write_text("not a key\n")
    with GetpidChild() as child:
        programs = programs_dir(tmp_path, child.pid)
        config = write_agent_config(tmp_path, endpoint=vm.otlp_http_endpoint, programs=["syscalls"],
                                    programs_dir=programs, pin_dir=pin_dir)
        good_program = (programs / "syscalls.toml").read_text()
        good_agent = config.read_text()
        pin = pin_dir / "syscalls" / "syscall_counts"
        with AgentProcess(config, env={"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"}) as agent:
            wait_flushes(agent, ok=True)
            with BpfMap.from_pin(pin) as m:
                map_id = m.id
            total = 0
            cases = [(name, programs / "syscalls.toml", lambda t, c=change: c(t), expected,
                      "reload rejected for program: keeping the running version", good_program)
                     for name, (change, expected) in BAD_SYSCALLS.items()]
            cases += [(name, config, lambda t, c=change: c(t, tmp_path), expected,
                       "reload rejected: config invalid, keeping the running set", good_agent)
                      for name, (change, expected) in BAD_AGENT.items()]
            for name, path, change, expected, event, good in cases:
                path.write_text(change(good))
                seen = agent.count_events(event)
                agent.signal(signal.SIGHUP)
                child.getpid(500)  # while the reload is being tried
                agent.wait_log(lambda e: e.get("event") == event
                               and agent.count_events(event) > seen)
                line = [e for e in agent.logs if e.get("event") == event][seen]
                for part in expected:
                    assert part in line["error"], (name, part, line)
                child.getpid(7)
                total += 507
                wait_flushes(agent, ok=True)
                assert vm.value(getpid) == total, name
                assert agent.proc.poll() is None, name
                with BpfMap.from_pin(pin) as m:
                    assert m.id == map_id, name  # the running version's pin is untouched
                assert sorted(p.name for p in (pin_dir / "syscalls").iterdir()) == ["syscall_counts"]
                path.write_text(good)
            assert agent.count_events("config reloaded") == len(BAD_SYSCALLS)
            assert agent.count_events("program changed, reloading") == len(BAD_SYSCALLS)
            assert agent.stop() == 0
        no_traceback(agent)
    assert vm.value(getpid) == total
    assert vm.value(f"resets({getpid}[1h])") == 0


def test_layout_change_keeps_the_old_pin_until_the_new_version_is_live(tmp_path, bpf_build, pin_dir):
    """A reload that must start a map fresh (its key now read as two labels) creates the new map
    unpinned: when the new version is then rejected (verifier), the running version keeps its
    pinned map; when it goes live, the new map takes the pin."""
    programs = tmp_path / "conf.d"
    programs.mkdir()
    one_label = 'labels = [{ name = "key", size = 4, decoders = [{ name = "uint" }] }]\n'
    two_labels = ('labels = [{ name = "lo", size = 2, decoders = [{ name = "uint" }] },\n'
                  '          { name = "hi", size = 2, decoders = [{ name = "uint" }] }]\n')
    bad = programs / "bad.toml"

    def program(obj: str, labels: str) -> None:
        bad.write_text(f'object = "tests/{obj}"\n[[counters]]\nname = "values.count"\n'
                       f'map = "values"\n{labels}')

    program("kernel_bad.bpf.o", one_label)  # `fine` attaches, `broken` is rejected
    config = write_agent_config(tmp_path, endpoint=None, programs=["bad"], programs_dir=programs,
                                pin_dir=pin_dir)
    pin = pin_dir / "bad" / "values"
    with AgentProcess(config) as agent:
        agent.wait_event("agent started")
        with BpfMap.from_pin(pin) as m:
            first = m.id
        program("kernel_bad_only.bpf.o", two_labels)  # new layout, and nothing of it loads
        line = reload(agent, "reload rejected for program: keeping the running version")
        assert "the verifier rejected the program" in line["error"]
        with BpfMap.from_pin(pin) as m:
            assert m.id == first
        assert agent.count_events("series start") == 1  # only the first start

        program("kernel_bad.bpf.o", two_labels)  # new layout, loads and attaches
        reload(agent)
        line = agent.wait_event("series start", program="bad", reason="replaced: metric layout "
                                "changed (labels or buckets)")
        with BpfMap.from_pin(pin) as m:
            assert m.id != first
        assert agent.stop() == 0
    no_traceback(agent)


STORM = """
import signal, sys, time
from otelbpf.agent.runtime import Wakeup
wake = Wakeup()
signal.signal(signal.SIGALRM, lambda *_: wake.set())
signal.setitimer(signal.ITIMER_REAL, 0.0003, 0.0003)
end = time.monotonic() + 2
while time.monotonic() < end:
    wake.wait(0.001)
signal.setitimer(signal.ITIMER_REAL, 0)
print("alive")
"""


def test_signals_landing_inside_the_loop_wait_never_wedge_it():
    """The agent's signal handlers wake the flush loop through `Wakeup`. A signal every 0.3 ms for
    2 s lands at every bytecode of wait(); with a threading.Event in its place this process
    deadlocks or dies (the SIGHUP deadlock once seen in test_reload_add_change_remove_and_reject)."""
    done = subprocess.run([sys.executable, "-c", STORM], capture_output=True, text=True,
                          cwd=REPO, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "alive", done.stderr[-2000:]
