"""The command line as a user runs it: --version, and `check` on good and partly broken setups."""

from __future__ import annotations

import subprocess
import sys

import pytest
from agentproc import REPO, write_agent_config

from otelbpf import __version__
from otelbpf.kernel import features

pytestmark = pytest.mark.kernel


def otelbpf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otelbpf", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_version():
    out = otelbpf("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"otelbpf {__version__}"


def test_check_default_config_passes(bpf_build):
    out = otelbpf("check", "--config", str(REPO / "conf" / "otelbpf.toml"))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    for expected in ("ok   program syscalls/count_syscall attached",
                     "ok   metric syscalls (sum,",
                     "ok   map biolatency/bio_latency type=HASH",
                     "ok   stream execsnoop/exec_events"):
        assert any(line.startswith(expected) for line in lines), (expected, out.stdout)
    kernel = features.probe()
    for name in ("kfunc_map_sum_elem_count", "enable_stats", "iter_bpf_map"):
        (line,) = [line for line in lines if f" health {name}" in line]
        assert line.startswith("ok ") == getattr(kernel, name), line
    assert "Traceback" not in out.stderr


def test_check_reports_unsupported_attach_and_fails(tmp_path, bpf_build, bpffs):
    """A kprobe and an fentry program on a kernel without them: named, explained, exit 1."""
    programs = tmp_path / "conf.d"
    programs.mkdir()
    (programs / "attach.toml").write_text(
        f'object = "{bpf_build / "tests" / "kernel_attach.bpf.o"}"\n'
        '[[counters]]\nname = "hits"\nmap = "hits"\n'
        'labels = [ { name = "probe", size = 4, decoders = [ { name = "uint" } ] } ]\n')
    config = write_agent_config(tmp_path, endpoint=None, programs=["attach"], programs_dir=programs)
    kernel = features.probe()
    if kernel.kprobe and kernel.fentry:
        pytest.skip("this kernel attaches kprobes and fentry: nothing unsupported to report")
    out = otelbpf("check", "--config", str(config))
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    kprobe = [line for line in lines if "kprobe" in line and line.startswith("FAIL")]
    assert bool(kprobe) == (not kernel.kprobe), out.stdout
    if kprobe:
        assert "kprobes are not supported by this kernel" in kprobe[0], out.stdout
    fentry = any(line.startswith("FAIL") and "fentry" in line for line in lines)
    assert fentry == (not kernel.fentry), out.stdout
    assert any(line.startswith("ok   program attach/") and line.endswith("attached")
               for line in out.stdout.splitlines()), out.stdout
    assert "Traceback" not in out.stderr


def test_check_bad_agent_config_names_file_and_field(tmp_path):
    config = tmp_path / "otelbpf.toml"
    config.write_text('[agent]\nintervall = "10s"\n')
    out = otelbpf("check", "--config", str(config))
    assert out.returncode == 2
    assert str(config) in out.stdout and "intervall" in out.stdout and "interval" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
