"""The agent refuses configs and BPF objects that a user other than root could change."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from agentproc import REPO, AgentProcess, programs_dir, write_agent_config

from otelbpf.config.trust import untrusted_reason
from otelbpf.errors import ConfigError

NOBODY = 65534


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give files to other users")


def run_agent_once(config: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SUDO_UID"}
    return subprocess.run([sys.executable, "-m", "otelbpf", "run", "--config", str(config)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_world_writable_agent_config_is_refused(tmp_path: Path) -> None:
    config = write_agent_config(tmp_path, endpoint=None, programs=[], programs_dir=tmp_path)
    config.chmod(0o666)
    out = run_agent_once(config)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"otelbpf: {config}: agent config is writable by others (mode 0666): a user other than root "
        f"could change what the agent loads into the kernel (fix: sudo chmod go-w {config})"]


@pytest.mark.kernel
def test_untrusted_program_config_and_object_are_not_loaded(tmp_path: Path, bpf_build: Path) -> None:
    """A group-writable program config and an object owned by another user: both programs are
    refused with the file and the fix, the agent runs on."""
    programs = programs_dir(tmp_path, os.getpid())
    shutil.copy(programs / "syscalls.toml", programs / "other.toml")
    objects = tmp_path / "objects"
    objects.mkdir()
    shutil.copy(bpf_build / "syscalls.bpf.o", objects / "syscalls.bpf.o")
    shutil.copy(bpf_build / "syscalls.bpf.o", objects / "other.bpf.o")
    (programs / "syscalls.toml").chmod(0o664)
    os.chown(objects / "other.bpf.o", NOBODY, NOBODY)
    config = write_agent_config(tmp_path, endpoint=None, programs=["syscalls", "other"],
                                programs_dir=programs, objects_dir=objects)
    env = {k: v for k, v in os.environ.items() if k != "SUDO_UID"}
    with AgentProcess(config, env=env, log_level="info") as agent:
        started = agent.wait_event("agent started")
        assert agent.stop() == 0
    assert started["failed"] == ["other", "syscalls"]
    rejected = {e["program"]: e["error"] for e in agent.logs if e.get("event") == "program config rejected"}
    assert rejected == {
        "syscalls": f"{programs / 'syscalls.toml'}: program config is writable by group 0 (mode 0664): "
                    "a user other than root could change what the agent loads into the kernel "
                    f"(fix: sudo chmod go-w {programs / 'syscalls.toml'})",
        "other": f"{objects / 'other.bpf.o'}: BPF object is owned by uid {NOBODY}: a user other than "
                 "root could change what the agent loads into the kernel "
                 f"(fix: sudo chown root:root {objects / 'other.bpf.o'})",
    }


def test_a_writable_directory_above_the_file_counts(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "otelbpf.toml").write_text("")
    shared.chmod(0o777)  # anyone may replace the file
    assert untrusted_reason(shared / "otelbpf.toml", frozenset({0})) == (
        shared, "is writable by others (mode 0777)")
    shared.chmod(0o1777)  # sticky, like /tmp: only the owner may replace it
    assert untrusted_reason(shared / "otelbpf.toml", frozenset({0})) is None


def test_files_of_the_sudo_user_are_trusted(tmp_path: Path, monkeypatch) -> None:
    """`sudo make run` in a developer's checkout: that user can become root anyway."""
    from otelbpf.config.agent import load_agent_config

    config = tmp_path / "otelbpf.toml"
    config.write_text("")
    os.chown(config, NOBODY, NOBODY)
    monkeypatch.delenv("SUDO_UID", raising=False)
    with pytest.raises(ConfigError, match=f"owned by uid {NOBODY}"):
        load_agent_config(config)
    monkeypatch.setenv("SUDO_UID", str(NOBODY))
    assert load_agent_config(config).path == config


def test_a_read_only_mount_makes_modes_moot(tmp_path: Path) -> None:
    """Like a Kubernetes ConfigMap volume: world-writable directories, mounted read-only."""
    mnt = tmp_path / "configmap"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "data").mkdir(mode=0o777)
        (mnt / "data").chmod(0o777)
        (mnt / "data" / "syscalls.toml").write_text("")
        (mnt / "data" / "syscalls.toml").chmod(0o666)
        assert untrusted_reason(mnt / "data" / "syscalls.toml", frozenset({0})) is not None
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        assert untrusted_reason(mnt / "data" / "syscalls.toml", frozenset({0})) is None
        # Owners still count: a read-only view of another user's files is no safer.
        assert untrusted_reason(mnt / "data" / "syscalls.toml", frozenset({NOBODY})) == (
            mnt / "data" / "syscalls.toml", "is owned by uid 0")
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
