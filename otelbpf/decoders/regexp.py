"""regexp: keep only series whose value matches one of ``regexps``; others are dropped.

``{ name = "regexp", regexps = ["^sshd$", "^nginx"] }``. Python ``re`` syntax, searched (not
anchored) in the value's text; the value passes through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from otelbpf.decoders.base import Decoder, as_text


class RegexpDecoder(Decoder):
    name = "regexp"
    option_names = ("regexps",)

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

    def decode(self, raw: bytes) -> bytes | None:
        text = as_text(raw)
        return raw if any(p.search(text) for p in self.patterns) else None
