"""`make rpm` builds dist/otelbpf-VERSION-RELEASE.ARCH.rpm; its contents, dependencies and
scripts are checked with rpm -qlp, -qpR and -qp --scripts (it cannot be installed here)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def rpm_query(*args: str, package: Path) -> str:
    out = subprocess.run(["rpm", *args, str(package)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def package() -> Path:
    if shutil.which("rpmbuild") is None or os.geteuid() != 0:
        pytest.skip("needs rpmbuild (Debian package rpm) and root (to build the BPF objects)")
    out = subprocess.run(["make", "--no-print-directory", "-s", "rpm", "VERSION=0.0.1"], cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    return REPO / "dist" / f"otelbpf-0.0.1-1.{platform.machine()}.rpm"


def test_contents(package: Path) -> None:
    files = set(rpm_query("-qlp", package=package).split())
    assert {"/usr/bin/otelbpf", "/opt/otelbpf/bin/otelbpf", "/etc/otelbpf/otelbpf.toml",
            "/etc/otelbpf/otelbpf.env", "/usr/lib/systemd/system/otelbpf.service",
            "/usr/lib/sysusers.d/otelbpf.conf", "/usr/lib/otelbpf/bpf/prog_iter.bpf.o",
            "/usr/lib/otelbpf/bpf/map_pressure.bpf.o"} <= files
    shipped = {p.name for p in (REPO / "conf" / "conf.d").glob("*.toml")}
    assert {f"/etc/otelbpf/conf.d/{name}" for name in shipped} <= files
    # The objects of bpf/*.bpf.c, not the test objects of bpf/tests/.
    objects = {f.rsplit("/", 1)[1] for f in files if f.startswith("/usr/lib/otelbpf/bpf/")}
    assert objects == {p.name.replace(".bpf.c", ".bpf.o") for p in (REPO / "bpf").glob("*.bpf.c")}
    # Config files are %config(noreplace): an upgrade never overwrites a local edit.
    flags = rpm_query("-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", package=package)
    config = {line.split()[0] for line in flags.splitlines() if line.split()[1:] == ["cn"]}
    assert config == {f for f in files if f.startswith("/etc/otelbpf/") and f.endswith((".toml", ".env"))}


def test_dependencies(package: Path) -> None:
    requires = rpm_query("-qpR", package=package).splitlines()
    # The venv is built with the system python3, whose minor version the package then needs.
    python = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                            capture_output=True, text=True).stdout.strip()
    assert f"python(abi) = {python}" in requires
    assert "libbpf >= 1.0" in requires
    assert not [r for r in requires if r.startswith(("lib", "python3")) and r != "libbpf >= 1.0"], requires


def test_scripts(package: Path) -> None:
    scripts = rpm_query("-qp", "--scripts", package=package)
    post = scripts.split("postinstall scriptlet")[1].split("preuninstall scriptlet")[0]
    assert "systemd-sysusers /usr/lib/sysusers.d/otelbpf.conf" in post
    # Every systemctl call is guarded: no systemd as PID 1 (containers, chroots) is fine.
    assert scripts.count("[ -d /run/systemd/system ]") == 3
    postun = scripts.split("postuninstall scriptlet")[1]
    # Pins and state go on erase only ($1 == 0), never on upgrade; config files are never removed.
    assert "if [ $1 -eq 0 ]; then\n    rm -rf /sys/fs/bpf/otelbpf /var/lib/otelbpf\nfi" in postun
    assert "/etc/otelbpf" not in scripts
