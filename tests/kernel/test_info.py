"""bpf(2) queries: ids, map/prog info, run-time stats."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kernel_triggers import getpgid_calls

from otelbpf.kernel import BpfMap, BpfObject, MapType, info
from otelbpf.kernel import libbpf as lb

pytestmark = pytest.mark.kernel


@pytest.fixture
def loaded(objects: Path):
    obj = BpfObject.open(objects / "kernel_attach.bpf.o", parameters={"target_tgid": os.getpid()})
    obj.load()
    yield obj
    obj.close()


def test_ids_list_our_objects(loaded: BpfObject) -> None:
    prog = loaded.programs["on_tracepoint"]
    assert prog.id in set(info.prog_ids())
    assert loaded.maps["hits"].id in set(info.map_ids())
    ids = list(info.prog_ids())
    assert ids == sorted(ids)


def test_map_info(loaded: BpfObject) -> None:
    fd = info.map_fd_by_id(loaded.maps["hits"].id)
    try:
        mi = info.map_info(fd)
    finally:
        os.close(fd)
    assert (mi.type, mi.key_size, mi.value_size, mi.max_entries, mi.name) == (MapType.ARRAY, 4, 8, 6 + 1, "hits")
    assert mi.btf_id > 0


def test_prog_info_and_run_cnt_grows_with_stats(loaded: BpfObject) -> None:
    prog = loaded.programs["on_tracepoint"]
    loaded.attach("on_tracepoint")
    stats_fd = info.enable_stats()
    try:
        fd = info.prog_fd_by_id(prog.id)
        try:
            before = info.prog_info(fd)
            getpgid_calls(0, 10)
            after = info.prog_info(fd)
        finally:
            os.close(fd)
    finally:
        os.close(stats_fd)
    assert before.name == "on_tracepoint" and before.type == 5  # BPF_PROG_TYPE_TRACEPOINT
    assert before.tag == prog.tag and len(before.tag) == 16
    assert after.run_cnt - before.run_cnt >= 10  # other processes may call getpgid too
    assert after.run_time_ns > before.run_time_ns
    assert after.verified_insns > 0
    assert loaded.maps["hits"].id in after.map_ids


def test_missing_ids_raise_enoent() -> None:
    for fn in (info.prog_fd_by_id, info.map_fd_by_id):
        with pytest.raises(lb.LibbpfError) as exc:
            fn(0xFFFFFFF0)
        assert exc.value.errno == 2 and "4294967280" in str(exc.value)


def test_map_ids_continue_past_vanished_ids() -> None:
    a, b, c = (BpfMap.create(MapType.HASH, 4, 4, 1) for _ in range(3))
    try:
        ids = info.map_ids()
        for map_id in ids:
            if map_id == a.id:
                break
        a.close()  # the id the generator stands on vanishes, and so does the next one
        b.close()
        rest = list(ids)
        assert c.id in rest and b.id not in rest and a.id not in rest
    finally:
        for m in (a, b, c):
            m.close()
