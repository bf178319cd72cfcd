"""Attaching: working attach types count events; unsupported ones fail with reasons, in isolation."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from kernel_triggers import getpgid_calls

from otelbpf.errors import AttachError, LoadError
from otelbpf.kernel import BpfLink, BpfObject, features, info, perf

pytestmark = pytest.mark.kernel

# enum hit in kernel_attach.bpf.c
HIT_TRACEPOINT, HIT_RAW_TP, HIT_TP_BTF, HIT_KPROBE, HIT_FENTRY, HIT_MISSING = range(6)


@pytest.fixture
def attach_obj(objects: Path):
    obj = BpfObject.open(objects / "kernel_attach.bpf.o", parameters={"target_tgid": os.getpid()})
    obj.load()
    yield obj
    obj.close()


def hits(obj: BpfObject) -> list[int]:
    return obj.maps["hits"].read_all().u64()[:, 0].tolist()


def test_unsupported_programs_are_isolated(attach_obj: BpfObject) -> None:
    kernel = features.probe()
    results = attach_obj.attach_all()
    # perf_event programs need an explicit event; they are not part of attach_all
    assert set(results) == {"on_tracepoint", "on_raw_tp", "on_tp_btf", "on_kprobe", "on_missing", "dump_maps"} | (
        {"on_fentry"} if kernel.fentry else set()
    )
    for name in ("on_tracepoint", "on_raw_tp", "on_tp_btf", "dump_maps"):
        assert isinstance(results[name], BpfLink), results[name]

    missing = results["on_missing"]
    assert isinstance(missing, AttachError)
    assert missing.reason == "tracepoint syscalls/sys_enter_otelbpf_missing does not exist"
    assert missing.section == "tracepoint/syscalls/sys_enter_otelbpf_missing"

    kprobe = results["on_kprobe"]
    if kernel.kprobe:
        assert isinstance(kprobe, BpfLink), kprobe
    else:
        assert isinstance(kprobe, AttachError) and kprobe.program == "on_kprobe"
        assert kprobe.reason == "kprobes are not supported by this kernel (no kprobe PMU / CONFIG_KPROBE_EVENTS)"
        assert "on_kprobe (kprobe/vfs_read): kprobes are not supported" in str(kprobe)
    if kernel.fentry:
        assert isinstance(results["on_fentry"], BpfLink), results["on_fentry"]
    else:
        err = attach_obj.program_errors["on_fentry"]
        assert isinstance(err, LoadError) and err.program == "on_fentry"
        assert err.message.startswith("fentry/fexit are not supported by this kernel")
        assert "ulimit" not in str(err)  # libbpf's memlock hint is wrong here and is dropped
        with pytest.raises(AttachError, match="on_fentry .*not loaded: fentry/fexit are not supported"):
            attach_obj.attach("on_fentry")

    before = hits(attach_obj)
    getpgid_calls(0, 7)
    after = hits(attach_obj)
    assert after[HIT_TRACEPOINT] - before[HIT_TRACEPOINT] == 7
    # raw_tp/tp_btf sys_enter fire on every syscall of this process: at least our 7
    assert after[HIT_RAW_TP] - before[HIT_RAW_TP] >= 7
    assert after[HIT_TP_BTF] - before[HIT_TP_BTF] >= 7
    assert after[HIT_MISSING] == 0
    # vfs_read: counted by what attached, nothing by what did not
    with open("/proc/self/stat", "rb") as f:
        f.read()
    read = hits(attach_obj)
    assert (read[HIT_KPROBE] > 0) == kernel.kprobe
    assert (read[HIT_FENTRY] > 0) == kernel.fentry


def test_closing_a_link_detaches(attach_obj: BpfObject) -> None:
    link = attach_obj.attach("on_tracepoint")
    assert link.fd >= 0 and info.link_info(link.fd).prog_id == attach_obj.programs["on_tracepoint"].id
    getpgid_calls(0, 2)
    link.close()
    assert link.closed and link.fd == -1
    count = hits(attach_obj)[HIT_TRACEPOINT]
    getpgid_calls(0, 5)
    assert count == 2 and hits(attach_obj)[HIT_TRACEPOINT] == 2


def test_object_close_detaches_everything(objects: Path) -> None:
    obj = BpfObject.open(objects / "kernel_attach.bpf.o", parameters={"target_tgid": os.getpid()})
    obj.load()
    obj.attach("on_tracepoint")
    hits_map_id = obj.maps["hits"].id
    with_ids = {link.program for link in obj.links}
    assert with_ids == {"on_tracepoint"}
    obj.close()
    assert obj.links == []
    deadline = time.monotonic() + 2
    while hits_map_id in set(info.map_ids()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hits_map_id not in set(info.map_ids())


def test_iter_bpf_map_lists_our_maps(attach_obj: BpfObject) -> None:
    link = attach_obj.attach("dump_maps")
    text = info.iter_read(link).decode()
    lines = dict(reversed(line.split(" ", 1)) for line in text.splitlines())
    assert int(lines["hits"]) == attach_obj.maps["hits"].id
    assert int(lines["perf_samples"]) == attach_obj.maps["perf_samples"].id


def test_perf_event_program_runs_on_every_cpu(attach_obj: BpfObject) -> None:
    with pytest.raises(AttachError, match="use attach_perf_event"):
        attach_obj.attach("on_perf_event")
    links = attach_obj.attach_perf_event(
        "on_perf_event", perf.PERF_TYPE_SOFTWARE, perf.PERF_COUNT_SW_CPU_CLOCK, sample_freq=1000
    )
    assert len(links) == len(perf.online_cpus())
    # Keep every CPU busy for a moment so each one's cpu-clock event samples.
    end = time.monotonic() + 0.3
    for cpu in perf.online_cpus():
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
        try:
            while time.monotonic() < end:
                pass
        finally:
            os.sched_setaffinity(0, before)
        end = time.monotonic() + 0.3
    samples = attach_obj.maps["perf_samples"].read_all().u64()[0]
    for cpu in perf.online_cpus():
        assert samples[cpu] > 10, samples
    for link in links:
        link.close()
    frozen = attach_obj.maps["perf_samples"].read_all().u64()[0].copy()
    time.sleep(0.05)
    assert np.array_equal(attach_obj.maps["perf_samples"].read_all().u64()[0], frozen)


def test_perf_event_needs_exactly_one_rate(attach_obj: BpfObject) -> None:
    with pytest.raises(ValueError, match="exactly one of sample_period or sample_freq"):
        attach_obj.attach_perf_event("on_perf_event", perf.PERF_TYPE_SOFTWARE, perf.PERF_COUNT_SW_CPU_CLOCK)


def test_hardware_perf_event_failure_is_an_attach_error(attach_obj: BpfObject) -> None:
    # PERF_COUNT_HW_CPU_CYCLES: fails on VMs without a `cpu` PMU; must be reported, never crash.
    try:
        links = attach_obj.attach_perf_event("on_perf_event", perf.PERF_TYPE_HARDWARE, 0, sample_period=1_000_000)
    except AttachError as exc:
        assert "perf_event_open(type=0, config=0, cpu=" in exc.reason
    else:
        for link in links:
            link.close()


def test_link_pin(attach_obj: BpfObject, pin_dir: Path) -> None:
    link = attach_obj.attach("on_tracepoint")
    link.pin(pin_dir / "link")
    assert (pin_dir / "link").exists()
    link.unpin()
    assert not (pin_dir / "link").exists()
