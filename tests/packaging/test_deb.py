"""`make deb` builds a package that installs with apt, runs, keeps a locally edited conffile
across an upgrade, and purges its pins and state. Installs on this machine (and removes again)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300",
       "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def sh(*cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600, **kw)


def installed_version() -> str | None:
    out = sh("dpkg-query", "-W", "-f=${Status} ${Version}", "otelbpf")
    return out.stdout.split()[-1] if out.stdout.startswith("install ok installed") else None


@pytest.fixture
def deb(tmp_path: Path) -> Path:
    if os.geteuid() != 0 or shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None:
        pytest.skip("needs root on a Debian system")
    if installed_version() is not None:
        pytest.skip("an otelbpf package is installed on this machine already: not touching it")
    out = sh("make", "--no-print-directory", "-s", "deb", "VERSION=0.0.1", cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return REPO / "dist" / f"otelbpf_0.0.1-1_{sh('dpkg', '--print-architecture').stdout.strip()}.deb"


def rebuilt_with_version(deb: Path, version: str, tmp_path: Path) -> Path:
    """The same package with a higher version: unpacked and packed again with dpkg-deb."""
    tree = tmp_path / "tree"
    assert sh("dpkg-deb", "-R", str(deb), str(tree)).returncode == 0
    control = tree / "DEBIAN" / "control"
    control.write_text(control.read_text().replace("Version: 0.0.1-1", f"Version: {version}"))
    out = tmp_path / f"otelbpf_{version}.deb"
    assert sh("dpkg-deb", "--root-owner-group", "-Zxz", "-z1", "--build", str(tree), str(out)).returncode == 0
    return out


def test_install_check_upgrade_purge(deb: Path, tmp_path: Path) -> None:
    config = Path("/etc/otelbpf/otelbpf.toml")
    try:
        out = sh(*APT, "install", str(deb))
        assert out.returncode == 0, out.stdout[-1500:] + out.stderr[-1500:]
        assert installed_version() == "0.0.1-1"
        assert os.readlink("/usr/bin/otelbpf") == "/opt/otelbpf/bin/otelbpf"
        assert sh("getent", "passwd", "otelbpf").returncode == 0  # sysusers ran

        check = sh("/usr/bin/otelbpf", "check", cwd="/")
        assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
        assert "ok   config /etc/otelbpf/otelbpf.toml" in check.stdout
        assert "ok   program syscalls (/usr/lib/otelbpf/bpf/syscalls.bpf.o)\n" in check.stdout
        assert "ok   capabilities after start: CAP_BPF, CAP_PERFMON\n" in check.stdout

        # The installed agent runs once from /usr/bin: pins maps and writes state to purge later.
        run = sh("/usr/bin/otelbpf", "run", "--once", cwd="/")
        assert run.returncode == 0, run.stderr[-2000:]
        assert Path("/sys/fs/bpf/otelbpf").is_dir() and any(Path("/sys/fs/bpf/otelbpf").iterdir())
        assert Path("/var/lib/otelbpf").is_dir()

        edited = config.read_text() + "\n# edited here, must survive upgrades\n"
        config.write_text(edited)
        out = sh(*APT, "install", str(rebuilt_with_version(deb, "0.0.2-1", tmp_path)))
        assert out.returncode == 0, out.stdout[-1500:] + out.stderr[-1500:]
        assert installed_version() == "0.0.2-1"
        assert config.read_text() == edited

        out = sh(*APT, "purge", "otelbpf")
        assert out.returncode == 0, out.stdout[-1500:] + out.stderr[-1500:]
        assert installed_version() is None
        for gone in ("/sys/fs/bpf/otelbpf", "/var/lib/otelbpf", "/etc/otelbpf", "/opt/otelbpf",
                     "/usr/bin/otelbpf"):
            assert not os.path.lexists(gone), gone
    finally:
        if installed_version() is not None:
            sh(*APT, "purge", "otelbpf")
