"""ctypes prototypes of the system libbpf (libbpf.so.1), errno helpers and libbpf message capture.

Every function used anywhere in otelbpf is declared here with argtypes/restype, so a wrong call
fails in Python instead of corrupting memory. libbpf 1.x conventions (libbpf 1.0 "strict mode" is
the only mode): integer-returning APIs return ``-errno`` on failure, pointer-returning APIs return
NULL and set ``errno``. ``check()`` and ``check_ptr()`` turn both into ``LibbpfError``.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_int32,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)

log = logging.getLogger("otelbpf.libbpf")

lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
libc = ctypes.CDLL("libc.so.6", use_errno=True)

# The kernel's ENOTSUPP (524) is not in Python's errno module; BPF_DO_BATCH returns it for map
# types without batch ops (kernel/bpf/syscall.c).
ENOTSUPP = 524


class LibbpfError(OSError):
    """A libbpf / bpf(2) call failed. ``errno`` is set; ``messages`` holds what libbpf printed."""

    def __init__(self, err: int, what: str, messages: list[str] | None = None):
        super().__init__(err, f"{what}: {errno_name(err)}")
        self.what = what
        self.messages = messages or []


# libbpf's own error codes (enum libbpf_errno, 4000-4099), e.g. 4001 "Invalid ELF format": only
# libbpf_strerror knows their text; os.strerror would say "Unknown error 4001".
LIBBPF_ERRNO_START, LIBBPF_ERRNO_END = 4000, 4100


def errno_name(err: int) -> str:
    if err == ENOTSUPP:
        return "operation not supported by this map/program type (ENOTSUPP)"
    if LIBBPF_ERRNO_START <= err < LIBBPF_ERRNO_END:
        buf = ctypes.create_string_buffer(128)
        if libbpf_strerror(err, buf, len(buf)) == 0:
            return f"{buf.value.decode(errors='replace')} (libbpf error {err})"
    return f"{os.strerror(err)} ({_errno.errorcode.get(err, err)})"


def libbpf_errno(ret: int) -> int:
    """Positive errno for a libbpf integer return value (0 when ``ret`` is not an error)."""
    return -ret if ret < 0 else 0


def check(ret: int, what: str) -> int:
    """Return ``ret`` when >= 0, else raise ``LibbpfError`` with the -errno it encodes."""
    if ret < 0:
        raise LibbpfError(-ret, what)
    return ret


def check_ptr(ptr: int | None, what: str) -> int:
    """Return a non-NULL pointer; on NULL raise with the errno libbpf set."""
    if not ptr:
        err = ctypes.get_errno() or _errno.EINVAL
        raise LibbpfError(err, what)
    return ptr


def _proto(name: str, restype, *argtypes, library=lib):
    fn = getattr(library, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


libbpf_strerror = _proto("libbpf_strerror", c_int, c_int, c_char_p, c_size_t)


# --- option structs (layouts from /usr/include/bpf/bpf.h and libbpf.h, libbpf 1.1) ---------------


class BpfMapCreateOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("btf_fd", c_uint32),
        ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32),
        ("inner_map_fd", c_uint32),
        ("map_flags", c_uint32),
        ("map_extra", c_uint64),
        ("numa_node", c_uint32),
        ("map_ifindex", c_uint32),
    ]


class BpfMapBatchOpts(Structure):
    _fields_ = [("sz", c_size_t), ("elem_flags", c_uint64), ("flags", c_uint64)]


class BpfTestRunOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_uint32),
        ("data_size_out", c_uint32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32),
        ("retval", c_uint32),
        ("repeat", c_int),
        ("duration", c_uint32),
        ("flags", c_uint32),
        ("cpu", c_uint32),
        ("batch_size", c_uint32),
    ]


class BpfProgLoadOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("attempts", c_int),
        ("expected_attach_type", c_int),
        ("prog_btf_fd", c_uint32),
        ("prog_flags", c_uint32),
        ("prog_ifindex", c_uint32),
        ("kern_version", c_uint32),
        ("attach_btf_id", c_uint32),
        ("attach_prog_fd", c_uint32),
        ("attach_btf_obj_fd", c_uint32),
        ("fd_array", c_void_p),
        ("func_info", c_void_p),
        ("func_info_cnt", c_uint32),
        ("func_info_rec_size", c_uint32),
        ("line_info", c_void_p),
        ("line_info_cnt", c_uint32),
        ("line_info_rec_size", c_uint32),
        ("log_level", c_uint32),
        ("log_size", c_uint32),
        ("log_buf", c_void_p),
    ]


class BpfIterAttachOpts(Structure):
    _fields_ = [("sz", c_size_t), ("link_info", c_void_p), ("link_info_len", c_uint32)]


# --- bpf.h: thin bpf(2) wrappers ----------------------------------------------------------------

bpf_map_create = _proto(
    "bpf_map_create", c_int, c_int, c_char_p, c_uint32, c_uint32, c_uint32, POINTER(BpfMapCreateOpts)
)
bpf_map_update_elem = _proto("bpf_map_update_elem", c_int, c_int, c_void_p, c_void_p, c_uint64)
bpf_map_lookup_elem = _proto("bpf_map_lookup_elem", c_int, c_int, c_void_p, c_void_p)
bpf_map_lookup_elem_flags = _proto("bpf_map_lookup_elem_flags", c_int, c_int, c_void_p, c_void_p, c_uint64)
bpf_map_delete_elem = _proto("bpf_map_delete_elem", c_int, c_int, c_void_p)
bpf_map_get_next_key = _proto("bpf_map_get_next_key", c_int, c_int, c_void_p, c_void_p)
_batch_args = (c_int, c_void_p, c_void_p, c_void_p, c_void_p, POINTER(c_uint32), POINTER(BpfMapBatchOpts))
bpf_map_lookup_batch = _proto("bpf_map_lookup_batch", c_int, *_batch_args)
bpf_map_lookup_and_delete_batch = _proto("bpf_map_lookup_and_delete_batch", c_int, *_batch_args)
bpf_map_delete_batch = _proto(
    "bpf_map_delete_batch", c_int, c_int, c_void_p, POINTER(c_uint32), POINTER(BpfMapBatchOpts)
)
bpf_map_update_batch = _proto(
    "bpf_map_update_batch", c_int, c_int, c_void_p, c_void_p, POINTER(c_uint32), POINTER(BpfMapBatchOpts)
)
bpf_obj_pin = _proto("bpf_obj_pin", c_int, c_int, c_char_p)
bpf_obj_get = _proto("bpf_obj_get", c_int, c_char_p)
bpf_iter_create = _proto("bpf_iter_create", c_int, c_int)
bpf_prog_get_next_id = _proto("bpf_prog_get_next_id", c_int, c_uint32, POINTER(c_uint32))
bpf_map_get_next_id = _proto("bpf_map_get_next_id", c_int, c_uint32, POINTER(c_uint32))
bpf_link_get_next_id = _proto("bpf_link_get_next_id", c_int, c_uint32, POINTER(c_uint32))
bpf_prog_get_fd_by_id = _proto("bpf_prog_get_fd_by_id", c_int, c_uint32)
bpf_map_get_fd_by_id = _proto("bpf_map_get_fd_by_id", c_int, c_uint32)
bpf_link_get_fd_by_id = _proto("bpf_link_get_fd_by_id", c_int, c_uint32)
# Attach a program by fd (a program whose libbpf object is gone: one an earlier process left pinned).
bpf_raw_tracepoint_open = _proto("bpf_raw_tracepoint_open", c_int, c_char_p, c_int)
bpf_link_create = _proto("bpf_link_create", c_int, c_int, c_int, c_int, c_void_p)
bpf_obj_get_info_by_fd = _proto("bpf_obj_get_info_by_fd", c_int, c_int, c_void_p, POINTER(c_uint32))
bpf_enable_stats = _proto("bpf_enable_stats", c_int, c_int)
bpf_prog_load = _proto(
    "bpf_prog_load", c_int, c_int, c_char_p, c_char_p, c_void_p, c_size_t, POINTER(BpfProgLoadOpts)
)
bpf_prog_test_run_opts = _proto("bpf_prog_test_run_opts", c_int, c_int, POINTER(BpfTestRunOpts))

# --- libbpf.h: objects, programs, maps, links ----------------------------------------------------

bpf_object__open_file = _proto("bpf_object__open_file", c_void_p, c_char_p, c_void_p)
bpf_object__load = _proto("bpf_object__load", c_int, c_void_p)
bpf_object__close = _proto("bpf_object__close", None, c_void_p)
bpf_object__name = _proto("bpf_object__name", c_char_p, c_void_p)
bpf_object__btf = _proto("bpf_object__btf", c_void_p, c_void_p)
bpf_object__next_program = _proto("bpf_object__next_program", c_void_p, c_void_p, c_void_p)
bpf_object__next_map = _proto("bpf_object__next_map", c_void_p, c_void_p, c_void_p)
bpf_object__find_program_by_name = _proto("bpf_object__find_program_by_name", c_void_p, c_void_p, c_char_p)
bpf_object__find_map_by_name = _proto("bpf_object__find_map_by_name", c_void_p, c_void_p, c_char_p)

bpf_program__name = _proto("bpf_program__name", c_char_p, c_void_p)
bpf_program__section_name = _proto("bpf_program__section_name", c_char_p, c_void_p)
bpf_program__autoload = _proto("bpf_program__autoload", c_bool, c_void_p)
bpf_program__set_autoload = _proto("bpf_program__set_autoload", c_int, c_void_p, c_bool)
bpf_program__fd = _proto("bpf_program__fd", c_int, c_void_p)
bpf_program__type = _proto("bpf_program__type", c_int, c_void_p)
bpf_program__expected_attach_type = _proto("bpf_program__expected_attach_type", c_int, c_void_p)
bpf_program__set_log_level = _proto("bpf_program__set_log_level", c_int, c_void_p, c_uint32)
bpf_program__set_log_buf = _proto("bpf_program__set_log_buf", c_int, c_void_p, c_void_p, c_size_t)
bpf_program__attach = _proto("bpf_program__attach", c_void_p, c_void_p)
bpf_program__attach_perf_event = _proto("bpf_program__attach_perf_event", c_void_p, c_void_p, c_int)
bpf_program__attach_xdp = _proto("bpf_program__attach_xdp", c_void_p, c_void_p, c_int)
bpf_program__set_type = _proto("bpf_program__set_type", c_int, c_void_p, c_int)
bpf_program__set_expected_attach_type = _proto("bpf_program__set_expected_attach_type", c_int, c_void_p,
                                               c_int)
bpf_program__attach_iter = _proto("bpf_program__attach_iter", c_void_p, c_void_p, POINTER(BpfIterAttachOpts))
bpf_program__attach_tracepoint = _proto(
    "bpf_program__attach_tracepoint", c_void_p, c_void_p, c_char_p, c_char_p
)
bpf_program__attach_raw_tracepoint = _proto("bpf_program__attach_raw_tracepoint", c_void_p, c_void_p, c_char_p)
bpf_program__attach_uprobe = _proto(
    "bpf_program__attach_uprobe", c_void_p, c_void_p, c_bool, c_int, c_char_p, c_size_t
)

bpf_link__fd = _proto("bpf_link__fd", c_int, c_void_p)
bpf_link__open = _proto("bpf_link__open", c_void_p, c_char_p)
bpf_link__pin = _proto("bpf_link__pin", c_int, c_void_p, c_char_p)
bpf_link__unpin = _proto("bpf_link__unpin", c_int, c_void_p)
bpf_link__destroy = _proto("bpf_link__destroy", c_int, c_void_p)

bpf_map__fd = _proto("bpf_map__fd", c_int, c_void_p)
bpf_map__name = _proto("bpf_map__name", c_char_p, c_void_p)
bpf_map__type = _proto("bpf_map__type", c_int, c_void_p)
bpf_map__key_size = _proto("bpf_map__key_size", c_uint32, c_void_p)
bpf_map__value_size = _proto("bpf_map__value_size", c_uint32, c_void_p)
bpf_map__max_entries = _proto("bpf_map__max_entries", c_uint32, c_void_p)
bpf_map__map_flags = _proto("bpf_map__map_flags", c_uint32, c_void_p)
bpf_map__is_internal = _proto("bpf_map__is_internal", c_bool, c_void_p)
bpf_map__set_pin_path = _proto("bpf_map__set_pin_path", c_int, c_void_p, c_char_p)
bpf_map__pin_path = _proto("bpf_map__pin_path", c_char_p, c_void_p)
bpf_map__initial_value = _proto("bpf_map__initial_value", c_void_p, c_void_p, POINTER(c_size_t))
bpf_map__set_autocreate = _proto("bpf_map__set_autocreate", c_int, c_void_p, c_bool)
bpf_map__reuse_fd = _proto("bpf_map__reuse_fd", c_int, c_void_p, c_int)

libbpf_probe_bpf_prog_type = _proto("libbpf_probe_bpf_prog_type", c_int, c_int, c_void_p)
libbpf_probe_bpf_map_type = _proto("libbpf_probe_bpf_map_type", c_int, c_int, c_void_p)
libbpf_probe_bpf_helper = _proto("libbpf_probe_bpf_helper", c_int, c_int, c_int, c_void_p)
libbpf_num_possible_cpus = _proto("libbpf_num_possible_cpus", c_int)
# Type names as libbpf and bpftool spell them ("lru_hash", "tracepoint"); NULL for unknown types.
libbpf_bpf_map_type_str = _proto("libbpf_bpf_map_type_str", c_char_p, c_int)
libbpf_bpf_prog_type_str = _proto("libbpf_bpf_prog_type_str", c_char_p, c_int)

# --- ring / perf buffers (C-side consumers; streams/ may use them) ---------------------------------

RING_BUFFER_SAMPLE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)
ring_buffer__new = _proto("ring_buffer__new", c_void_p, c_int, RING_BUFFER_SAMPLE_FN, c_void_p, c_void_p)
ring_buffer__poll = _proto("ring_buffer__poll", c_int, c_void_p, c_int)
ring_buffer__consume = _proto("ring_buffer__consume", c_int, c_void_p)
ring_buffer__epoll_fd = _proto("ring_buffer__epoll_fd", c_int, c_void_p)
ring_buffer__free = _proto("ring_buffer__free", None, c_void_p)

PERF_BUFFER_SAMPLE_FN = CFUNCTYPE(None, c_void_p, c_int, c_void_p, c_uint32)
PERF_BUFFER_LOST_FN = CFUNCTYPE(None, c_void_p, c_int, c_uint64)
perf_buffer__new = _proto(
    "perf_buffer__new", c_void_p, c_int, c_size_t, PERF_BUFFER_SAMPLE_FN, PERF_BUFFER_LOST_FN, c_void_p, c_void_p
)
perf_buffer__poll = _proto("perf_buffer__poll", c_int, c_void_p, c_int)
perf_buffer__consume = _proto("perf_buffer__consume", c_int, c_void_p)
perf_buffer__epoll_fd = _proto("perf_buffer__epoll_fd", c_int, c_void_p)
perf_buffer__free = _proto("perf_buffer__free", None, c_void_p)

# --- btf.h ----------------------------------------------------------------------------------------

btf__load_vmlinux_btf = _proto("btf__load_vmlinux_btf", c_void_p)
btf__free = _proto("btf__free", None, c_void_p)
btf__find_by_name_kind = _proto("btf__find_by_name_kind", c_int32, c_void_p, c_char_p, c_uint32)
btf__type_by_id = _proto("btf__type_by_id", c_void_p, c_void_p, c_uint32)
btf__name_by_offset = _proto("btf__name_by_offset", c_char_p, c_void_p, c_uint32)
btf__type_cnt = _proto("btf__type_cnt", c_uint32, c_void_p)
btf__load_from_kernel_by_id = _proto("btf__load_from_kernel_by_id", c_void_p, c_uint32)
btf__load_from_kernel_by_id_split = _proto("btf__load_from_kernel_by_id_split", c_void_p, c_uint32, c_void_p)

# --- libc -----------------------------------------------------------------------------------------

# va_list is passed as a pointer on x86-64 (array of one struct) and, being a >16-byte composite,
# by reference on arm64, so c_void_p carries it to vsnprintf on both.
vsnprintf = _proto("vsnprintf", c_int, c_char_p, c_size_t, c_char_p, c_void_p, library=libc)
_errno_location = _proto("__errno_location", POINTER(c_int), library=libc)


@functools.cache
def num_possible_cpus() -> int:
    """Possible CPUs (/sys/devices/system/cpu/possible): the per-CPU map value slot count."""
    return check(libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")


# --- print callback capture ---------------------------------------------------------------------

LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2
_PRINT_FN = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)

recent_messages: deque[str] = deque(maxlen=200)
"""The last libbpf WARN/INFO messages of this process, for diagnostics."""

_local = threading.local()
_MSG_BUF_SIZE = 1 << 16


def _on_print(level: int, fmt: bytes, args: int) -> int:
    # libbpf reads errno after some pr_warn() calls; anything Python does here may clobber it.
    saved = _errno_location()[0]
    try:
        if level == LIBBPF_DEBUG and not getattr(_local, "captures", None):
            return 0
        buf = getattr(_local, "msg_buf", None)
        if buf is None:
            buf = _local.msg_buf = ctypes.create_string_buffer(_MSG_BUF_SIZE)
        # The va_list can be consumed once: a longer message is truncated, not re-formatted.
        n = vsnprintf(buf, _MSG_BUF_SIZE, fmt, args)
        text = buf.value.decode("utf-8", "replace").rstrip("\n")
        if n >= _MSG_BUF_SIZE:
            text += " …(truncated)"
        if level != LIBBPF_DEBUG:
            recent_messages.append(text)
        for sink in getattr(_local, "captures", ()):
            sink.append(text)
        log.debug("libbpf: %s", text)
        return n
    except Exception:  # an exception must never unwind into C
        return 0
    finally:
        _errno_location()[0] = saved


_print_callback = _PRINT_FN(_on_print)  # module-level reference: libbpf keeps the raw pointer
_proto("libbpf_set_print", c_void_p, _PRINT_FN)(_print_callback)


@contextmanager
def capture_messages() -> Iterator[list[str]]:
    """Collect every libbpf message printed by this thread inside the block (nestable)."""
    sink: list[str] = []
    captures = getattr(_local, "captures", None)
    if captures is None:
        captures = _local.captures = []
    captures.append(sink)
    try:
        yield sink
    finally:
        # By identity: nested sinks may hold equal contents.
        captures[:] = [c for c in captures if c is not sink]
