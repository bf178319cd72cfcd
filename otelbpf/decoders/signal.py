"""signal: a signal number → its name, e.g. ``SIGTERM``.

Numbers are this host's (they differ between architectures, and the agent runs on the host whose
kernel produced them). Real-time signals read as ``SIGRTMIN+N``; unknown numbers stay decimal text.
"""

from __future__ import annotations

import signal as signals

from otelbpf.decoders.base import Decoder, as_int, decimal


class SignalDecoder(Decoder):
    name = "signal"

    def decode(self, raw: bytes) -> bytes:
        number = as_int(raw)
        try:
            return signals.Signals(number).name.encode()
        except ValueError:
            pass
        if signals.SIGRTMIN < number <= signals.SIGRTMAX:
            return f"SIGRTMIN+{number - signals.SIGRTMIN}".encode()
        return decimal(number)
