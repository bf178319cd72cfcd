"""The decoder interface: bytes of one label in, bytes of its value out.

A decoder is built once from the options of its config entry and then called for every new raw
key. ``decode`` must never raise on garbage input (wrong length, non-UTF-8, out-of-range
numbers): it returns a readable fallback, or ``None`` to drop the whole series on purpose.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, ClassVar


class Decoder:
    """Base class of every decoder; subclasses set ``name`` and implement ``decode``.

    Subclasses that take options list them in ``option_names`` and read them in ``__init__``
    after calling ``super().__init__(options)``, raising ValueError (message says how to fix
    it) for bad ones.
    """

    name: ClassVar[str]
    option_names: ClassVar[tuple[str, ...]] = ()
    # False when the same input may decode differently later (an interface renamed, a cgroup
    # created): label caches drop such values from time to time instead of keeping them forever.
    stable: ClassVar[bool] = True

    def __init__(self, options: Mapping[str, Any]):
        for key in options:
            if key not in self.option_names:
                close = difflib.get_close_matches(key, self.option_names, n=1)
                if close:
                    hint = f'did you mean "{close[0]}"?'
                elif self.option_names:
                    hint = "it takes: " + ", ".join(self.option_names)
                else:
                    hint = "it takes no options"
                raise ValueError(f'decoder "{self.name}" has no option "{key}" ({hint})')

    def decode(self, raw: bytes) -> bytes | None:
        raise NotImplementedError

    def bind(self, maps: Mapping[str, Any] | None) -> None:
        """Take the program's maps (name -> BpfMap), for decoders that read one of them; the
        others ignore them. ValueError when a map the decoder needs is missing."""

    def refresh(self) -> None:
        """Forget what this decoder remembers about the system; label caches call it when they
        drop the values of an unstable chain, so both refresh together."""

    def __repr__(self) -> str:
        return f"<decoder {self.name}>"


_DECIMAL = re.compile(rb"-?[0-9]{1,40}")


def as_int(raw: bytes) -> int:
    """The number a numeric decoder was handed.

    Chains usually start with ``uint``, which leaves decimal ASCII (ebpf_exporter's convention);
    a decoder placed first sees the raw little-endian bytes instead. ASCII decimals (``-``
    allowed) are read as text, anything else as a little-endian unsigned integer. (A raw
    1-byte key holding 0x30-0x39 is therefore read as a digit: start such chains with uint.)
    """
    if _DECIMAL.fullmatch(raw):
        return int(raw)
    return int.from_bytes(raw, "little")


# Python refuses int -> decimal str beyond 4300 digits (sys.get_int_max_str_digits) with a
# ValueError; a wide key (or a chain feeding decimal text back into a numeric decoder) gets there.
_MAX_DECIMAL_BITS = 14_000  # about 4200 decimal digits


def decimal(number: int) -> bytes:
    """``number`` as decimal text, or as 0x-hex when it is too long for a decimal string."""
    if number.bit_length() > _MAX_DECIMAL_BITS:
        return hex(number).encode()
    return str(number).encode()


def unknown_prefix(options: Mapping[str, Any]) -> bytes:
    """The ``unknown_prefix`` option of decoders whose lookups can miss: text put before the
    value that could not be resolved (ebpf_exporter writes ``unknown:<value>``). Default none."""
    prefix = options.get("unknown_prefix", "")
    if not isinstance(prefix, str):
        raise ValueError('unknown_prefix must be a string, e.g. "unknown:"')
    return prefix.encode()


def as_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")
