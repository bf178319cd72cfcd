"""Least privilege: after setup the agent keeps only the capabilities its run time needs.

Loading BPF is root-equivalent, so a long-running loader should hold as little as it can. Setup
needs more than steady state: switching on run-time statistics (BPF_ENABLE_STATS) needs
CAP_SYS_ADMIN once, and the fd it returns keeps them on. Everything done every interval needs
only CAP_BPF and CAP_PERFMON: maps are read through fds the agent already holds, and programs and
maps of the whole host are listed with BPF iterators (iter/bpf_prog, iter/bpf_map), not by id.
A reload loads programs again, so what loading needs (CAP_BPF, CAP_PERFMON) is kept.

Capabilities are per thread (capset(2) changes the calling thread only), so the drop happens
while the agent is still single-threaded, before the stream drainer, exporter or numpy threads
start; ``drop_capabilities`` refuses to run otherwise. The bounding set is cut too, and ambient
and inheritable sets cleared, so nothing the agent might exec regains what was dropped.
docs/security.md lists what each feature needs, measured.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from otelbpf import log

_log = log.get("otelbpf.agent.privileges")

# include/uapi/linux/capability.h
CAPABILITIES: Mapping[str, int] = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
_NAMES = {bit: name for name, bit in CAPABILITIES.items()}

# Loading and attaching programs (a reload does it again) and reading the host-wide iterators.
LOAD = frozenset({"CAP_BPF", "CAP_PERFMON"})
# Reading real addresses from /proc/kallsyms: checked when the file is opened, and the ksym and
# kstack decoders open it on first use, i.e. at run time.
KALLSYMS_DECODERS = frozenset({"ksym", "kstack"})
# Program sections whose attach needs more than LOAD (measured on Linux 6.18, docs/security.md):
# the uprobe perf event is refused (EACCES) without CAP_SYS_ADMIN; a classic tracepoint reads its
# id from tracefs, which is root-only, so a non-root agent needs CAP_DAC_READ_SEARCH.
UPROBE_SECTIONS = ("uprobe", "uretprobe", "usdt")
TRACEFS_SECTIONS = ("tracepoint/", "tp/", "kprobe/", "kretprobe/")

PR_CAPBSET_READ, PR_CAPBSET_DROP = 23, 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)


def names(mask: int) -> frozenset[str]:
    """Capability names of a bit mask (as in /proc/PID/status); unknown bits as CAP_<n>."""
    return frozenset(_NAMES.get(bit, f"CAP_{bit}") for bit in range(64) if mask >> bit & 1)


def mask(caps: Iterable[str]) -> int:
    return sum(1 << CAPABILITIES[c] for c in caps)


def process_capabilities(pid: int | str = "self", task: int | None = None) -> dict[str, frozenset[str]]:
    """{"CapInh"|"CapPrm"|"CapEff"|"CapBnd"|"CapAmb": names} from /proc/PID[/task/TID]/status."""
    path = Path(f"/proc/{pid}") / (f"task/{task}" if task is not None else "") / "status"
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Cap"):
            out[key] = names(int(value.strip(), 16))
    return out


def _decoder_names(value) -> set[str]:
    """Names of every decoder anywhere in a (nested, frozen dataclass) program config."""
    from otelbpf.config.program import DecoderConfig

    found: set[str] = set()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, DecoderConfig):
            found.add(value.name)
        for f in dataclasses.fields(value):
            found |= _decoder_names(getattr(value, f.name))
    elif isinstance(value, (tuple, list)):
        for item in value:
            found |= _decoder_names(item)
    return found


def _sections(object_path: Path) -> list[str]:
    """ELF section names of the object's programs (opened, not loaded); [] if it cannot be read
    (loading it will say why)."""
    from otelbpf.kernel.object import BpfObject

    try:
        obj = BpfObject.open(object_path)
    except Exception:
        return []
    try:
        return [p.section for p in obj.programs.values()]
    finally:
        obj.close()


def run_time_needs(program_configs: Iterable, uid: int | None = None) -> frozenset[str]:
    """What the agent needs after setup with these programs loaded: a reload loads and attaches
    them again, and decoders run every interval (docs/security.md has the measurements)."""
    uid = os.getuid() if uid is None else uid
    needs = set(LOAD)
    for pcfg in program_configs:
        # kaddrs (YAML or native) are read from /proc/kallsyms whenever the config is read (reloads too).
        if _decoder_names(pcfg) & KALLSYMS_DECODERS or any(
                name.startswith("kaddr_") for name in pcfg.parameters):
            needs.add("CAP_SYSLOG")
        sections = _sections(pcfg.object)
        if any(sec.startswith("xdp") for sec in sections):
            needs.add("CAP_NET_ADMIN")  # attaching to an interface (a reload attaches again)
        if any(sec.startswith(UPROBE_SECTIONS) for sec in sections):
            needs.add("CAP_SYS_ADMIN")
        if uid != 0 and any(sec.startswith(TRACEFS_SECTIONS) for sec in sections):
            needs.add("CAP_DAC_READ_SEARCH")
    return frozenset(needs)


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def drop_capabilities(keep: Iterable[str]) -> frozenset[str]:
    """Reduce this (single-threaded) process to ``keep`` ∩ what it holds; returns what is kept.

    Permitted and effective become the kept set, inheritable and ambient are cleared, the
    bounding set loses everything else (when CAP_SETPCAP allows; under systemd the unit's
    CapabilityBoundingSet already did) and no_new_privs is set.
    """
    if _threads() != 1:
        raise RuntimeError(f"capabilities must be dropped before threads start ({_threads()} running): "
                           "capset(2) changes the calling thread only")
    held = process_capabilities()
    kept = frozenset(keep) & held["CapPrm"]
    last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    if "CAP_SETPCAP" in held["CapEff"]:
        for bit in range(last_cap + 1):
            if _NAMES.get(bit) not in kept and _libc.prctl(PR_CAPBSET_READ, bit, 0, 0, 0) == 1:
                if _libc.prctl(PR_CAPBSET_DROP, bit, 0, 0, 0) != 0:
                    raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {_NAMES.get(bit, bit)})")
    if _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 \
            and ctypes.get_errno() != errno.EINVAL:  # EINVAL: kernel < 4.3, no ambient set
        raise OSError(ctypes.get_errno(), "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    bits = mask(kept)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(_CapData(bits & 0xFFFFFFFF, bits & 0xFFFFFFFF, 0),
                          _CapData(bits >> 32, bits >> 32, 0))
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    now = process_capabilities()
    if now["CapEff"] != kept or now["CapPrm"] != kept:
        raise RuntimeError(f"capabilities after the drop are {sorted(now['CapEff'])}, not {sorted(kept)}")
    return kept


@dataclasses.dataclass
class RunTimePrivileges:
    """What the agent kept, and the statistics fd it opened before dropping CAP_SYS_ADMIN."""

    kept: frozenset[str] | None  # None: nothing was dropped
    run_stats: object | None = None  # health.run_stats.RunTimeStats

    def missing_for(self, cfg, program_configs: Iterable) -> list[tuple[str, str]]:
        """(capability, what needs it) that a reload to ``cfg`` would need but was dropped."""
        if self.kept is None:
            return []
        missing = []
        for cap in sorted(run_time_needs(program_configs) - self.kept):
            why = {"CAP_SYSLOG": "the ksym/kstack decoders or kaddrs", "CAP_SYS_ADMIN": "attaching uprobes",
                   "CAP_NET_ADMIN": "attaching XDP programs",
                   "CAP_DAC_READ_SEARCH": "tracepoint ids from tracefs"}.get(cap, "loading programs")
            missing.append((cap, why))
        if cfg.builtin.program_stats.enabled and self.run_stats is None \
                and "CAP_SYS_ADMIN" not in self.kept:
            missing.append(("CAP_SYS_ADMIN", "[builtin.program_stats] (switching on run-time statistics)"))
        return missing

    def say_missing(self, cfg, program_configs: Iterable) -> None:
        """One error line per capability a reload needs that the agent no longer has."""
        for cap, why in self.missing_for(cfg, program_configs):
            _log.error("reload needs a capability the agent dropped after start", capability=cap,
                       needed_for=why, fix=f"restart the agent, or add {cap} to "
                                           "[security] keep_capabilities")

    def close(self) -> None:
        if self.run_stats is not None:
            self.run_stats.close()
            self.run_stats = None


def enter_run_time(cfg, program_configs: Iterable, *, drop: bool = True) -> RunTimePrivileges:
    """Do what needs more than run time (switch statistics on), then, if ``drop``, drop to
    run-time needs. ``[security] keep_capabilities`` replaces the computed set.
    """
    program_configs = list(program_configs)
    run_stats = None
    if cfg.builtin.program_stats.enabled:
        from otelbpf.health.run_stats import RunTimeStats

        run_stats = RunTimeStats()
    if not drop:
        return RunTimePrivileges(None, run_stats)
    keep = cfg.security.keep_capabilities
    if keep is None:
        keep = run_time_needs(program_configs)
    try:
        kept = drop_capabilities(keep)
    except BaseException:
        if run_stats is not None:
            run_stats.close()
        raise
    _log.info("capabilities dropped", kept=sorted(kept),
              wanted_but_not_held=sorted(set(keep) - kept))
    return RunTimePrivileges(kept, run_stats)
