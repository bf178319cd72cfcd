"""StreamDrainer: one background thread that keeps every stream drained, apart from exporting.

The thread sleeps in one epoll over the fds of all streams (ring buffer map fds, perf event fds)
plus an eventfd used to stop it. On every wake-up it drains *every* stream until it is empty: the
ring buffer wakes a reader only once it has caught up, so a partial read could sleep forever. A
stream flooded faster than it is read yields after a bounded number of batches so the others get
their turn, and the thread then goes round again without sleeping. A poll timeout bounds how long
a perf buffer's tail below its wake-up watermark can wait.

Wake-ups are coalesced: after a drain that caught up, the thread waits `min_interval` before it
polls again, so a trickle of events (each of which would wake it) is read in batches of many
records instead of one drain per record. The kernel keeps the fds ready meanwhile (epoll is
level-triggered and the rings hold the records); the buffers only need room for `min_interval`
of events, far below what they hold at the rates they are sized for.

Export never blocks draining: the flush loop calls `StreamSource.collect`, which holds the
aggregator's lock only to copy the state. A stream whose reader fails is logged once and dropped
from the set; the others keep running.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import sys
import threading

log = logging.getLogger(__name__)

# Ready but nothing to read means a reserved record is still being written (BUSY): don't spin.
_BUSY_BACKOFF = 0.001
_libc = ctypes.CDLL(None, use_errno=True)


def _eventfd() -> int:
    """eventfd(2), non-blocking and close-on-exec, from libc: os.eventfd needs Python 3.10.
    EFD_NONBLOCK and EFD_CLOEXEC have the values of O_NONBLOCK and O_CLOEXEC."""
    fd = _libc.eventfd(0, os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "eventfd")
    return fd


def _eventfd_write(fd: int) -> None:
    os.write(fd, (1).to_bytes(8, sys.byteorder))  # adds 1 to the counter: wakes the poller


class StreamDrainer:
    """Drains the StreamSources it holds on one thread: `add`, `start`, ... `stop`.

    `add`/`remove` may be called before or after `start`, from any thread.
    """

    def __init__(self, *, poll_timeout: float = 0.5, min_interval: float = 0.2,
                 name: str = "otelbpf-streams"):
        self.poll_timeout = poll_timeout
        self.min_interval = min_interval
        self._name = name
        self._sources: dict[int, object] = {}  # id(source) → source
        self._fd_owner: dict[int, int] = {}
        self._lock = threading.Lock()
        # Held while draining: a reader is used by one thread at a time, and `remove` waits for
        # the drain in progress so that a removed source can be closed safely. Re-entrant because
        # a failing source is removed from inside the drain.
        self._drain_lock = threading.RLock()
        self._epoll = select.epoll()
        self._wake = _eventfd()
        self._epoll.register(self._wake, select.EPOLLIN)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures: dict[str, str] = {}  # source name → error, for sources dropped after a failure
        self.pending = False  # the last drain_once left records behind: drain again before sleeping

    def add(self, source) -> None:
        with self._lock:
            self._sources[id(source)] = source
            for fd in source.filenos():
                self._epoll.register(fd, select.EPOLLIN)
                self._fd_owner[fd] = id(source)
        _eventfd_write(self._wake)  # drain what is already waiting

    def remove(self, source) -> None:
        with self._drain_lock, self._lock:
            if self._sources.pop(id(source), None) is None:
                return
            for fd, owner in list(self._fd_owner.items()):
                if owner == id(source):
                    self._epoll.unregister(fd)
                    del self._fd_owner[fd]

    def drain_once(self) -> int:
        """Drain every source on the calling thread; records read. A source flooded faster than
        it is read gives up after a bounded number of batches (see `pending`)."""
        with self._drain_lock:
            with self._lock:
                sources = list(self._sources.values())
            total = 0
            self.pending = False
            for source in sources:
                try:
                    total += source.drain()
                    self.pending |= not source.caught_up
                except Exception as e:  # isolate: one broken stream must not stop the others
                    log.exception("stream %s failed and is no longer read", source.name)
                    self.failures[source.name] = str(e)
                    self.remove(source)
            return total

    def _run(self) -> None:
        while not self._stopping.is_set():
            ready = self._epoll.poll(0 if self.pending else self.poll_timeout)
            for fd, _ in ready:
                if fd == self._wake:
                    try:
                        os.read(self._wake, 8)
                    except BlockingIOError:
                        pass
            if self._stopping.is_set():
                break
            got = self.drain_once()
            if ready and not got and all(fd != self._wake for fd, _ in ready):
                self._stopping.wait(_BUSY_BACKOFF)
            elif got and not self.pending:
                # A drain has a fixed cost of ~0.5 ms (numpy set-up per batch): draining per
                # event cost ~2 % of a core at ~150 events/s in the soak, 0.2 s batches ~0.5 %.
                self._stopping.wait(self.min_interval)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("StreamDrainer already started")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (after its current drain), then drain once more on this thread."""
        if self._thread is None:
            return
        self._stopping.set()
        _eventfd_write(self._wake)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("stream drain thread did not stop within %.1fs", timeout)
            return
        self._thread = None
        self.drain_once()

    def close(self) -> None:
        """Stop, then close every source (its reader) and the epoll set."""
        self.stop()
        with self._lock:
            sources = list(self._sources.values())
        for source in sources:
            self.remove(source)
            source.close()
        self._epoll.close()
        os.close(self._wake)

    def __enter__(self) -> StreamDrainer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
