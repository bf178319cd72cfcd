"""StreamDrainer: one background thread that keeps every stream drained, apart from exporting.

The thread sleeps in one epoll over the fds of all streams (ring buffer map fds, perf event fds)
plus a pipe used to wake it (a stream added, stop). On every wake-up it drains *every* stream until it is empty: the
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
aggregator's lock only to copy the state. A stream whose reader fails is taken out of the epoll
set (the others keep running), logged with the reason, reported as `otelbpf.stream.up` 0, and
restarted with a fresh reader after a backoff that doubles per consecutive failure
(`restart_backoff`). Perf buffers follow CPU hotplug every `cpu_check_interval` seconds: a ring
for each CPU that comes online later, the event of a CPU that went offline and back enabled again.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time

log = logging.getLogger(__name__)

# Ready but nothing to read means a reserved record is still being written (BUSY): don't spin.
_BUSY_BACKOFF = 0.001


class StreamDrainer:
    """Drains the StreamSources it holds on one thread: `add`, `start`, ... `stop`.

    `add`/`remove` may be called before or after `start`, from any thread.
    """

    def __init__(self, *, poll_timeout: float = 0.5, min_interval: float = 0.2,
                 name: str = "otelbpf-streams", restart_backoff: tuple[float, float] = (1.0, 60.0),
                 cpu_check_interval: float = 10.0):
        self.poll_timeout = poll_timeout
        self.min_interval = min_interval
        self.restart_backoff = restart_backoff  # (first, most) seconds before restarting a failed reader
        self.cpu_check_interval = cpu_check_interval
        self._next_cpu_check = time.monotonic() + cpu_check_interval
        self._name = name
        self._sources: dict[int, object] = {}  # id(source) → source
        self._fd_owner: dict[int, int] = {}
        self._lock = threading.Lock()
        # Held while draining: a reader is used by one thread at a time, and `remove` waits for
        # the drain in progress so that a removed source can be closed safely. Re-entrant because
        # a failing source is removed from inside the drain.
        self._drain_lock = threading.RLock()
        self._epoll = select.epoll()
        # A pipe rather than os.eventfd, which needs Python 3.10.
        self._wake, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._wake, select.EPOLLIN)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures: dict[str, str] = {}  # source name → last error of a source that failed
        self.pending = False  # the last drain_once left records behind: drain again before sleeping

    def add(self, source) -> None:
        with self._lock:
            self._sources[id(source)] = source
            self._watch(source, source.filenos())
        self._poke()  # drain what is already waiting

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: a wake-up is pending anyway

    def _watch(self, source, fds) -> None:
        for fd in fds:
            self._epoll.register(fd, select.EPOLLIN)
            self._fd_owner[fd] = id(source)

    def _unwatch(self, source) -> None:
        for fd, owner in list(self._fd_owner.items()):
            if owner == id(source):
                try:
                    self._epoll.unregister(fd)
                except OSError:
                    pass  # already closed by a failed reader
                del self._fd_owner[fd]

    def remove(self, source) -> None:
        with self._drain_lock, self._lock:
            if self._sources.pop(id(source), None) is None:
                return
            self._unwatch(source)

    def drain_once(self) -> int:
        """Drain every source on the calling thread; records read. A source flooded faster than
        it is read gives up after a bounded number of batches (see `pending`)."""
        with self._drain_lock:
            with self._lock:
                sources = list(self._sources.values())
            total = 0
            self.pending = False
            now = time.monotonic()
            check_cpus = now >= self._next_cpu_check
            if check_cpus:
                self._next_cpu_check = now + self.cpu_check_interval
            for source in sources:
                if not source.up:
                    if now >= source.retry_at:
                        self._restart(source)
                    else:
                        try:
                            source.discard()
                        except Exception:  # noqa: BLE001 - the reader itself is broken: nothing to count
                            pass
                    continue
                try:
                    if check_cpus:
                        with self._lock:
                            self._watch(source, source.track_online_cpus())
                    total += source.drain()
                    source.failures = 0
                    self.pending |= not source.caught_up
                except Exception as e:  # isolate: one broken stream must not stop the others
                    self._failed(source, e)
            return total

    def _failed(self, source, error: Exception) -> None:
        first, most = self.restart_backoff
        backoff = min(most, first * 2 ** source.failures)
        with self._lock:
            self._unwatch(source)
        source.failed(error, backoff)
        self.failures[source.name] = str(error)
        log.error("stream %s failed (%s); otelbpf.stream.up is 0 and the reader restarts in %.1fs",
                  source.name, source.error, backoff, exc_info=source.failures == 1)

    def _restart(self, source) -> None:
        try:
            source.restart()
        except Exception as e:
            self._failed(source, e)
            return
        with self._lock:
            if id(source) in self._sources:
                self._watch(source, source.filenos())
        log.warning("stream %s restarted with a fresh reader", source.name)

    def _run(self) -> None:
        while not self._stopping.is_set():
            timeout = 0 if self.pending else self.poll_timeout
            with self._lock:
                waits = [s.retry_at - time.monotonic() for s in self._sources.values() if not s.up]
            if waits:
                timeout = max(0.0, min([timeout] + waits))
            ready = self._epoll.poll(timeout)
            for fd, _ in ready:
                if fd == self._wake:
                    try:
                        os.read(self._wake, 4096)
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
        self._poke()
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
        os.close(self._wake_w)

    def __enter__(self) -> StreamDrainer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
