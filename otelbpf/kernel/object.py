"""BPF objects: open an ELF file, set parameters and pins, load (isolating failing programs), attach.

Lifecycle: ``BpfObject.open()`` parses the ELF and applies ``parameters`` (written into the
.rodata image before load) and ``pin_maps``; ``load()`` creates maps and loads programs;
``attach()`` / ``attach_all()`` create links; ``close()`` detaches and frees everything.

libbpf loads an object all-or-nothing and a failed ``bpf_object__load`` cannot be retried
(libbpf.c bpf_object_load: "load can't be attempted twice"). To keep one unloadable program
(fentry on a kernel that refuses it, a verifier rejection) from taking the rest down, ``load()``
records that program's error, re-opens the object with the program's autoload turned off and tries
again.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import socket
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from otelbpf.errors import AttachError, LoadError, OtelbpfError
from otelbpf.kernel import features
from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.btf import Btf, RodataVar, encode_parameter
from otelbpf.kernel.info import map_info, prog_info
from otelbpf.kernel.links import BpfLink
from otelbpf.kernel.maps import BpfMap, MapType

# The kernel (6.4+) keeps the END of an overflowing log, which is where the rejection reason is.
LOG_BUF_SIZE = 256 << 10
LOG_TAIL_LINES = 30

# Sections whose programs have no attach target of their own (libbpf cannot auto-attach them).
MANUAL_ATTACH_PREFIXES = ("perf_event", "syscall", "socket", "xdp", "tc", "classifier", "action")

# Sections ebpf_exporter attaches itself (exporter/perf_event.go, exporter/xdp.go), which libbpf
# does not know: their program type is set here, and attach() reads the target from the section.
# Values of enum bpf_prog_type / bpf_attach_type (include/uapi/linux/bpf.h).
BPF_PROG_TYPE_XDP, BPF_PROG_TYPE_PERF_EVENT = 6, 7
BPF_XDP, BPF_PERF_EVENT = 37, 41
TARGET_SECTIONS = {"perf_event/": (BPF_PROG_TYPE_PERF_EVENT, BPF_PERF_EVENT),
                   "xdp/": (BPF_PROG_TYPE_XDP, BPF_XDP)}

_FAILED_PROG = re.compile(r"prog '([^']+)': failed to load")
_ANY_PROG_FAILURE = re.compile(r"prog '([^']+)': .*(?:fail|error|invalid)", re.IGNORECASE)


@dataclass
class BpfProgram:
    """One program of an object. ``fd``/``id``/``tag`` are set once loaded (fd is owned by the object)."""

    name: str
    section: str
    prog_type: int
    expected_attach_type: int
    fd: int = -1
    id: int = 0
    tag: str = ""
    error: OtelbpfError | None = None

    @property
    def loaded(self) -> bool:
        return self.fd >= 0

    @property
    def kind(self) -> str:
        """Section prefix: "tracepoint", "kprobe", "fentry", "iter", ... ("tp" is "tracepoint")."""
        head = self.section.split("/", 1)[0].split(".", 1)[0]
        return {"tp": "tracepoint", "raw_tracepoint": "raw_tp", "kretprobe": "kprobe"}.get(head, head)

    def test_run(self, ctx: bytes | None = None) -> int:
        """Run once with BPF_PROG_TEST_RUN (e.g. SEC("syscall") programs); returns the program's r0."""
        if self.fd < 0:
            raise ValueError(f"program '{self.name}' is not loaded")
        buf = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
        opts = lb.BpfTestRunOpts(
            sz=ctypes.sizeof(lb.BpfTestRunOpts),
            ctx_in=ctypes.cast(buf, ctypes.c_void_p) if buf is not None else None,
            ctx_size_in=len(ctx) if ctx else 0,
        )
        lb.check(lb.bpf_prog_test_run_opts(self.fd, ctypes.byref(opts)), f"test run of program '{self.name}'")
        return opts.retval


