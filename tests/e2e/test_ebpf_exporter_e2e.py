"""An ebpf_exporter config directory run by otelbpf: our own program and YAML in ebpf_exporter's
format (bpf/tests/ebpf_exporter_features.bpf.c, tests/ebpf_exporter/ebpfx.yaml), the real agent,
VictoriaMetrics with Prometheus naming. Expected series are computed here, from the raw map
contents, the way ebpf_exporter's documentation defines them — not with otelbpf's code."""

from __future__ import annotations

import math
import os
import sys
import shutil
from collections import Counter
from pathlib import Path

import pytest
from agentproc import AgentProcess, write_agent_config
from workloads import SYS_GETPGID, SyscallChild

from otelbpf.kernel.maps import BpfMap

pytestmark = [pytest.mark.kernel, pytest.mark.backend]

HERE = Path(__file__).resolve().parent.parent / "ebpf_exporter"
PROGRAM = "ebpf_exporter-ebpfx"  # how the agent names the YAML config "ebpfx"
CHILD_COMM = "ebpfxchild"  # the program counts only this command
# Chosen to hit every slot kind: zero, one, powers of two and their neighbours, each fixed bound
# and both sides of it, and values past every histogram's top slot (clamped by the program).
VALUES = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 64, 99, 100, 101, 150, 999, 1000, 1001, 5000, 10000,
          10001, 65536, 65537, 200000]


def ebpfx_dir(tmp_path: Path, bpf_build: Path) -> Path:
    """An ebpf_exporter-style directory: NAME.yaml next to NAME.bpf.o."""
    directory = tmp_path / "ebpf_exporter"
    directory.mkdir()
    shutil.copy(HERE / "ebpfx.yaml", directory / "ebpfx.yaml")
    shutil.copy(bpf_build / "tests" / "ebpf_exporter_features.bpf.o", directory / "ebpfx.bpf.o")
    return directory


def named_child(tmp_path: Path) -> SyscallChild:
    link = tmp_path / CHILD_COMM
    os.symlink(os.path.realpath(sys.executable), link)
    return SyscallChild(str(link))


def raw_map(pin_dir: Path, name: str):
    with BpfMap.from_pin(pin_dir / PROGRAM / name) as bpf_map:
        return bpf_map.read_all()


def key_ints(snap, offset: int, size: int) -> list[int]:
    return [int.from_bytes(bytes(k[offset:offset + size]), "little") for k in snap.keys]


def ebpf_exporter_buckets(counts: dict[int, int], keys: list[int], bound) -> dict[float, int]:
    """ebpf_exporter's histogram: for each configured key, le = bound(key) holds the cumulative
    count of the map's slots up to that key (README "exp2/linear/fixed histograms")."""
    out, total = {}, 0
    for key in keys:
        total += counts.get(key, 0)
        out[bound(key)] = total
    return out


def le_series(vm, metric: str, sel: str, **labels) -> dict[float, float]:
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    return {float(s.labels["le"]): s.value
            for s in vm.query(f"{metric}_bucket{{{sel}{extra}}}") if s.labels["le"] != "+Inf"}


def single(vm, promql: str) -> float:
    samples = vm.query(promql)
    assert len(samples) == 1, (promql, samples)
    return samples[0].value


