"""What host BPF health can measure on this kernel, for ``otelbpf check``."""

from __future__ import annotations

from otelbpf.kernel.features import probe

# feature -> what the builtins do without it
_CONSEQUENCE = {
    "iter_bpf_map": "maps are enumerated by id instead, and hash maps counted by walking their keys",
    "kfunc_map_sum_elem_count": "hash maps are counted by walking their keys (one syscall per key)",
    "enable_stats": "program stats fall back to the kernel.bpf_stats_enabled sysctl",
}


def health_features() -> dict[str, tuple[bool, str]]:
    """{feature: (available, reason)}: reason says why it is missing and what is done instead."""
    found = probe().as_dict()
    out = {}
    for name, consequence in _CONSEQUENCE.items():
        ok, why = found[name]
        out[name] = (ok, "" if ok else f"{why}; {consequence}")
    return out