def _log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last meaningful verifier lines: the rejection reason is at the end of the log."""
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    kept = [ln for ln in kept if not ln.startswith(("-- BEGIN PROG LOAD LOG", "-- END PROG LOAD LOG"))]
    return "\n".join(kept[-lines:])


def _type_name(map_type: int) -> str:
    coerced = MapType.coerce(map_type)
    return coerced.name if isinstance(coerced, MapType) else str(map_type)


def _verifier_reason(log: str) -> str:
    """The verifier's own complaint: the last line that is not an instruction, a source line or stats."""
    for line in reversed(log.splitlines()):
        if re.match(r"^(processed \d+ insns|verification time|stack depth|\d+: |; |from \d+ to \d+)", line):
            continue
        return line.strip()
    return ""


def _messages_tail(messages: list[str], lines: int = 8) -> str:
    """WARN-looking libbpf lines (debug chatter is noise in an error)."""
    noise = ("elf: section", "found program", "relo #", "CO-RE relocating", "found data map", "found map",
             "collecting relocation", "looking for externs", "collected ", "map '", "loading object",
             "loading kernel BTF", "license of", "CO-RE relocations",
             # libbpf's generic EPERM hint; memlock is not the cause on kernels with memcg accounting
             "try raising 'ulimit -l'")
    useful = [m.removeprefix("libbpf: ") for m in messages if not any(n in m for n in noise)]
    return "\n".join(useful[-lines:])


