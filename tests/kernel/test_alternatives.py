"""Groups of alternative BPF programs (``alternatives`` in a program's config): the agent runs the
first of a group that loads and attaches, and no other.

bpf/tests/kernel_alternatives.bpf.o counts one process's getpgid calls four ways (fentry, kprobe,
the sys_enter tracepoint twice) into one map. Which one runs is compared with what the feature
probes say this kernel can do, never assumed: on a kernel with fentry the first one runs, here
the agent falls back. Two programs attached at once would count every call twice.
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from agentproc import REPO, write_agent_config
from workloads import SYS_GETPGID, SyscallChild

from otelbpf.agent.program import LoadedProgram, SwapRejected, why_not
from otelbpf.agent.state import AgentState
from otelbpf.config.agent import LimitsConfig
from otelbpf.config.program import parse_program_config
from otelbpf.errors import ConfigErrors
from otelbpf.kernel import features

pytestmark = pytest.mark.kernel

GROUP = ["count_fentry", "count_kprobe", "count_tracepoint", "count_tracepoint_again"]


@pytest.fixture(scope="module")
def probed() -> features.KernelFeatures:
    return features.probe()


def expected_choice(probed: features.KernelFeatures) -> str:
    return "count_fentry" if probed.fentry else "count_kprobe" if probed.kprobe else "count_tracepoint"


def config(objects: Path, tgid: int, alternatives: list[list[str]], name: str = "getpgid.calls"):
    groups = ", ".join("[" + ", ".join(f'"{n}"' for n in g) + "]" for g in alternatives)
    text = f"""
object = "kernel_alternatives.bpf.o"
alternatives = [{groups}]
[parameters]
target_tgid = {tgid}
[[counters]]
name = "{name}"
map = "calls"
"""
    return parse_program_config(text, Path("alternatives.toml"), objects)


def load(cfg) -> LoadedProgram:
    return LoadedProgram.load(cfg, state=AgentState(None, None), limits=LimitsConfig(100, 0))


@contextmanager
def running(objects: Path, alternatives: list[list[str]]):
    """(a process making getpgid calls, the program loaded to count them)"""
    with SyscallChild() as child:
        prog = load(config(objects, child.pid, alternatives))
        try:
            yield child, prog
        finally:
            prog.close()


def counted(prog: LoadedProgram) -> int:
    (metric,) = [m for m in prog.collect(time.time_ns()) if m.name.startswith("getpgid")]
    return sum(p.value for p in metric.points)


def attached(prog: LoadedProgram) -> dict[str, int]:
    return {dict(p.attributes)["bpf.program.name"]: p.value for p in prog.attach_points(time.time_ns())}


def test_the_first_alternative_that_runs_is_the_only_one(objects, probed):
    chosen = expected_choice(probed)
    with running(objects, [GROUP]) as (child, prog):
        child.call(SYS_GETPGID, 0, 250)
        assert counted(prog) == 250  # one program of the group counted each call
        assert set(prog.links) == {chosen}
        assert prog.problems == {}
        assert prog.standby == set(GROUP) - {chosen}
        # Those before it were tried and failed; those after it were not needed.
        assert set(prog.passed_over) == set(GROUP[:GROUP.index(chosen)])
        # Only what runs is reported: a standby alternative is not a failure to alert on.
        assert attached(prog) == {chosen: 1}


def test_the_fallback_reasons_are_the_kernels(objects, probed):
    if probed.fentry or probed.kprobe:
        pytest.skip("this kernel runs fentry or kprobe programs: nothing to fall back from")
    with running(objects, [GROUP]) as (_, prog):
        passed = {name: why_not(error) for name, error in prog.passed_over.items()}
    # The reasons the feature probes give (what failed in detail, in parentheses, differs: the
    # probe loads a program of its own).
    assert passed.keys() == {"count_fentry", "count_kprobe"}
    assert passed["count_fentry"].split(" (")[0] == probed.reasons["fentry"].split(" (")[0]
    assert passed["count_kprobe"] == probed.reasons["kprobe"]


def test_a_group_that_cannot_run_is_reported_program_by_program(objects, probed):
    if probed.fentry or probed.kprobe:
        pytest.skip("this kernel runs fentry or kprobe programs: the group runs")
    # The two tracepoint programs, outside the group, run side by side (and count twice).
    with running(objects, [["count_fentry", "count_kprobe"]]) as (child, prog):
        assert set(prog.problems) == {"count_fentry", "count_kprobe"}
        assert prog.standby == set()
        assert attached(prog) == {"count_fentry": 0, "count_kprobe": 0,
                                  "count_tracepoint": 1, "count_tracepoint_again": 1}
        child.call(SYS_GETPGID, 0, 10)
        assert counted(prog) == 20


def test_a_reload_keeps_the_fallback_and_refuses_a_version_that_runs_less(objects, probed):
    chosen = expected_choice(probed)
    state = AgentState(None, None)
    limits = LimitsConfig(100, 0)
    with SyscallChild() as child:
        running = load(config(objects, child.pid, [GROUP]))
        try:
            # Another metric name, the same group: the new version takes over with the same choice.
            renamed = LoadedProgram.prepare(config(objects, child.pid, [GROUP], "getpgid.calls.renamed"),
                                            state=state, limits=limits)
            renamed.go_live(state=state, drainer=None, replacing=running)
            running.close()
            running = renamed
            assert set(running.links) == {chosen}
            child.call(SYS_GETPGID, 0, 30)
            assert counted(running) == 30
            if chosen == "count_tracepoint":
                # Without the group, fentry and kprobe are programs that fail: the new version
                # would run less than the running one, which keeps counting.
                plain = LoadedProgram.prepare(config(objects, child.pid, []), state=state, limits=limits)
                try:
                    with pytest.raises(SwapRejected, match="count_fentry"):
                        plain.go_live(state=state, drainer=None, replacing=running)
                finally:
                    plain.close()
                child.call(SYS_GETPGID, 0, 5)
                assert counted(running) == 35
        finally:
            running.close()


def test_alternatives_must_name_the_objects_programs(objects):
    cfg = config(objects, 1, [["count_fentry", "count_tracepiont"]])
    with pytest.raises(ConfigErrors) as info:
        load(cfg)
    (error,) = info.value.errors
    assert error.field == "alternatives[0]"
    assert 'has no BPF program "count_tracepiont"' in error.message
    assert error.fix == 'did you mean "count_tracepoint"?'


def test_check_says_which_alternative_runs(tmp_path, objects, probed):
    chosen = expected_choice(probed)
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "alternatives.toml").write_text(
        'object = "kernel_alternatives.bpf.o"\n'
        f'alternatives = [{GROUP!r}]\n'.replace("'", '"')
        + '[parameters]\ntarget_tgid = 1\n[[counters]]\nname = "getpgid.calls"\nmap = "calls"\n')
    config = write_agent_config(tmp_path, endpoint=None, programs=["alternatives"],
                                programs_dir=conf_d, objects_dir=objects)
    out = subprocess.run([sys.executable, "-m", "otelbpf", "check", "--config", str(config)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0 and "FAIL" not in out.stdout, out.stdout + out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("ok   program alternatives/")]
    assert f"ok   program alternatives/{chosen} attached" in lines
    standby = [line for line in lines if "not used, an alternative runs" in line]
    assert len(standby) == len(GROUP) - 1 and len(lines) == len(GROUP)
    for name in GROUP[:GROUP.index(chosen)]:  # tried and failed: the kernel's reason is shown
        assert any(line.startswith(f"ok   program alternatives/{name} not used") and "this one failed:" in line
                   for line in standby), lines