def test_ebpf_exporter_directory_same_series(tmp_path, bpf_build, victoria_metrics, run_id, pin_dir):
    directory = ebpfx_dir(tmp_path, bpf_build)
    natives = tmp_path / "conf.d"
    natives.mkdir()
    config = write_agent_config(tmp_path, endpoint=victoria_metrics.otlp_http_endpoint,
                                programs=[], programs_dir=natives, pin_dir=pin_dir)
    with named_child(tmp_path) as child:
        with AgentProcess(config, env={"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"},
                          args=("--ebpf-exporter-dir", str(directory), "--names", "ebpfx")) as agent:
            agent.wait_event("agent started")
            agent.wait_log(lambda e: e.get("event") == "flushed" and e.get("ok"))
            for v in VALUES:
                child.call(SYS_GETPGID, v)
            assert agent.stop() == 0

    sel = f'test_run="{run_id}"'
    n = len(VALUES)

    # Counters: names and labels are ebpf_exporter's own, no doubled _total.
    syscalls = raw_map(pin_dir, "ebpfx_syscalls_total")
    by_nr = dict(zip(key_ints(syscalls, 0, 4), syscalls.u64()[:, 0].tolist()))
    assert by_nr[SYS_GETPGID] == n
    assert single(victoria_metrics,
                  f'ebpf_exporter_ebpfx_syscalls_total{{syscall="getpgid",{sel}}}') == n
    assert victoria_metrics.query(f"ebpf_exporter_ebpfx_syscalls_total_total{{{sel}}}") == []

    # Per-CPU map whose only label is cpu: one series per CPU, the raw per-CPU values.
    per_cpu = raw_map(pin_dir, "ebpfx_percpu_cpu_total").u64()[0].tolist()
    exported = {s.labels["cpu"]: s.value for s in victoria_metrics.query(
        f"ebpf_exporter_ebpfx_percpu_cpu_total{{{sel}}}")}
    assert exported == {str(cpu): v for cpu, v in enumerate(per_cpu)} and sum(per_cpu) == n

    # Per-CPU map without a cpu label: CPUs summed.
    mod = raw_map(pin_dir, "ebpfx_percpu_mod_total")
    expected_mod = {str(k): int(v) for k, v in zip(key_ints(mod, 0, 4), mod.u64().sum(axis=1))}
    exported = {s.labels["mod"]: s.value for s in victoria_metrics.query(
        f"ebpf_exporter_ebpfx_percpu_mod_total{{{sel}}}")}
    assert "cpu" not in str(exported) and exported == expected_mod
    assert expected_mod == {str(k): c for k, c in Counter(v % 4 for v in VALUES).items()}

    # perf_event_array counter: records by label, static_map's unknown:<value> for 2.
    names = {0: "zero", 1: "one", 2: "unknown:2"}
    exported = {s.labels["mod"]: s.value for s in victoria_metrics.query(
        f"ebpf_exporter_ebpfx_events_total{{{sel}}}")}
    assert exported == {names[k]: c for k, c in Counter(v % 3 for v in VALUES).items()}

    # Histograms: explicit le buckets equal to ebpf_exporter's, sum and count from the map.
    exp2 = raw_map(pin_dir, "ebpfx_value_exp2")
    parity, slot = key_ints(exp2, 0, 4), key_ints(exp2, 4, 4)
    values = exp2.u64()[:, 0].tolist()
    for p, label in ((0, "even"), (1, "odd")):
        counts = {s: v for pp, s, v in zip(parity, slot, values) if pp == p}
        want = ebpf_exporter_buckets(counts, list(range(0, 17)), lambda k: 2.0 ** k)
        assert le_series(victoria_metrics, "ebpf_exporter_ebpfx_value_exp2", sel,
                         parity=label) == want
        assert single(victoria_metrics, f'ebpf_exporter_ebpfx_value_exp2_sum{{parity="{label}",'
                      f"{sel}}}") == counts[17] == sum(v for v in VALUES if v % 2 == p)
        assert single(victoria_metrics, f'ebpf_exporter_ebpfx_value_exp2_count{{parity='
                      f'"{label}",{sel}}}') == want[2.0 ** 16]

    for name, keys, bound, sum_key, multiplier in (
            ("ebpfx_value_exp2zero", range(0, 17),
             lambda k: 0.0 if k == 0 else 2.0 ** (k - 1) * 0.001, 17, 0.001),
            ("ebpfx_value_linear", range(0, 21), lambda k: k * 10.0, 21, 10.0),
            ("ebpfx_value_fixed", [10, 100, 1000, 10000], float, 10001, 1.0)):
        snap = raw_map(pin_dir, name)
        size = snap.keys.shape[1]
        counts = dict(zip(key_ints(snap, 0, size), snap.u64()[:, 0].tolist()))
        want = ebpf_exporter_buckets(counts, list(keys), bound)
        got = le_series(victoria_metrics, f"ebpf_exporter_{name}", sel)
        assert got.keys() == want.keys() and all(
            math.isclose(got[le], want[le], rel_tol=0, abs_tol=0) for le in want), (name, got, want)
        assert math.isclose(single(victoria_metrics, f"ebpf_exporter_{name}_sum{{{sel}}}"),
                            counts[sum_key] * multiplier, rel_tol=1e-12)
        assert single(victoria_metrics, f"ebpf_exporter_{name}_count{{{sel}}}") == n
        assert counts[sum_key] == sum(VALUES)

    # kaddrs: kaddr_schedule was set from /proc/kallsyms before load and equals the address
    # libbpf resolved for the program's own `schedule` ksym (ok="1" on every call).
    assert single(victoria_metrics, f'ebpf_exporter_ebpfx_kaddr_total{{ok="1",{sel}}}') == n


