"""Config → exporter, and the retry loop shared by both OTLP transports.

``ReliableExporter`` encodes once, then sends with exponential backoff and jitter while failures are
retryable and the deadline allows, honouring the backend's Retry-After / RetryInfo. Each attempt is
bounded by ``timeout``; the whole call by ``deadline`` (the agent passes its next flush time, so an
export never delays the next collection), else by ``max_elapsed`` seconds.

It counts what it does and reports it as ``otelbpf.export.*`` metrics (``self_metrics``), which the
agent exports with the next interval's data.

Header values are secrets (API keys, bearer tokens): only header *names* are ever logged, and
transports redact header values from server messages before they reach a log line or an outcome.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

import structlog

from otelbpf.config.agent import DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT
from otelbpf.export.console import ConsoleExporter
from otelbpf.export.encode import count_data_points, encode
from otelbpf.export.outcome import Exporter, ExportOutcome
from otelbpf.export.transport import SendResult, SendStatus, Transport, redact
from otelbpf.metrics.model import (
    HistogramPoint,
    Metric,
    MetricBatch,
    MetricKind,
    NumberPoint,
    Resource,
)

log = structlog.get_logger("otelbpf.export")

DEFAULT_MAX_ELAPSED = 60.0  # seconds, when the caller gives no deadline
INITIAL_BACKOFF = 1.0  # seconds; doubles per retry up to max_backoff
MIN_ATTEMPT_TIME = 0.05  # no retry is started with less time than this left
DURATION_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def build_exporter(
    export_config,
    *,
    stream: TextIO | None = None,
    max_elapsed: float = DEFAULT_MAX_ELAPSED,
) -> Exporter:
    """The exporter ``export_config`` (an ``otelbpf.config.agent.ExportConfig``) asks for.

    ``temporality`` is not used here: the agent converts to delta before exporting.
    An endpoint of None means the OTLP default for the protocol (localhost:4318 / :4317).
    Raises ValueError for an unusable endpoint, bad header values or unreadable TLS files.
    """
    protocol = export_config.protocol
    if protocol == "console":
        return ConsoleExporter(stream)
    transport: Transport
    if protocol == "http/protobuf":
        from otelbpf.export.http import OtlpHttpExporter

        transport = OtlpHttpExporter(
            export_config.endpoint or DEFAULT_HTTP_ENDPOINT,
            headers=export_config.headers,
            compression=export_config.compression,
            timeout=export_config.timeout,
            certificate=export_config.certificate,
            client_certificate=export_config.client_certificate,
            client_key=export_config.client_key,
            exact_url=bool(export_config.signal_endpoint and export_config.endpoint),
        )
    elif protocol == "grpc":
        from otelbpf.export.grpc import OtlpGrpcExporter

        transport = OtlpGrpcExporter(
            export_config.endpoint or DEFAULT_GRPC_ENDPOINT,
            headers=export_config.headers,
            compression=export_config.compression,
            timeout=export_config.timeout,
            insecure=export_config.insecure,
            certificate=export_config.certificate,
            client_certificate=export_config.client_certificate,
            client_key=export_config.client_key,
        )
    else:
        raise ValueError(
            f"unknown export protocol {protocol!r} (use 'grpc', 'http/protobuf' or 'console')"
        )
    log.info(
        "exporter configured",
        protocol=transport.protocol,
        endpoint=transport.endpoint,
        header_names=list(transport.header_names),
        compression=export_config.compression,
        timeout_s=export_config.timeout,
    )
    return ReliableExporter(
        transport,
        timeout=export_config.timeout,
        max_backoff=export_config.max_backoff,
        max_elapsed=max_elapsed,
    )


class ReliableExporter:
    """Retries a ``Transport`` with backoff and keeps the ``otelbpf.export.*`` counters."""

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float = 10.0,
        max_backoff: float = 30.0,
        max_elapsed: float = DEFAULT_MAX_ELAPSED,
        initial_backoff: float = INITIAL_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        start_time_ns: int | None = None,
    ):
        self.transport = transport
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.max_elapsed = max_elapsed
        self.initial_backoff = initial_backoff
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._stats = ExportStats(time.time_ns() if start_time_ns is None else start_time_ns)

    def export(
        self,
        resource: Resource,
        batches: Sequence[MetricBatch],
        *,
        deadline: float | None = None,
    ) -> ExportOutcome:
        """Send once, retrying transient failures until ``deadline`` (a ``clock()`` value)."""
        request = encode(resource, batches)
        points = count_data_points(request)
        if points == 0:
            return ExportOutcome(success=True, data_points=0, attempts=0)
        started = self._clock()
        if deadline is None:
            deadline = started + self.max_elapsed
        attempt = 0
        while True:
            attempt += 1
            # The first attempt always gets the full timeout; retries only what the deadline leaves.
            timeout = self.timeout if attempt == 1 else min(self.timeout, deadline - self._clock())
            try:
                result = self.transport.send(request, timeout)
            except Exception as error:  # noqa: BLE001 - a transport bug must not stop the agent
                detail = f"{type(error).__name__}: {redact(str(error), self.transport.secrets)}"
                result = SendResult(
                    SendStatus.PERMANENT, f"{self.transport.protocol} transport failed: {detail}"
                )
            self._stats.request(result.status, result.rejected_points)
            if result.ambiguous:
                self._stats.ambiguous()
                log.warning(
                    "export outcome unknown: the request was sent but no answer came; the backend "
                    "may have stored it, and with delta temporality a retry then counts it twice",
                    endpoint=self.transport.endpoint,
                    error=result.message,
                    data_points=points,
                )
            if result.status is SendStatus.SUCCESS:
                return self._finish(result, points, attempt, started, success=True)
            if result.status is SendStatus.PERMANENT:
                log.error(
                    "export failed permanently, data dropped",
                    endpoint=self.transport.endpoint,
                    error=result.message,
                    data_points=points,
                )
                return self._finish(result, points, attempt, started, success=False)
            delay = self._backoff(attempt, result.retry_after)
            if self._clock() + delay + MIN_ATTEMPT_TIME > deadline:
                log.error(
                    "export failed, retries exhausted before the deadline, data dropped",
                    endpoint=self.transport.endpoint,
                    error=result.message,
                    attempts=attempt,
                    data_points=points,
                )
                return self._finish(result, points, attempt, started, success=False)
            log.warning(
                "export failed, retrying",
                endpoint=self.transport.endpoint,
                error=result.message,
                attempt=attempt,
                retry_in_s=round(delay, 3),
            )
            self._stats.retry()
            self._sleep(delay)

    def self_metrics(self, now_ns: int) -> list[Metric]:
        return self._stats.metrics(now_ns)

    def describe(self) -> dict[str, object]:
        return {
            "protocol": self.transport.protocol,
            "endpoint": self.transport.endpoint,
            "header_names": list(self.transport.header_names),
            "timeout_s": self.timeout,
            "max_backoff_s": self.max_backoff,
        }

    def shutdown(self) -> None:
        self.transport.close()

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        # Jitter in [ceiling/2, ceiling] keeps many agents from retrying in lockstep.
        delay = ceiling * (0.5 + 0.5 * self._jitter())
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _finish(
        self, result: SendResult, points: int, attempts: int, started: float, *, success: bool
    ) -> ExportOutcome:
        duration = self._clock() - started
        if success and result.rejected_points:
            log.warning(
                "export partially rejected",
                endpoint=self.transport.endpoint,
                rejected_points=result.rejected_points,
                error=result.message,
            )
        outcome = ExportOutcome(
            success=success,
            data_points=points,
            attempts=attempts,
            rejected_points=result.rejected_points if success else 0,
            message=result.message,
            retryable=result.status is SendStatus.RETRYABLE,
            duration=duration,
        )
        self._stats.export(outcome)
        return outcome


class ExportStats:
    """Thread-safe counters behind the ``otelbpf.export.*`` self-metrics (cumulative)."""

    SCOPE = "otelbpf.export"

    def __init__(self, start_time_ns: int):
        self._lock = threading.Lock()
        self._start_ns = start_time_ns
        self._requests = dict.fromkeys(
            ("success", "partial_success", "retryable_error", "permanent_error"), 0
        )
        self._failures = {"permanent": 0, "retries_exhausted": 0}
        self._retries = 0
        self._ambiguous = 0
        self._points = {"exported": 0, "dropped": 0}
        self._rejected = 0
        self._durations = {
            "success": [0] * (len(DURATION_BOUNDS) + 1),
            "failure": [0] * (len(DURATION_BOUNDS) + 1),
        }
        self._duration_sum = {"success": 0.0, "failure": 0.0}
        self._duration_min: dict[str, float | None] = {"success": None, "failure": None}
        self._duration_max: dict[str, float | None] = {"success": None, "failure": None}

    def request(self, status: SendStatus, rejected: int) -> None:
        if status is SendStatus.SUCCESS:
            key = "partial_success" if rejected else "success"
        elif status is SendStatus.RETRYABLE:
            key = "retryable_error"
        else:
            key = "permanent_error"
        with self._lock:
            self._requests[key] += 1

    def retry(self) -> None:
        with self._lock:
            self._retries += 1

    def ambiguous(self) -> None:
        with self._lock:
            self._ambiguous += 1

    def export(self, outcome: ExportOutcome) -> None:
        key = "success" if outcome.success else "failure"
        bucket = next(
            (i for i, bound in enumerate(DURATION_BOUNDS) if outcome.duration <= bound),
            len(DURATION_BOUNDS),
        )
        with self._lock:
            if outcome.success:
                self._points["exported"] += outcome.data_points - outcome.rejected_points
                self._rejected += outcome.rejected_points
            else:
                self._points["dropped"] += outcome.data_points
                self._failures["retries_exhausted" if outcome.retryable else "permanent"] += 1
            self._durations[key][bucket] += 1
            self._duration_sum[key] += outcome.duration
            low, high = self._duration_min[key], self._duration_max[key]
            seconds = outcome.duration
            self._duration_min[key] = seconds if low is None else min(low, seconds)
            self._duration_max[key] = seconds if high is None else max(high, seconds)

    def metrics(self, now_ns: int) -> list[Metric]:
        start = self._start_ns

        def counter(name: str, unit: str, description: str, values: dict[tuple, int]) -> Metric:
            points = tuple(
                NumberPoint(attributes, value, now_ns, start)
                for attributes, value in values.items()
            )
            return Metric(name, description, unit, MetricKind.SUM, points)

        with self._lock:
            requests = {(("outcome", k),): v for k, v in self._requests.items()}
            failures = {(("reason", k),): v for k, v in self._failures.items()}
            points = {(("outcome", k),): v for k, v in self._points.items()}
            retries, rejected, ambiguous = self._retries, self._rejected, self._ambiguous
            durations = tuple(
                HistogramPoint(
                    attributes=(("outcome", key),),
                    start_time_ns=start,
                    time_ns=now_ns,
                    count=sum(counts),
                    sum=self._duration_sum[key],
                    bounds=DURATION_BOUNDS,
                    bucket_counts=tuple(counts),
                    min=self._duration_min[key],
                    max=self._duration_max[key],
                )
                for key, counts in self._durations.items()
            )
        return [
            counter(
                "otelbpf.export.requests",
                "{request}",
                "OTLP requests sent, by outcome (each retry is a request)",
                requests,
            ),
            counter(
                "otelbpf.export.failures",
                "{export}",
                "Exports whose data was dropped: refused permanently, or retries ran out",
                failures,
            ),
            counter(
                "otelbpf.export.retries",
                "{retry}",
                "Requests repeated after a transient failure",
                {(): retries},
            ),
            counter(
                "otelbpf.export.data_points",
                "{data_point}",
                "Data points accepted by the backend (exported) or given up on (dropped)",
                points,
            ),
            counter(
                "otelbpf.export.ambiguous",
                "{request}",
                "Requests sent without an answer (timed out waiting for the response): the backend "
                "may have stored them",
                {(): ambiguous},
            ),
            counter(
                "otelbpf.export.rejected_points",
                "{data_point}",
                "Data points the backend rejected in a partial success",
                {(): rejected},
            ),
            Metric(
                "otelbpf.export.duration",
                "Time one export took, all attempts and waits included",
                "s",
                MetricKind.HISTOGRAM,
                durations,
            ),
        ]
