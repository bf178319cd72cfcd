"""What the agent sees of exporting: the ``Exporter`` interface and its ``ExportOutcome``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from otelbpf.metrics.model import Metric, MetricBatch, Resource


@dataclass(frozen=True)
class ExportOutcome:
    """Result of one ``Exporter.export`` call (all its attempts).

    ``success`` is True when the backend accepted the request, including a partial success
    (``rejected_points`` > 0): the data must then not be sent again. When False the data is
    dropped; ``retryable`` says whether the last failure was transient (the deadline ran out)
    or permanent (the backend refuses this data, e.g. HTTP 400 for delta sums on Mimir).
    """

    success: bool
    data_points: int
    attempts: int
    rejected_points: int = 0
    message: str = ""  # last error, or the backend's partial-success message
    retryable: bool = False
    duration: float = 0.0  # seconds, all attempts and waits

    @property
    def complete(self) -> bool:
        """Accepted with nothing rejected."""
        return self.success and self.rejected_points == 0


class Exporter(Protocol):
    def export(
        self,
        resource: Resource,
        batches: Sequence[MetricBatch],
        *,
        deadline: float | None = None,
    ) -> ExportOutcome: ...

    def self_metrics(self, now_ns: int) -> list[Metric]: ...

    def describe(self) -> dict[str, object]:
        """protocol, endpoint, header names...: safe to log (no header values)."""
        ...

    def shutdown(self) -> None: ...
