"""Readable text of what would be pushed, one line per series, printed once per interval.

    == otelbpf export at 2026-11-26T01:20:00.000Z: 2 metrics, 2 data points ==
    resource: service.name=otelbpf host.name=vm ...
    scope otelbpf.program.syscalls 0.1.0
      # syscalls: sum, cumulative, monotonic - Syscalls by name
      syscalls{syscall=read} 1234 {call}
      # bio.latency: exponential histogram, cumulative, scale 0 - Block I/O latency
      bio.latency{disk=sda} count=15 sum=9000 us  [0, 1]: 3  (512, 1024]: 7  (1024, 2048]: 5

Histogram lines list only the non-empty buckets, with the bounds each one covers.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TextIO

from otelbpf.export.outcome import ExportOutcome
from otelbpf.metrics.model import (
    AttributeValue,
    Attributes,
    ExponentialHistogramPoint,
    HistogramPoint,
    Metric,
    MetricBatch,
    MetricKind,
    NumberPoint,
    Resource,
    Temporality,
)

_NEEDS_QUOTES = set(',{}= "\\\n\t')


class ConsoleExporter:
    """Writes each export to ``stream`` (default stdout); no retries, no self-metrics."""

    protocol = "console"
    endpoint = "console"
    header_names: tuple[str, ...] = ()

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream if stream is not None else sys.stdout

    def export(
        self,
        resource: Resource,
        batches: Sequence[MetricBatch],
        *,
        deadline: float | None = None,
    ) -> ExportOutcome:
        started = time.monotonic()
        text = format_export(resource, batches)
        points = sum(len(m.points) for b in batches for m in b.metrics)
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError) as error:  # closed pipe or closed file
            return ExportOutcome(
                success=False,
                data_points=points,
                attempts=1,
                message=f"console: {error}",
                duration=time.monotonic() - started,
            )
        return ExportOutcome(
            success=True, data_points=points, attempts=1, duration=time.monotonic() - started
        )

    def self_metrics(self, now_ns: int) -> list[Metric]:
        return []

    def describe(self) -> dict[str, object]:
        return {"protocol": "console"}

    def shutdown(self) -> None:
        pass


def format_export(resource: Resource, batches: Sequence[MetricBatch]) -> str:
    metrics = [m for b in batches for m in b.metrics]
    points = sum(len(m.points) for m in metrics)
    times = [p.time_ns for m in metrics for p in m.points]
    when = f" at {_timestamp(max(times))}" if times else ""
    lines = [f"== otelbpf export{when}: {len(metrics)} metrics, {points} data points =="]
    if resource.attributes:
        lines.append(
            "resource: " + " ".join(f"{k}={_value(v)}" for k, v in resource.attributes)
        )
    for batch in batches:
        if not batch.metrics:
            continue
        version = f" {batch.scope_version}" if batch.scope_version else ""
        lines.append(f"scope {batch.scope}{version}")
        for metric in batch.metrics:
            lines.append("  " + _metric_header(metric))
            if not metric.points:
                lines.append("    (no data points)")
            for point in metric.points:
                lines.append("  " + format_point(metric, point))
    return "\n".join(lines) + "\n"


def format_point(metric: Metric, point) -> str:
    series = metric.name + _attributes(point.attributes)
    unit = f" {metric.unit}" if metric.unit else ""
    if isinstance(point, NumberPoint):
        return f"{series} {_number(point.value)}{unit}"
    head = f"{series} count={point.count} sum={_number(point.sum)}{unit}"
    if point.min is not None:
        head += f" min={_number(point.min)}"
    if point.max is not None:
        head += f" max={_number(point.max)}"
    if isinstance(point, HistogramPoint):
        buckets = explicit_buckets(point)
    elif isinstance(point, ExponentialHistogramPoint):
        buckets = exponential_buckets(point)
    else:
        raise TypeError(f"metric {metric.name}: unknown point type {type(point).__name__}")
    return head + "".join(f"  {label}: {count}" for label, count in buckets)


def explicit_buckets(point: HistogramPoint) -> list[tuple[str, int]]:
    """Non-empty buckets as ``("(lo, hi]", count)``; first (-inf, b0], last (bN, +inf)."""
    bounds = ("-inf",) + tuple(_number(b) for b in point.bounds) + ("+inf",)
    out = []
    for i, count in enumerate(point.bucket_counts):
        if count:
            close = ")" if i == len(point.bucket_counts) - 1 else "]"
            out.append((f"({bounds[i]}, {bounds[i + 1]}{close}", count))
    return out


def exponential_buckets(point: ExponentialHistogramPoint) -> list[tuple[str, int]]:
    """Non-empty buckets, most negative first: ``[-hi, -lo)``, the zero bucket ``[0, t]`` (or
    ``[-t, t]`` when there are negative values), then ``(lo, hi]``."""
    out = []
    scale = point.scale
    for i in reversed(range(len(point.negative_counts))):
        count = point.negative_counts[i]
        if count:
            index = point.negative_offset + i
            lo, hi = bucket_bound(index, scale), bucket_bound(index + 1, scale)
            out.append((f"[-{hi}, -{lo})", count))
    if point.zero_count:
        t = _number(point.zero_threshold)
        low = f"-{t}" if point.negative_counts and point.zero_threshold else "0"
        out.append((f"[{low}, {t}]", point.zero_count))
    for i, count in enumerate(point.positive_counts):
        if count:
            index = point.positive_offset + i
            lo, hi = bucket_bound(index, scale), bucket_bound(index + 1, scale)
            out.append((f"({lo}, {hi}]", count))
    return out


def bucket_bound(index: int, scale: int) -> str:
    """base^index for base = 2^(2^-scale), exact for scale <= 0 (powers of two)."""
    if scale <= 0:
        exponent = index << -scale
        if exponent >= 0:
            return str(1 << exponent)
        return _number(2.0**exponent)
    return _number(2.0 ** (index / (1 << scale)))


def _metric_header(metric: Metric) -> str:
    kind = metric.kind.value.replace("_", " ")
    details = [kind]
    if metric.kind is not MetricKind.GAUGE:
        details.append("delta" if metric.temporality is Temporality.DELTA else "cumulative")
    if metric.kind is MetricKind.SUM:
        details.append("monotonic" if metric.monotonic else "non-monotonic")
    if metric.kind is MetricKind.EXPONENTIAL_HISTOGRAM and metric.points:
        scales = sorted({p.scale for p in metric.points})
        details.append("scale " + ",".join(str(s) for s in scales))
    text = f"# {metric.name}: {', '.join(details)}"
    if metric.description:
        text += f" - {metric.description}"
    return text


def _attributes(attributes: Attributes) -> str:
    if not attributes:
        return ""
    return "{" + ",".join(f"{k}={_value(v)}" for k, v in attributes) + "}"


def _value(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if not value or _NEEDS_QUOTES.intersection(value):
            return json.dumps(value, ensure_ascii=False)
        return value
    if isinstance(value, tuple):
        return "[" + ",".join(_value(v) for v in value) + "]"
    return _number(value)


def _number(value: int | float) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return format(value, ".6g")
    return str(value)


def _timestamp(time_ns: int) -> str:
    moment = datetime.fromtimestamp(time_ns / 1e9, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
