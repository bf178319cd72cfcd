"""Bad input never takes the agent down: each case runs the real agent with one good program (syscalls,
filtered to a child whose getpid calls we count) beside one bad one. The good one must export exact
counts, the bad one must be reported in one clear log line (file, entry, field, fix) and the agent
must never print a Python traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from agentproc import CONF_D, REPO, AgentProcess, grpc_points, programs_dir, write_agent_config
from reliability_harness import no_traceback, wait_flushes
from workloads import GetpidChild

from otelbpf.kernel.features import probe

pytestmark = [pytest.mark.kernel, pytest.mark.backend]

GOOD_LABELS = 'labels = [{ name = "syscall", size = 4, decoders = [{ name = "uint" }] }]'

# name: (bad.toml text, log event, substrings its error must contain)
CASES = {
    "malformed_toml": (
        '[[counters]\nname = "bad.count"\n',
        "program config rejected",
        ["bad.toml", "line 1, column 11", "invalid TOML", "fix: fix the TOML syntax"]),
    "unknown_key_typo": (
        f'[[counters]]\nname = "bad.count"\nmap = "syscall_counts"\nper_cpu = "sum"\nlables = []\n'
        f'{GOOD_LABELS}\nobject = "syscalls.bpf.o"\n',
        "program config rejected",
        ['bad.toml', 'counters[0] "bad.count"', "lables: unknown key", 'did you mean "labels"?']),
    "missing_object": (
        f'object = "does-not-exist.bpf.o"\n[[counters]]\nname = "bad.count"\n'
        f'map = "syscall_counts"\n{GOOD_LABELS}\n',
        "program not loaded",
        ["bad.toml", "object", "does-not-exist.bpf.o does not exist", "fix: build it with `make -C bpf`"]),
    "object_not_elf": (
        f'object = "OBJECTS/not-elf.bpf.o"\n[[counters]]\nname = "bad.count"\n'
        f'map = "syscall_counts"\n{GOOD_LABELS}\n',
        "program not loaded",
        ["not-elf.bpf.o", "BPF object format invalid", "is not a proper ELF object"]),
    "verifier_rejects": (
        'object = "tests/kernel_bad_only.bpf.o"\n[[counters]]\nname = "bad.count"\nmap = "values"\n'
        'labels = [{ name = "key", size = 4, decoders = [{ name = "uint" }] }]\n',
        "program not loaded",
        ["kernel_bad_only.bpf.o", "program broken", "the verifier rejected the program",
         "R0 invalid mem access 'map_value_or_null'", "verifier log (tail)", "return *v;"]),
    "map_missing": (
        f'object = "syscalls.bpf.o"\n[[counters]]\nname = "bad.count"\nmap = "syscall_count"\n'
        f'{GOOD_LABELS}\n',
        "program not loaded",
        ["bad.toml", 'counters[0] "bad.count"', 'map: syscalls.bpf.o has no map "syscall_count"',
         'did you mean "syscall_counts"?']),
    "label_sizes": (
        'object = "syscalls.bpf.o"\n[[counters]]\nname = "bad.count"\nmap = "syscall_counts"\n'
        'labels = [{ name = "syscall", size = 2, decoders = [{ name = "uint" }] }]\n',
        "program not loaded",
        ["bad.toml", 'counters[0] "bad.count"', "labels: labels cover 2 bytes (syscall 2)",
         '"syscall_counts" has 4-byte keys', "fix: add 2 bytes"]),
    "unknown_decoder": (
        'object = "syscalls.bpf.o"\n[[counters]]\nname = "bad.count"\nmap = "syscall_counts"\n'
        'labels = [{ name = "syscall", size = 4, decoders = [{ name = "uintt" }] }]\n',
        "program config rejected",
        ["bad.toml", '.decoders[0] "uintt"', 'name: unknown decoder "uintt"', 'did you mean "uint"?']),
    "bucket_settings": (
        'object = "biolatency.bpf.o"\n[[histograms]]\nname = "bad.latency"\nunit = "us"\n'
        'map = "bio_latency"\nbucket_type = "exp2"\nbucket_min = 10\nbucket_max = 5\nlabels = [\n'
        '  { name = "device", size = 4 }, { name = "op", size = 1, padding = 3 },\n'
        '  { name = "bucket", size = 8 },\n]\n',
        "program config rejected",
        ["bad.toml", 'histograms[0] "bad.latency"', "bucket_min: bucket_min 10 is above bucket_max 5",
         "fix: make bucket_min <= bucket_max"]),
}



@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_program_is_reported_and_the_good_one_keeps_exact_counts(
        case, tmp_path, bpf_build, grpc_receiver, pin_dir):
    text, event, expected = CASES[case]
    objects = tmp_path / "objects"
    objects.mkdir()
    (objects / "not-elf.bpf.o").write_bytes(b"\x7fELG not an object\n" * 8)
    text = text.replace("OBJECTS", str(objects))
    with GetpidChild() as child:
        programs = programs_dir(tmp_path, child.pid)
        (programs / "bad.toml").write_text(text)
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    programs=["syscalls", "bad"], programs_dir=programs,
                                    pin_dir=pin_dir)
        with AgentProcess(config) as agent:
            line = agent.wait_event(event, program="bad")
            started = agent.wait_event("agent started")
            wait_flushes(agent, ok=True)
            child.getpid(250)
            assert agent.stop() == 0
        no_traceback(agent)
    assert started["programs"] == ["syscalls"] and started["failed"] == ["bad"]
    assert line["level"] == "error"
    for part in expected:
        assert part in line["error"], (part, line["error"])
    assert [p.as_int for p in grpc_points(grpc_receiver.received, "syscalls",
                                          syscall="getpid")][-1] == 250
    loaded = {dp.attributes[0].value.string_value: dp.as_int
              for dp in gauge_points(grpc_receiver.received[-1], "otelbpf.program.loaded")}
    assert loaded == {"syscalls": 1, "bad": 0}


def gauge_points(export, name: str) -> list:
    return [dp for rm in export.request.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics if m.name == name for dp in m.gauge.data_points]


def test_kprobe_and_fentry_on_a_kernel_without_them(tmp_path, bpf_build, grpc_receiver, pin_dir):
    """kernel_attach.bpf.o: the programs this kernel cannot run are reported; the rest run."""
    with GetpidChild() as child:
        programs = programs_dir(tmp_path, child.pid)
        (programs / "attach.toml").write_text(
            f'object = "tests/kernel_attach.bpf.o"\n[parameters]\ntarget_tgid = {child.pid}\n'
            '[[counters]]\nname = "attach.hits"\nmap = "hits"\n'
            'labels = [{ name = "hit", size = 4, decoders = [{ name = "uint" }] }]\n')
        config = write_agent_config(tmp_path, endpoint=grpc_receiver.endpoint, protocol="grpc",
                                    programs=["syscalls", "attach"], programs_dir=programs,
                                    pin_dir=pin_dir)
        with AgentProcess(config) as agent:
            loaded = agent.wait_event("program loaded", program="attach")
            wait_flushes(agent, ok=True)
            child.getpid(99)
            assert agent.stop() == 0
        no_traceback(agent)
    reasons = {e["bpf_program"]: e["reason"] for e in agent.logs
               if e.get("event") in ("program not attached", "program not loaded")
               and e.get("program") == "attach"}
    features = probe().as_dict()
    # Where the kernel has them they must attach; where not, the reason must say so.
    for prog, feature, reason in (("on_kprobe", "kprobe", "kprobes are not supported by this kernel"),
                                  ("on_fentry", "fentry", "fentry/fexit are not supported by this kernel")):
        if features[feature][0]:
            assert prog in loaded["attached"], (prog, reasons)
        else:
            assert reason in reasons[prog], reasons
    assert "sys_enter_otelbpf_missing" in reasons["on_missing"], reasons
    assert {"on_tracepoint", "on_raw_tp", "on_tp_btf"} <= set(loaded["attached"])
    attached = {dp.attributes[1].value.string_value: dp.as_int
                for dp in gauge_points(grpc_receiver.received[-1], "otelbpf.program.attached")
                if dp.attributes[0].value.string_value == "attach"}
    assert attached["on_tracepoint"] == 1 and attached["on_missing"] == 0
    assert all(attached[name] == 0 for name in reasons)
    # The good program beside it is untouched: raw_tp/tp_btf on sys_enter also saw our getpids.
    assert [p.as_int for p in grpc_points(grpc_receiver.received, "syscalls",
                                          syscall="getpid")][-1] == 99


def run_agent_cli(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otelbpf", "--log-format", "json", "run",
                           "--config", str(config)], capture_output=True, text=True, cwd=REPO,
                          timeout=60, check=False)


@pytest.mark.parametrize("endpoint,problem", [
    ("http://127.0.0.1:99999", "is not a valid URL (bad port or brackets)"),
    ("ftp://127.0.0.1:4318", "is not an http:// or https:// URL"),
    ("http://:4318", "has no host"),
])
def test_unparsable_endpoint_exits_2_naming_file_and_field(tmp_path, endpoint, problem):
    config = write_agent_config(tmp_path, endpoint=endpoint, programs=["syscalls"],
                                programs_dir=CONF_D, pin_dir=tmp_path / "pins")
    result = run_agent_cli(config)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"otelbpf: {config}: export: endpoint: ")
    assert problem in message and "fix: use a URL such as http://127.0.0.1:4318" in message


def test_malformed_agent_config_exits_2(tmp_path):
    config = tmp_path / "otelbpf.toml"
    config.write_text("[agent]\ninterval = \n")
    result = run_agent_cli(config)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert re.search(rf"otelbpf: {re.escape(str(config))}: line 2, column \d+: invalid TOML",
                     result.stderr), result.stderr
