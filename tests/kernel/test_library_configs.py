"""Every program of the library: its config matches its object byte for byte, it loads and
attaches here, and `otelbpf check` passes with every one of them enabled."""

from __future__ import annotations

import subprocess
import sys

import pytest

from otelbpf.config.agent import load_agent_config
from otelbpf.config.program import key_extent, load_program_config
from otelbpf.config.validate import validate_against_object
from otelbpf.kernel.object import BpfObject
from tests.agentproc import write_agent_config
from tests.kernel.library import CONF_D, REPO

pytestmark = pytest.mark.kernel

PROGRAMS = sorted(p.name.removesuffix(".toml") for p in CONF_D.glob("*.toml"))


def test_the_library_has_at_least_18_programs_each_with_its_source():
    assert len(PROGRAMS) >= 18, PROGRAMS
    for name in PROGRAMS:
        assert (REPO / "bpf" / f"{name}.bpf.c").exists(), name


@pytest.mark.parametrize("name", PROGRAMS)
def test_config_describes_the_map_keys_and_the_program_attaches(bpf_build, name):
    config = load_program_config(CONF_D / f"{name}.toml", bpf_build)
    with BpfObject.open(config.object, parameters=config.parameters) as obj:
        assert validate_against_object(config, obj.maps) == []
        read: dict[str, set[int]] = {}  # map -> the value offsets its metrics read
        for metric in config.counters + config.histograms:
            bpf_map = obj.maps[metric.map]
            assert key_extent(metric.labels) == bpf_map.key_size, metric.name
            read.setdefault(metric.map, set()).add(getattr(metric, "value_offset", 0))
        # Every u64 of every value is exported (a struct of counts: one counter per field).
        assert {m: set(range(0, obj.maps[m].value_size, 8)) for m in read} == read
        obj.load()
        results = obj.attach_all()
        failed = {prog: str(r) for prog, r in results.items() if isinstance(r, Exception)}
        assert results and not failed


def test_latency_histograms_are_exponential_at_scale_3(bpf_build):
    for name in PROGRAMS:
        for histogram in load_program_config(CONF_D / f"{name}.toml", bpf_build).histograms:
            if histogram.unit in ("ns", "us"):
                assert name == "biolatency" or (histogram.bucket_type, histogram.bucket_scale) == ("exponential", 3), name


def test_default_config_enables_a_subset_that_exists():
    agent = load_agent_config(REPO / "conf" / "otelbpf.toml")
    assert agent.programs is not None and set(agent.programs) < set(PROGRAMS)


def test_check_passes_with_every_program_enabled(tmp_path, bpf_build):
    config = write_agent_config(tmp_path, endpoint=None, programs=PROGRAMS, programs_dir=CONF_D)
    out = subprocess.run([sys.executable, "-m", "otelbpf", "check", "--config", str(config)],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    for name in PROGRAMS:
        assert any(line.startswith(f"ok   program {name}/") for line in out.stdout.splitlines()), (name, out.stdout)
    assert "FAIL" not in out.stdout and "Traceback" not in out.stderr
