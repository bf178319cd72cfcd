"""ebpf_exporter's cgroup_id_map, both layouts, on the real kernel: otelbpf fills the map with the
cgroups whose path matches, the BPF program sees its own cgroup in it, and a removed cgroup leaves
the map at the next collection."""

from __future__ import annotations

import os
import sys
import shutil
import struct
import time
import uuid
from pathlib import Path

import pytest
from workloads import SYS_GETPGID, SyscallChild

from otelbpf.agent.cgroup_id_map import CgroupIdMapFiller
from otelbpf.agent.program import LoadedProgram
from otelbpf.agent.state import AgentState
from otelbpf.config.agent import LimitsConfig
from otelbpf.config.ebpf_exporter import load_ebpf_exporter_config, native_toml
from otelbpf.config.program import parse_program_config
from otelbpf.decoders.cgroup import cgroup2_mount

pytestmark = pytest.mark.kernel

HERE = Path(__file__).resolve().parent.parent / "ebpf_exporter"


@pytest.fixture
def test_cgroups():
    """Two cgroups of our own (inner, other) below the cgroup2 root; removed afterwards."""
    root = cgroup2_mount()
    if root is None:
        pytest.skip("no cgroup2 filesystem mounted")
    base = root / f"otelbpf-test-{uuid.uuid4().hex[:8]}"
    (base / "inner").mkdir(parents=True)
    (base / "other").mkdir()
    yield root, base
    for path in (base / "inner", base / "other", base):
        if path.exists():
            path.rmdir()


@pytest.mark.parametrize("source", ["yaml", "converted"])
@pytest.mark.parametrize("kind", ["hash", "cgrp_storage"])
def test_cgroup_id_map_is_filled_and_kept_current(kind, source, tmp_path, objects, test_cgroups):
    """From the YAML, and from the native TOML `otelbpf convert` writes from it."""
    root, base = test_cgroups
    inner, other = base / "inner", base / "other"
    text = (HERE / f"cgx_{kind}.yaml").read_text().replace(
        "REGEXP", f"{base.name}/(inner|other)$")
    (tmp_path / "cgx.yaml").write_text(text)
    shutil.copy(objects / "ebpf_exporter_cgroups.bpf.o", tmp_path / "cgx.bpf.o")
    if source == "yaml":
        cfg = load_ebpf_exporter_config(tmp_path / "cgx.yaml")
    else:
        cfg = parse_program_config(native_toml(tmp_path / "cgx.yaml"), tmp_path / "cgx.toml",
                                   tmp_path)
    assert cfg.cgroup_id_map.type == kind

    link = tmp_path / "cgxchild"
    os.symlink(os.path.realpath(sys.executable), link)
    with SyscallChild(str(link)) as child:
        (inner / "cgroup.procs").write_text(str(child.pid))
        prog = LoadedProgram.load(cfg, state=AgentState(None, None), limits=LimitsConfig(100, 0))
        try:
            (filler,) = [s for s in prog.streams if isinstance(s, CgroupIdMapFiller)]
            inner_id, other_id = inner.stat().st_ino, other.stat().st_ino
            assert filler.present == {inner_id, other_id}
            child.call(SYS_GETPGID, 0, 7)
            (metric,) = prog.collect(time.time_ns())
            points = {dict(p.attributes)["cgroup"]: (dict(p.attributes), p.value)
                      for p in metric.points}
            attrs, value = points[str(inner)]  # the cgroup decoder gives the absolute path
            assert value == 7
            assert (attrs["in_hash"], attrs["in_storage"]) == (
                ("1", "0") if kind == "hash" else ("0", "1"))

            other.rmdir()
            prog.collect(time.time_ns())
            assert filler.present == {inner_id}
            if kind == "hash":
                keys = prog.obj.maps["cgroup_id_hash"].read_all().keys
                assert [struct.unpack("=Q", bytes(k))[0] for k in keys] == [inner_id]
        finally:
            prog.close()
            (root / "cgroup.procs").write_text(str(child.pid))
