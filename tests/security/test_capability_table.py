"""docs/security.md's capability table is a measurement: each row's probe works with exactly the
listed capabilities and fails without each of them (tests/security/capability_probes.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from capability_probes import PROBES, run_probe

from otelbpf.agent.privileges import process_capabilities

pytestmark = [pytest.mark.kernel, pytest.mark.slow]
DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
ROW = re.compile(r"^\| (?P<feature>[^|]+?) \| (?P<user>root|non-root) \| (?P<needs>[^|]*?) \|")


def table() -> list[tuple[str, str, frozenset[str]]]:
    rows = []
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m and m["feature"] in PROBES:
            needs = frozenset(re.findall(r"CAP_[A-Z_]+", m["needs"]))
            rows.append((m["feature"], m["user"], needs))
    return rows


def test_every_probe_has_a_row() -> None:
    assert sorted({feature for feature, _, _ in table()}) == sorted(PROBES)


@pytest.mark.parametrize("feature,user,needs", table(), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_row_is_what_the_kernel_does(feature: str, user: str, needs: frozenset[str], bpf_build: Path) -> None:
    if os.geteuid() != 0 or "CAP_SYS_ADMIN" not in process_capabilities()["CapEff"]:
        pytest.skip("needs root with every capability, to hand out subsets")
    as_user = None if user == "root" else "65534"
    works = run_probe(feature, needs, user=as_user)
    assert works.returncode == 0, f"{feature} with {sorted(needs)}: {works.stderr[-600:]}"
    for cap in needs:
        rest = needs - {cap}
        if "CAP_SYS_ADMIN" in rest and cap in ("CAP_BPF", "CAP_PERFMON"):
            continue  # the kernel lets CAP_SYS_ADMIN stand in for both (bpf_capable, perfmon_capable)
        fails = run_probe(feature, rest, user=as_user)
        assert fails.returncode != 0, f"{feature} worked without {cap}: the table lists more than it needs"


def test_a_non_root_tracepoint_attach_says_what_is_missing(bpf_build: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to another user")
    out = run_probe("load and attach tracepoint", {"CAP_BPF", "CAP_PERFMON"}, user="65534")
    assert out.returncode != 0
    assert "is readable by root only: run as root or with CAP_DAC_READ_SEARCH" in out.stderr
