"""uprobes whose section names binary:function are attached by attach_all() without extra arguments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kernel_triggers import getpgid_calls

from otelbpf.errors import AttachError
from otelbpf.kernel import BpfLink, BpfObject

pytestmark = pytest.mark.kernel


def test_uprobe_and_uretprobe_count_libc_calls(objects: Path) -> None:
    with BpfObject.open(objects / "kernel_uprobe.bpf.o", parameters={"target_tgid": os.getpid()}) as obj:
        obj.load()
        results = obj.attach_all()
        assert isinstance(results["on_getpgid"], BpfLink)
        assert isinstance(results["on_getpgid_return"], BpfLink)
        missing = results["on_missing_symbol"]
        assert isinstance(missing, AttachError)
        assert missing.reason.startswith("uprobe target libc.so.6:otelbpf_no_such_function not found")
        getpgid_calls(0, 6)  # os.getpgid calls libc's getpgid()
        assert obj.maps["uprobe_hits"].read_all().u64()[:, 0].tolist() == [6, 6]
