"""errno: an error number → its name, e.g. ``EINVAL``.

Accepts positive numbers, negative ones (kernel return values, from ``int``) and their u32/u64
two's complement (a negative return value read with ``uint``); with ``negative = false`` only
positive numbers name an error, as in ebpf_exporter. Zero and numbers Python's errno module does
not know stay decimal text (after ``unknown_prefix``: ebpf_exporter's ``unknown:<n>``).
"""

from __future__ import annotations

import errno as errno_names
from collections.abc import Mapping
from typing import Any

from otelbpf.decoders.base import Decoder, as_int, decimal, unknown_prefix

# The kernel never returns an error below -MAX_ERRNO (include/linux/err.h).
_MAX_ERRNO = 4095
# Python's table names 35 by its alias EDEADLOCK and lacks 133: the kernel's own names
# (include/uapi/asm-generic/errno*.h), as ebpf_exporter's Go table has them.
_NAMES = {**errno_names.errorcode, 35: "EDEADLK", 133: "EHWPOISON"}


class ErrnoDecoder(Decoder):
    name = "errno"
    option_names = ("unknown_prefix", "negative")

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(options)
        self._unknown_prefix = unknown_prefix(options)
        self._negative = options.get("negative", True)
        if not isinstance(self._negative, bool):
            raise ValueError("negative must be true or false")

    def decode(self, raw: bytes) -> bytes:
        number = as_int(raw)
        if self._negative:
            for width in (32, 64):
                if (1 << width) - _MAX_ERRNO <= number < 1 << width:
                    number -= 1 << width
            number = abs(number)
        elif number < 0:
            return self._unknown_prefix + decimal(number)
        name = _NAMES.get(number)
        return name.encode() if name is not None else self._unknown_prefix + decimal(number)
