"""The agent runs on Python 3.9 (RHEL 9's python3): vermin finds no newer construct or API."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MINIMUM = "3.9"


def test_pyproject_states_the_minimum() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^requires-python = ">=3\.9"', text, re.M)


def test_vermin_finds_nothing_newer_than_3_9() -> None:
    vermin = shutil.which("vermin", path=str(Path(sys.executable).parent)) or shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin is not installed (pip install -e '.[test]')")
    out = subprocess.run([vermin, f"-t={MINIMUM}-", "--no-tips", "--violations", "otelbpf"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
