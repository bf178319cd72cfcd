"""Optional HTTP health endpoint for liveness probes (``[health_endpoint]``, off by default).

``GET /`` (or ``/health``) answers JSON: when the flush loop last ran, when an export last
succeeded, which programs are up. The status is 200 while the flush loop keeps running, 503 once
it has not run for ``stale_after`` seconds: a stuck agent is worth restarting, an unreachable
backend is not (restarting the agent would not bring it back), so export failures show in the
body but do not fail the probe. Bound to 127.0.0.1 unless the config names another address.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from otelbpf import __version__, log

_log = log.get("otelbpf.agent.health_endpoint")


@dataclass
class HealthState:
    """What the flush loop reports after each flush; read by the endpoint's thread."""

    stale_after: float  # seconds without a flush before the agent counts as stuck
    started: float = field(default_factory=time.monotonic)
    last_flush: float | None = None  # monotonic
    last_success_ns: int | None = None  # wall clock, ns
    programs_up: tuple[str, ...] = ()
    programs_failed: tuple[str, ...] = ()
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def programs(self, up, failed) -> None:
        with self._lock:
            self.programs_up, self.programs_failed = tuple(sorted(up)), tuple(sorted(failed))

    def flushed(self, ok: bool) -> None:
        with self._lock:
            self.last_flush = time.monotonic()
            if ok:
                self.last_success_ns = time.time_ns()

    def report(self) -> tuple[int, dict]:
        with self._lock:
            now = time.monotonic()
            since = now - (self.last_flush if self.last_flush is not None else self.started)
            last_ok = self.last_success_ns
            programs_up, programs_failed = list(self.programs_up), list(self.programs_failed)
        healthy = since <= self.stale_after
        body = {
            "status": "ok" if healthy else "stuck",
            "version": __version__,
            "seconds_since_flush": round(since, 3),
            "last_successful_export": (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last_ok / 1e9))
                                       if last_ok is not None else None),
            "programs_up": programs_up,
            "programs_failed": programs_failed,
        }
        return (200 if healthy else 503), body


class HealthEndpoint:
    """A tiny HTTP server on its own daemon thread; ``close()`` stops it."""

    def __init__(self, host: str, port: int, report: Callable[[], tuple[int, dict]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path not in ("/", "/health"):
                    self.send_error(404)
                    return
                status, body = report()
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args) -> None:  # probes every few seconds: not worth a line
                pass

        server_class = type("HealthServer", (ThreadingHTTPServer,),
                            {"address_family": socket.AF_INET6 if ":" in host else socket.AF_INET,
                             "daemon_threads": True})
        self._server = server_class((host, port), Handler)
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-endpoint",
                                        daemon=True)
        self._thread.start()
        _log.info("health endpoint listening", address=f"{host}:{self.address[1]}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
