"""The metric data model every stage exchanges: frozen, network-free, cheap to build and compare.

Readers and aggregators produce these objects; the export stage encodes them to OTLP or prints
them. Attribute sets are tuples of (key, value) pairs so that points are hashable and ordered the
way the config declared the labels.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, Union

# A tuple is an array attribute (homogeneous, as OTLP's ArrayValue), e.g. bpf.map.programs.
AttributeValue = Union[str, bool, int, float, tuple]
Attributes = tuple[tuple[str, AttributeValue], ...]


class Temporality(enum.IntEnum):
    """Values match OTLP's AggregationTemporality enum."""

    DELTA = 1
    CUMULATIVE = 2


class MetricKind(enum.Enum):
    SUM = "sum"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    EXPONENTIAL_HISTOGRAM = "exponential_histogram"


@dataclass(frozen=True, slots=True)
class NumberPoint:
    attributes: Attributes
    value: int | float
    time_ns: int
    start_time_ns: int = 0  # ignored for gauges


@dataclass(frozen=True, slots=True)
class HistogramPoint:
    """Explicit-bucket histogram: ``bucket_counts`` has ``len(bounds) + 1`` entries.

    Bucket i counts (bounds[i-1], bounds[i]], the last bucket (bounds[-1], +inf), as OTLP defines.
    """

    attributes: Attributes
    start_time_ns: int
    time_ns: int
    count: int
    sum: int | float
    bounds: tuple[float, ...]
    bucket_counts: tuple[int, ...]
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class ExponentialHistogramPoint:
    """Exponential histogram: positive bucket ``offset + i`` counts (base^(offset+i), base^(offset+i+1)].

    base = 2 ** (2 ** -scale). Values with |v| <= zero_threshold are in ``zero_count``.
    min/max are None when the source cannot know them (kernel slot maps never do).
    """

    attributes: Attributes
    start_time_ns: int
    time_ns: int
    count: int
    sum: int | float
    scale: int
    zero_count: int
    positive_offset: int
    positive_counts: tuple[int, ...]
    negative_offset: int = 0
    negative_counts: tuple[int, ...] = ()
    zero_threshold: float = 0.0
    min: float | None = None
    max: float | None = None


Point = Union[NumberPoint, HistogramPoint, ExponentialHistogramPoint]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    description: str
    unit: str
    kind: MetricKind
    points: tuple[Point, ...]
    temporality: Temporality = Temporality.CUMULATIVE
    monotonic: bool = True  # only meaningful for SUM


@dataclass(frozen=True, slots=True)
class MetricBatch:
    """The metrics of one source for one collection, exported under one instrumentation scope."""

    scope: str
    metrics: tuple[Metric, ...]
    scope_version: str = ""


@dataclass(frozen=True, slots=True)
class Resource:
    attributes: tuple[tuple[str, AttributeValue], ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, AttributeValue]:
        return dict(self.attributes)


class MetricSource(Protocol):
    """Anything the agent collects from once per interval (a program's maps, a stream, a builtin)."""

    name: str

    def collect(self, now_ns: int) -> Sequence[Metric]: ...
