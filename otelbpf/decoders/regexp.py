"""regexp: keep only series whose value matches one of ``regexps``; others are dropped.

``{ name = "regexp", regexps = ["^sshd$", "^nginx"] }``. Python ``re`` syntax, searched (not
anchored) in the value's text; the value passes through unchanged. With ``value = "match"`` the
label becomes what matched, as in ebpf_exporter (its YAML configs get this): the first pattern
that matches gives its one capture group, or the whole match when it has no group (a pattern
with several groups is skipped, as ebpf_exporter skips it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from otelbpf.decoders.base import Decoder, as_text


class RegexpDecoder(Decoder):
    name = "regexp"
    option_names = ("regexps", "value")
    VALUES = ("input", "match")

    def __init__(self, options: Mapping[str, Any]):
        super().__init__(options)
        patterns = options.get("regexps")
        if isinstance(patterns, str) or not isinstance(patterns, Sequence) or not patterns:
            raise ValueError('regexp needs a non-empty array: regexps = ["^sshd$"]')
        compiled = []
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise ValueError(f"regexps entries must be strings, got {pattern!r}")
            try:
                compiled.append(re.compile(pattern))
            except (re.error, RecursionError, OverflowError) as exc:
                raise ValueError(f"invalid regexp {pattern!r}: {exc}") from None
        self.patterns = tuple(compiled)
        value = options.get("value", "input")
        if value not in self.VALUES:
            raise ValueError(f'value must be "input" (the label unchanged) or "match" (what '
                             f"matched), got {value!r}")
        self.match_value = value == "match"

    def decode(self, raw: bytes) -> bytes | None:
        text = as_text(raw)
        if not self.match_value:
            return raw if any(p.search(text) for p in self.patterns) else None
        for pattern in self.patterns:
            found = pattern.search(text)
            if found is None or pattern.groups > 1:
                continue
            return (found.group(1) or "" if pattern.groups else found.group(0)).encode()
        return None
