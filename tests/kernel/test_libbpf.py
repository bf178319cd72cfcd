"""The libbpf binding itself: errno conventions and message capture."""

from __future__ import annotations

import errno

import pytest

from otelbpf.kernel import libbpf as lb

pytestmark = pytest.mark.kernel


def test_int_errors_become_libbpf_errors() -> None:
    assert lb.libbpf_errno(-errno.ENOENT) == errno.ENOENT and lb.libbpf_errno(3) == 0
    assert lb.check(7, "x") == 7
    with pytest.raises(lb.LibbpfError) as info:
        lb.check(lb.bpf_map_get_fd_by_id(0xFFFFFFF0), "bpf_map_get_fd_by_id")
    assert info.value.errno == errno.ENOENT and "bpf_map_get_fd_by_id: No such file" in str(info.value)


def test_null_pointer_errors_use_errno(tmp_path) -> None:
    with lb.capture_messages() as messages:
        ptr = lb.bpf_object__open_file(str(tmp_path / "missing.o").encode(), None)
    with pytest.raises(lb.LibbpfError) as info:
        lb.check_ptr(ptr, "bpf_object__open_file")
    assert info.value.errno == errno.ENOENT
    # libbpf printed why, formatted from its va_list
    assert any("missing.o" in m for m in messages)
    assert not any("%" in m for m in messages if "missing.o" in m)


def test_capture_is_scoped() -> None:
    with lb.capture_messages() as outer:
        with lb.capture_messages() as inner:
            lb.bpf_object__open_file(b"/nonexistent/a.o", None)
        lb.bpf_object__open_file(b"/nonexistent/b.o", None)
    assert any("a.o" in m for m in inner) and not any("b.o" in m for m in inner)
    assert any("a.o" in m for m in outer) and any("b.o" in m for m in outer)


def test_num_possible_cpus() -> None:
    text = open("/sys/devices/system/cpu/possible").read().strip()
    last = int(text.split(",")[-1].split("-")[-1])
    assert lb.num_possible_cpus() == last + 1