def test_converted_toml_exports_identical_series(tmp_path, bpf_build, victoria_metrics, run_id,
                                                 pin_dir):
    """`otelbpf convert` output, run as a native program next to the YAML it came from, gives
    the same series and values, kaddrs included (the TOML keeps the symbol names and looks them
    up at load, as the YAML does)."""
    from otelbpf.cli import main as otelbpf_main

    directory = ebpfx_dir(tmp_path, bpf_build)
    natives = tmp_path / "conf.d"
    natives.mkdir()
    assert otelbpf_main(["convert", str(directory / "ebpfx.yaml"), "-o",
                         str(natives / "ebpfx.toml"), "--prefix", "converted_"]) == 0
    config = write_agent_config(tmp_path, endpoint=victoria_metrics.otlp_http_endpoint,
                                programs=["ebpfx"], programs_dir=natives, pin_dir=pin_dir,
                                extra=f'[ebpf_exporter]\ndir = "{directory}"\nnames = ["ebpfx"]\n')
    with named_child(tmp_path) as child:
        with AgentProcess(config, env={"OTEL_RESOURCE_ATTRIBUTES": f"test.run={run_id}"}) as agent:
            agent.wait_event("agent started", programs=["ebpf_exporter-ebpfx", "ebpfx"])
            agent.wait_log(lambda e: e.get("event") == "flushed" and e.get("ok"))
            for v in VALUES:
                child.call(SYS_GETPGID, v)
            assert agent.stop() == 0

    def series(prefix: str) -> dict:
        samples = victoria_metrics.query(f'{{__name__=~"{prefix}ebpfx_.*",test_run="{run_id}"}}')
        return {(s.labels["__name__"].removeprefix(prefix),
                 tuple(sorted((k, v) for k, v in s.labels.items() if k != "__name__"))): s.value
                for s in samples}

    from_yaml, from_toml = series("ebpf_exporter_"), series("converted_")
    assert len(from_yaml) > 60  # every counter and histogram series of the config
    assert from_toml == from_yaml
    kaddr = [v for (name, labels), v in from_toml.items()
             if name == "ebpfx_kaddr_total" and ("ok", "1") in labels]
    assert kaddr == [len(VALUES)]  # kaddr_schedule set in both programs


def test_check_reports_each_yaml_config(tmp_path, bpf_build, pin_dir):
    import subprocess
    import sys

    directory = ebpfx_dir(tmp_path, bpf_build)
    config = write_agent_config(tmp_path, endpoint=None, programs=[],
                                programs_dir=tmp_path, pin_dir=pin_dir)
    result = subprocess.run([sys.executable, "-m", "otelbpf", "check", "--config", str(config),
                             "--ebpf-exporter-dir", str(directory), "--names", "ebpfx,missing"],
                            capture_output=True, text=True, cwd=Path(__file__).parents[2])
    out = result.stdout
    assert result.returncode == 1, out
    assert "FAIL program ebpf_exporter-missing: " in out and "missing.yaml: does not exist" in out
    assert "ok   program ebpf_exporter-ebpfx/observe_value attached" in out
    assert "ok   stream ebpf_exporter-ebpfx/ebpfx_events_total" in out