class BpfObject:
    """A BPF ELF object and everything created from it. Use ``BpfObject.open()``."""

    def __init__(
        self,
        path: Path,
        parameters: Mapping[str, int | bool | str],
        pin_maps: Mapping[str, Path],
        isolate: bool,
    ):
        self.path = path
        self.parameters = dict(parameters)
        self.pin_maps = {name: Path(p) for name, p in pin_maps.items()}
        self.isolate = isolate
        self.programs: dict[str, BpfProgram] = {}
        self.maps: dict[str, BpfMap] = {}
        self.rodata: dict[str, RodataVar] = {}
        # Every integer/bool parameter's value as loaded (the object's default where the config
        # sets none), read back from the .rodata image once parameters are applied.
        self.parameter_values: dict[str, int] = {}
        self.program_errors: dict[str, OtelbpfError] = {}
        self.pin_states: dict[str, str] = {}
        # Maps that must start empty even though a pin exists (the caller knows their old
        # counts mean something else): {name: why}. See set_pin_paths.
        self.fresh_pins: dict[str, str] = {}
        # {map: maps whose pins it is reused with}: a map whose labels name the slots another
        # map keeps (decoder "lookup") is kept only if that map is kept too. See set_pin_paths.
        self.pin_together: dict[str, tuple[str, ...]] = {}
        # New maps whose pin is written only by commit_pins(): until then an old pin at that
        # path (and the running version reading it) stays untouched.
        self.staged_pins: dict[str, Path] = {}
        self.links: list[BpfLink] = []
        self.loaded = False
        self._load_failed = False
        self._obj = 0
        self._prog_ptrs: dict[str, int] = {}
        self._map_ptrs: dict[str, int] = {}
        self._log_bufs: dict[str, ctypes.Array] = {}

    # --- open -------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: os.PathLike | str,
        *,
        parameters: Mapping[str, int | bool | str] | None = None,
        pin_maps: Mapping[str, os.PathLike | str] | None = None,
        isolate: bool = True,
    ) -> BpfObject:
        """Open (not load) an object. Bad ``parameters`` / unknown ``pin_maps`` names: ValueError."""
        obj = cls(Path(path), parameters or {}, {k: Path(v) for k, v in (pin_maps or {}).items()}, isolate)
        try:
            obj._open_elf()
            obj._describe()
            obj.set_pin_paths(obj.pin_maps)
            obj._apply_parameters()
        except BaseException:
            obj.close()
            raise
        return obj

    def set_pin_paths(self, pin_maps: Mapping[str, os.PathLike | str],
                      fresh: Mapping[str, str] | None = None,
                      together: Mapping[str, Sequence[str]] | None = None) -> None:
        """Pin these maps (reusing compatible pins). Callable between open and load, so a
        config can be validated against the object's maps before anything is pinned.

        ``fresh`` names maps whose existing pin must not be reused, with the reason. Such maps
        and those with no or an incompatible pin are created unpinned and pinned only by
        ``commit_pins()``: loading a new version never disturbs the pins of the running one.
        ``together``: {map: other pinned maps}: the map's pin is reused only when all of theirs
        are (counts by slot mean nothing beside a new, empty table of what the slots stand for).
        """
        if self.loaded:
            raise RuntimeError(f"{self.path}: pin paths must be set before load()")
        unknown = sorted(set(pin_maps) - set(self.maps))
        if unknown:
            raise ValueError(
                f"{self.path}: cannot pin unknown map(s) {', '.join(unknown)}; maps: {', '.join(sorted(self.maps)) or 'none'}"
            )
        self.pin_maps = {name: Path(p) for name, p in pin_maps.items()}
        self.fresh_pins = dict(fresh or {})
        self.pin_together = {name: tuple(others) for name, others in (together or {}).items()}
        unpinned = sorted({o for others in self.pin_together.values() for o in others} - set(self.pin_maps))
        if unpinned:
            raise ValueError(f"{self.path}: maps kept together must be pinned too: {', '.join(unpinned)}")

    def _open_elf(self) -> None:
        if not self.path.is_file():
            raise LoadError(self.path, None, "object file does not exist")
        with lb.capture_messages() as messages:
            ptr = lb.bpf_object__open_file(os.fsencode(self.path), None)
        if not ptr:
            err = ctypes.get_errno() or errno.EINVAL
            raise LoadError(self.path, None, f"libbpf cannot open the object: {lb.errno_name(err)}",
                            _messages_tail(messages))
        self._obj = ptr
        self._prog_ptrs.clear()
        self._map_ptrs.clear()
        prog = lb.bpf_object__next_program(ptr, None)
        while prog:
            self._prog_ptrs[lb.bpf_program__name(prog).decode()] = prog
            section = lb.bpf_program__section_name(prog).decode()
            for prefix, (prog_type, attach_type) in TARGET_SECTIONS.items():
                if section.startswith(prefix):
                    lb.bpf_program__set_type(prog, prog_type)
                    lb.bpf_program__set_expected_attach_type(prog, attach_type)
            prog = lb.bpf_object__next_program(ptr, prog)
        m = lb.bpf_object__next_map(ptr, None)
        rodata_ptr = 0
        while m:
            name = lb.bpf_map__name(m).decode()
            if not lb.bpf_map__is_internal(m):
                self._map_ptrs[name] = m
            elif name.endswith(".rodata"):
                rodata_ptr = m
            m = lb.bpf_object__next_map(ptr, m)
        self._rodata_ptr = rodata_ptr

    def _describe(self) -> None:
        for name, p in self._prog_ptrs.items():
            self.programs[name] = BpfProgram(
                name=name,
                section=lb.bpf_program__section_name(p).decode(),
                prog_type=lb.bpf_program__type(p),
                expected_attach_type=lb.bpf_program__expected_attach_type(p),
            )
        for name, m in self._map_ptrs.items():
            # Described from the ELF until load() gives it an fd (fd -1, id 0).
            self.maps[name] = BpfMap(
                -1,
                name=name,
                type=lb.bpf_map__type(m),
                key_size=lb.bpf_map__key_size(m),
                value_size=lb.bpf_map__value_size(m),
                max_entries=lb.bpf_map__max_entries(m),
                flags=lb.bpf_map__map_flags(m),
                id=0,
                owned=False,
            )
        btf = lb.bpf_object__btf(self._obj)
        self.rodata = Btf(btf).rodata_vars() if btf else {}

    def _apply_parameters(self) -> None:
        if not self._rodata_ptr:
            return
        size = ctypes.c_size_t()
        if not self.parameters:
            image = lb.bpf_map__initial_value(self._rodata_ptr, ctypes.byref(size))
            if image:
                self._read_parameter_values(image, size.value)
            return
        unknown = sorted(set(self.parameters) - set(self.rodata))
        if unknown:
            known = ", ".join(f"{v.name}: {v.describe()}" for v in self.rodata.values()) or "none"
            raise ValueError(
                f"{self.path}: unknown parameter(s) {', '.join(unknown)}; "
                f"the object's const volatile globals are: {known}"
            )
        # Before load, the .rodata map's initial value is libbpf's writable copy of the section;
        # load() creates the map from it and freezes it, so the verifier sees these as constants.
        image = lb.check_ptr(lb.bpf_map__initial_value(self._rodata_ptr, ctypes.byref(size)), ".rodata image")
        for name, value in self.parameters.items():
            var = self.rodata[name]
            data = encode_parameter(var, value)
            if var.offset + len(data) > size.value:
                raise ValueError(f"{self.path}: parameter '{name}' lies outside .rodata ({size.value} bytes)")
            ctypes.memmove(image + var.offset, data, len(data))
        self._read_parameter_values(image, size.value)

    def _read_parameter_values(self, image: int, size: int) -> None:
        self.parameter_values = {
            var.name: int.from_bytes(ctypes.string_at(image + var.offset, var.size), sys.byteorder,
                                     signed=var.signed)
            for var in self.rodata.values()
            if var.kind in ("int", "bool") and var.offset + var.size <= size}

    # --- pins -------------------------------------------------------------------------------------

    def _check_pins(self) -> None:
        """Decide per pinned map: reuse a compatible pin, or create a new map to pin at commit."""
        for name, path in self.pin_maps.items():
            want = self.maps[name]
            if name in self.pin_states:  # decided on the first load attempt
                continue
            try:
                fd = lb.check(lb.bpf_obj_get(os.fsencode(path)), f"bpf_obj_get({path})")
            except lb.LibbpfError as exc:
                if exc.errno != errno.ENOENT:
                    raise LoadError(self.path, None, f"map '{name}': cannot open pin {path}: {exc.strerror}") from None
                self.pin_states[name] = "created"
                self.staged_pins[name] = path
                continue
            try:
                # libbpf would refuse to load with an incompatible pin (map_is_reuse_compat);
                # the layout changed on purpose (new program version), so that map starts afresh.
                why = self._pin_mismatch(want, fd) or self.fresh_pins.get(name)
            finally:
                os.close(fd)
            if why is None:
                self.pin_states[name] = "reused"
            else:
                self.pin_states[name] = f"replaced: {why}"
                self.staged_pins[name] = path

        for name, others in self.pin_together.items():
            lost = [o for o in others if self.pin_states.get(o) != "reused"]
            if self.pin_states.get(name) == "reused" and lost:
                self.pin_states[name] = f'replaced: map "{lost[0]}" it is read with starts empty'
                self.staged_pins[name] = self.pin_maps[name]

    def commit_pins(self) -> None:
        """Pin the maps created by load() in place of whatever their paths held (the old version's
        maps, which the old version no longer counts into once it is detached)."""
        for name, path in sorted(self.staged_pins.items()):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            lb.check(lb.bpf_obj_pin(self.maps[name].fd, os.fsencode(path)), f"bpf_obj_pin({path})")
            del self.staged_pins[name]

    @staticmethod
    def _pin_mismatch(want: BpfMap, fd: int) -> str | None:
        try:
            have = map_info(fd)
        except lb.LibbpfError:
            return "the pinned object is not a map"
        want_entries = want.max_entries
        if want.type == MapType.PERF_EVENT_ARRAY and want_entries == 0:
            want_entries = lb.num_possible_cpus()  # libbpf fills in the CPU count at creation
        for field, have_value, want_value in (
            ("type", have.type, int(want.type)),
            ("key_size", have.key_size, want.key_size),
            ("value_size", have.value_size, want.value_size),
            ("max_entries", have.max_entries, want_entries),
            ("flags", have.map_flags, want.flags),
        ):
            if have_value != want_value:
                if field == "type":
                    have_value, want_value = _type_name(have_value), _type_name(want_value)
                return f"{field} {have_value} -> {want_value}"
        return None

    def _set_pin_paths(self) -> None:
        for name, path in self.pin_maps.items():
            if name in self.staged_pins:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            lb.check(lb.bpf_map__set_pin_path(self._map_ptrs[name], os.fsencode(path)),
                     f"bpf_map__set_pin_path({name}, {path})")

    # --- load -------------------------------------------------------------------------------------

    def load(self, *, stage_pins: bool = False) -> None:
        """Create maps and load programs.

        With ``isolate`` (default), a program that fails to load is recorded in ``program_errors``
        (and on its ``BpfProgram.error``) and the others are loaded without it; LoadError is raised
        only when no program loads. Without ``isolate`` the first failure raises.
        ``stage_pins``: leave new maps unpinned until ``commit_pins()`` (a reload that may still
        be rejected); otherwise they are pinned before load() returns.
        """
        if self.loaded or self._load_failed:
            raise ValueError(f"{self.path}: load() was already called; open the object again to retry")
        self._load_failed = True  # until proven otherwise: libbpf cannot load an object twice
        self._check_pins()
        while True:
            self._set_pin_paths()
            for name, p in self._prog_ptrs.items():
                if name in self.program_errors:
                    lb.bpf_program__set_autoload(p, False)
                    continue
                # Log level 0: libbpf loads without a log and, only on failure, reloads that
                # program at level 1 into this buffer (libbpf.c bpf_object_load_prog).
                if name not in self._log_bufs:
                    self._log_bufs[name] = ctypes.create_string_buffer(LOG_BUF_SIZE)
                buf = self._log_bufs[name]
                buf[0] = b"\0"
                lb.bpf_program__set_log_buf(p, buf, LOG_BUF_SIZE)
                lb.bpf_program__set_log_level(p, 0)
            with lb.capture_messages() as messages:
                ret = lb.bpf_object__load(self._obj)
            if ret == 0:
                break
            error = self._load_error(-ret, messages)
            if not self.isolate or error.program is None or error.program in self.program_errors:
                raise error
            self.program_errors[error.program] = error
            self.programs[error.program].error = error
            if all(name in self.program_errors for name in self.programs):
                if len(self.program_errors) == 1:
                    raise error
                raise LoadError(
                    self.path, None if len(self.programs) > 1 else error.program,
                    "no program could be loaded: " + "; ".join(
                        f"{n}: {e.message}" for n, e in self.program_errors.items()), error.log)
            self._reopen()
        self._log_bufs.clear()
        self._load_failed = False
        self.loaded = True
        self._collect_loaded()
        if not stage_pins:
            self.commit_pins()

    def _load_error(self, err: int, messages: list[str]) -> LoadError:
        program = None
        for pattern in (_FAILED_PROG, _ANY_PROG_FAILURE):
            for msg in reversed(messages):
                match = pattern.search(msg)
                if match and match.group(1) in self.programs:
                    program = match.group(1)
                    break
            if program:
                break
        if program is None:
            return LoadError(self.path, None, f"load failed: {lb.errno_name(err)}", _messages_tail(messages))
        buf = self._log_bufs.get(program)
        log = _log_tail(buf.value.decode("utf-8", "replace")) if buf is not None else ""
        # The failing program's errno is in "failed to load: -N"; the object-level ret is often -1.
        match = re.search(rf"prog '{re.escape(program)}': failed to load: -(\d+)", "\n".join(messages))
        perr = int(match.group(1)) if match else err
        prog = self.programs[program]
        if prog.kind in ("fentry", "fexit", "fmod_ret") and perr == errno.EPERM:
            message = "fentry/fexit are not supported by this kernel (BPF_PROG_LOAD: Operation not permitted)"
        elif log:
            reason = _verifier_reason(log)
            message = f"the verifier rejected the program ({lb.errno_name(perr)})" + (f": {reason}" if reason else "")
        else:
            message = f"load failed: {lb.errno_name(perr)}"
        if not log:
            log = _messages_tail(messages)
        return LoadError(self.path, program, message, log)

    def _reopen(self) -> None:
        """A failed bpf_object__load leaves the object unusable: open the ELF again, re-apply settings."""
        lb.bpf_object__close(self._obj)
        self._obj = 0
        self._open_elf()
        self._apply_parameters()

    def _collect_loaded(self) -> None:
        for name, p in self._prog_ptrs.items():
            prog = self.programs[name]
            fd = lb.bpf_program__fd(p)
            if fd < 0:
                continue
            info = prog_info(fd)
            prog.fd, prog.id, prog.tag = fd, info.id, info.tag
        for name, m in self._map_ptrs.items():
            # Our own fd: a BpfMap handed out stays valid and closes independently of libbpf's copy.
            fd = os.dup(lb.check(lb.bpf_map__fd(m), f"bpf_map__fd({name})"))
            info = map_info(fd)
            bpf_map = self.maps[name]
            bpf_map.fd, bpf_map.id, bpf_map._owned = fd, info.id, True
            bpf_map.max_entries, bpf_map.flags = info.max_entries, info.map_flags

    # --- attach -----------------------------------------------------------------------------------

    def _loaded_program(self, name: str) -> tuple[BpfProgram, int]:
        if name not in self.programs:
            raise KeyError(f"{self.path}: no program '{name}'; programs: {', '.join(sorted(self.programs))}")
        prog = self.programs[name]
        if not self.loaded:
            raise ValueError(f"{self.path}: load() before attach()")
        if not prog.loaded:
            why = f"not loaded: {prog.error.message}" if isinstance(prog.error, LoadError) else "not loaded"
            raise AttachError(self.path, name, prog.section, why)
        return prog, self._prog_ptrs[name]

    def attach(self, name: str) -> BpfLink:
        """Attach one program to the target its section names; AttachError says why not.

        ``perf_event/type=T,config=C,frequency=F`` (or ``period=P``) opens that perf event on
        every online CPU, and ``xdp/IFNAME`` attaches to that interface, as ebpf_exporter does;
        the returned link is the first of a perf event's per-CPU links (all are kept).
        """
        prog, ptr = self._loaded_program(name)
        if prog.kind == "perf_event" and prog.section.startswith("perf_event/"):
            try:
                target = perf_event_target(prog.section)
            except ValueError as exc:
                raise AttachError(self.path, name, prog.section, str(exc)) from None
            return self.attach_perf_event(name, **target)[0]
        if prog.kind == "xdp" and prog.section.startswith("xdp/"):
            return self._attach_xdp(prog, ptr)
        if prog.kind in MANUAL_ATTACH_PREFIXES:
            raise AttachError(self.path, name, prog.section,
                              f"SEC(\"{prog.section}\") programs have no attach target in their section"
                              + (" (use attach_perf_event())" if prog.kind == "perf_event" else ""))
        with lb.capture_messages() as messages:
            link = lb.bpf_program__attach(ptr)
            err = ctypes.get_errno()
        if not link:
            raise AttachError(self.path, name, prog.section, attach_reason(prog, err or errno.EINVAL, messages))
        result = BpfLink(link, name, target=prog.section)
        self.links.append(result)
        return result

    def attach_all(self, exclude: Collection[str] = ()) -> dict[str, BpfLink | AttachError]:
        """Attach every loaded program that has its target in its section, but those in
        ``exclude``; failures don't stop the rest."""
        results: dict[str, BpfLink | AttachError] = {}
        for name, prog in self.programs.items():
            targeted = prog.section.startswith(tuple(TARGET_SECTIONS))
            if name in exclude or not prog.loaded or (prog.kind in MANUAL_ATTACH_PREFIXES and not targeted):
                continue
            try:
                results[name] = self.attach(name)
            except AttachError as exc:
                results[name] = exc
        return results

    def attach_perf_event(
        self,
        name: str,
        type: int,
        config: int,
        *,
        sample_period: int = 0,
        sample_freq: int = 0,
        cpus: list[int] | None = None,
    ) -> list[BpfLink]:
        """Open a perf event (e.g. PERF_TYPE_SOFTWARE/PERF_COUNT_SW_CPU_CLOCK) on each CPU and run
        the SEC("perf_event") program on every sample. Give exactly one of period or frequency."""
        from otelbpf.kernel import perf

        prog, ptr = self._loaded_program(name)
        if bool(sample_period) == bool(sample_freq):
            raise ValueError("give exactly one of sample_period or sample_freq")
        links: list[BpfLink] = []
        try:
            for cpu in cpus if cpus is not None else perf.online_cpus():
                try:
                    pfd = perf.open_event(type, config, cpu, sample_period=sample_period, sample_freq=sample_freq)
                except OSError as exc:
                    raise AttachError(self.path, name, prog.section,
                                      f"perf_event_open(type={type}, config={config}, cpu={cpu}): {exc.strerror}") from None
                with lb.capture_messages() as messages:
                    link = lb.bpf_program__attach_perf_event(ptr, pfd)
                    err = ctypes.get_errno()
                if not link:
                    os.close(pfd)
                    raise AttachError(self.path, name, prog.section,
                                      f"attach to perf event on cpu {cpu}: {lb.errno_name(err)}"
                                      + (f" ({_messages_tail(messages, 1)})" if messages else ""))
                links.append(BpfLink(link, name, target=f"perf_event type={type} config={config} cpu={cpu}"))
        except BaseException:
            for link in links:
                link.close()
            raise
        self.links.extend(links)
        return links

    def _attach_xdp(self, prog: BpfProgram, ptr: int) -> BpfLink:
        device = prog.section.removeprefix("xdp/")
        try:
            ifindex = socket.if_nametoindex(device)
        except OSError:
            raise AttachError(self.path, prog.name, prog.section,
                              f'no network interface "{device}" on this host') from None
        with lb.capture_messages() as messages:
            link = lb.bpf_program__attach_xdp(ptr, ifindex)
            err = ctypes.get_errno()
        if not link:
            raise AttachError(self.path, prog.name, prog.section,
                              f"attach XDP to {device}: {lb.errno_name(err or errno.EINVAL)}"
                              + (f" ({_messages_tail(messages, 1)})" if messages else ""))
        result = BpfLink(link, prog.name, target=prog.section)
        self.links.append(result)
        return result

    # --- lifecycle --------------------------------------------------------------------------------

    def detach(self) -> None:
        """Detach every link but keep maps readable: the agent's last read then sees final values."""
        for link in self.links:
            link.close()
        self.links.clear()

    def close(self) -> None:
        """Detach every link, close our map fds and free the libbpf object (unloads programs)."""
        self.detach()
        for bpf_map in self.maps.values():
            bpf_map.close()
        for prog in self.programs.values():
            prog.fd = -1
        if self._obj:
            lb.bpf_object__close(self._obj)
            self._obj = 0

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BpfObject({str(self.path)!r}, programs={sorted(self.programs)}, maps={sorted(self.maps)})"


