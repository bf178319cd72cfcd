"""Load failures: verifier rejections carry the log tail; one bad program does not sink the object."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kernel_triggers import getpgid_calls

from otelbpf.errors import LoadError
from otelbpf.kernel import BpfObject

pytestmark = pytest.mark.kernel


def test_verifier_rejection_without_isolation_raises_with_log(objects: Path) -> None:
    with BpfObject.open(objects / "kernel_bad.bpf.o", isolate=False) as obj:
        with pytest.raises(LoadError) as info:
            obj.load()
    err = info.value
    assert err.program == "broken"
    assert "verifier rejected" in err.message and "map_value_or_null" in err.message
    lines = err.log.splitlines()
    assert 0 < len(lines) <= 30
    assert any("R0 invalid mem access 'map_value_or_null'" in ln for ln in lines)
    assert any("return *v;" in ln for ln in lines)  # source line annotations from BTF line info
    assert "verifier log (tail):" in str(err)


def test_isolation_loads_the_rest(objects: Path) -> None:
    with BpfObject.open(objects / "kernel_bad.bpf.o") as obj:
        obj.load()
        assert set(obj.program_errors) == {"broken"}
        assert isinstance(obj.program_errors["broken"], LoadError)
        assert obj.programs["broken"].error is obj.program_errors["broken"]
        assert not obj.programs["broken"].loaded
        fine = obj.programs["fine"]
        assert fine.loaded and fine.id > 0 and len(fine.tag) == 16
        results = obj.attach_all()
        assert set(results) == {"fine"}
        getpgid_calls(0, 3)
        assert int.from_bytes(obj.maps["values"].lookup(b"\0" * 4), "little") >= 3


def test_nothing_loadable_raises(objects: Path) -> None:
    with BpfObject.open(objects / "kernel_bad_only.bpf.o") as obj:
        with pytest.raises(LoadError) as info:
            obj.load()
    assert info.value.program == "broken" and "map_value_or_null" in info.value.log


def test_missing_object_file(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="object file does not exist"):
        BpfObject.open(tmp_path / "nope.bpf.o")


def test_garbage_object_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.bpf.o"
    path.write_bytes(b"this is not an ELF file" * 10)
    with pytest.raises(LoadError) as info:
        BpfObject.open(path)
    assert "cannot open the object" in info.value.message


def test_close_releases_programs(objects: Path) -> None:
    from otelbpf.kernel import info as kinfo

    obj = BpfObject.open(objects / "kernel_bad.bpf.o")
    obj.load()
    prog_id = obj.programs["fine"].id
    assert prog_id in set(kinfo.prog_ids())
    obj.close()
    obj.close()  # idempotent
    # The last reference may drop after an RCU grace period (tracepoint detach): allow a moment.
    deadline = time.monotonic() + 2
    while prog_id in set(kinfo.prog_ids()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert prog_id not in set(kinfo.prog_ids())
    assert obj.maps["values"].closed