def perf_event_target(section: str) -> dict[str, int]:
    """``perf_event/type=1,config=0,frequency=99`` → `BpfObject.attach_perf_event` arguments;
    ValueError saying what to write instead."""
    names = {"type": "type", "config": "config", "frequency": "sample_freq",
             "period": "sample_period"}
    out: dict[str, int] = {}
    for item in section.removeprefix("perf_event/").split(","):
        key, sep, value = item.partition("=")
        if not sep or key not in names or not value.isdigit():
            raise ValueError(f'cannot read "{item}": write type=N,config=N and frequency=N or '
                             "period=N (integers), as ebpf_exporter does")
        out[names[key]] = int(value)
    if "type" not in out or "config" not in out or ("sample_freq" in out) == ("sample_period" in out):
        raise ValueError("needs type=, config= and one of frequency= or period=")
    return out


def attach_reason(prog: BpfProgram, err: int, messages: list[str]) -> str:
    """A human reason for an attach failure, from the section kind, errno and kernel features."""
    kind = prog.kind
    target = prog.section.split("/", 1)[1] if "/" in prog.section else ""
    kernel = features.probe()
    if kind in ("kprobe", "ksyscall", "kretsyscall"):
        if not kernel.kprobe:
            return kernel.reasons["kprobe"]
        if err == errno.ENOENT:
            return f"kernel function {target} does not exist or cannot be probed"
    if kind in ("fentry", "fexit", "fmod_ret") and not kernel.fentry:
        return kernel.reasons["fentry"]
    if kind == "tracepoint":
        root = features.tracefs_root()
        if root is None:
            hidden = [r for r in features.TRACEFS_ROOTS if os.path.ismount(r) and not os.access(r, os.X_OK)]
            if hidden:
                return (f"tracefs ({hidden[0]}) is readable by root only: run as root or with "
                        f"CAP_DAC_READ_SEARCH to attach tracepoint {target}")
            return f"tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing) to attach tracepoint {target}"
        if not (root / "events" / target).is_dir():
            return f"tracepoint {target} does not exist"
    if kind in ("raw_tp", "tp_btf") and err == errno.ENOENT:
        return f"raw tracepoint {target} does not exist"
    detail = _messages_tail(messages, 1)
    if kind in ("uprobe", "uretprobe"):
        if not target:
            return "uprobe section names no binary:function (SEC(\"uprobe/PATH:FUNC\"))"
        if err == errno.ENOENT:
            return f"uprobe target {target} not found" + (f" ({detail})" if detail else "")
    return f"attach failed: {lb.errno_name(err)}" + (f" ({detail})" if detail else "")


__all__ = ["BpfObject", "BpfProgram", "attach_reason", "perf_event_target"]
