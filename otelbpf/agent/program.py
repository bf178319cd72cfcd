"""One configured program: its BPF object, links, and the metrics read from its maps and streams.

Everything that can go wrong with one program (bad config, verifier rejection, a kprobe on a
kernel without kprobes, a decoder that chokes on a key) stays inside this program: the agent
keeps running the others and reports the failure as ``otelbpf.program.*`` metrics and log lines.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from otelbpf import log
from otelbpf.aggregate.buckets import BucketLayout
from otelbpf.aggregate.cardinality import CardinalityLimiter
from otelbpf.aggregate.maps import counter_metric, histogram_metric
from otelbpf.agent.state import AgentState
from otelbpf.config.agent import LimitsConfig
from otelbpf.config.program import CounterConfig, HistogramConfig, ProgramConfig
from otelbpf.config.validate import validate_against_object
from otelbpf.decode.labels import KeyDecoder
from otelbpf.errors import AttachError, ConfigError, ConfigErrors, OtelbpfError
from otelbpf.kernel import BpfObject
from otelbpf.kernel.maps import BpfMap
from otelbpf.metrics.model import Metric, MetricKind, NumberPoint
from otelbpf.streams import StreamDrainer, StreamSource, open_stream

_log = log.get("otelbpf.program")


def config_layout(metric: CounterConfig | HistogramConfig) -> str:
    """How the config reads a map's bytes (label sizes and padding, bucket settings).

    The map definition itself is guarded by the kernel layer (an incompatible pin is replaced);
    this guards what it can't see: the same bytes read with a new meaning. Names and help are
    left out, so renaming a label keeps the counts and their start time.
    """
    parts: list = [[(lbl.size, lbl.padding) for lbl in metric.labels]]
    if isinstance(metric, HistogramConfig):
        parts += [metric.bucket_type, metric.bucket_min, metric.bucket_max,
                  list(metric.bucket_keys), metric.bucket_multiplier]
        if metric.bucket_type == "exponential":  # indexes at another scale are other buckets
            parts.append(metric.bucket_scale)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


@dataclass
class MapMetric:
    """A configured counter or histogram read from one map each interval."""

    config: CounterConfig | HistogramConfig
    bpf_map: BpfMap
    decoder: KeyDecoder
    start_ns: int
    limiter: CardinalityLimiter
    layout: BucketLayout | None = None
    failures: int = 0

    def collect(self, now_ns: int) -> Metric:
        snapshot = self.bpf_map.read_all()
        cpu_label = self.config.per_cpu == "label"
        if self.layout is None:
            metric = counter_metric(self.config, snapshot, self.decoder, self.start_ns, now_ns,
                                    cpu_label=cpu_label)
        else:
            metric = histogram_metric(self.config, snapshot, self.decoder, self.layout,
                                      self.start_ns, now_ns, cpu_label=cpu_label)
        return self.limiter.apply(metric)


@dataclass
class LoadedProgram:
    config: ProgramConfig
    obj: BpfObject
    links: dict[str, object]
    problems: dict[str, OtelbpfError]
    map_metrics: list[MapMetric]
    streams: list[StreamSource] = field(default_factory=list)
    drainer: StreamDrainer | None = None

    @classmethod
    def load(cls, cfg: ProgramConfig, *, state: AgentState, limits: LimitsConfig,
             drainer: StreamDrainer | None = None) -> LoadedProgram:
        """Open, load, validate and attach. Raises OtelbpfError when nothing of it can run."""
        if not cfg.object.exists():
            raise ConfigError(cfg.path, None, "object", f"object file {cfg.object} does not exist",
                              "build it with `make -C bpf` or set `object = \"…\"` in this file")
        try:
            obj = BpfObject.open(cfg.object, parameters=cfg.parameters)
        except ValueError as exc:  # parameters that don't match the object's .rodata
            raise ConfigError(cfg.path, "parameters", None, str(exc),
                              "use the names and types of the program's const volatile globals") from None
        streams: list[StreamSource] = []
        try:
            errors = validate_against_object(cfg, obj.maps)
            if errors:
                raise ConfigErrors(errors)
            # Pin only once the config is known to fit the object: a typo must not leave pins.
            layouts = {m.map: config_layout(m) for m in (*cfg.counters, *cfg.histograms)}
            obj.set_pin_paths(state.pin_paths(cfg.name, layouts))
            obj.load()
            # Readers exist before anything is attached, so the first event already has a reader.
            for sc in cfg.streams:
                streams.append(open_stream(sc, obj.maps, program=cfg.name,
                                           default_cardinality_limit=limits.cardinality))
            links: dict[str, object] = {}
            problems: dict[str, OtelbpfError] = dict(obj.program_errors)
            for name, result in obj.attach_all().items():
                if isinstance(result, AttachError):
                    problems[name] = result
                    _log.error("program not attached", program=cfg.name, bpf_program=name,
                               reason=result.reason)
                else:
                    links[name] = result
            for name, err in problems.items():
                if name not in links and not isinstance(err, AttachError):
                    _log.error("program not loaded", program=cfg.name, bpf_program=name,
                               reason=str(err))
            now_ns = time.time_ns()
            pin_states = obj.pin_states
            map_metrics = []
            limiter = CardinalityLimiter(limits.cardinality)
            for metric in (*cfg.counters, *cfg.histograms):
                bpf_map = obj.maps[metric.map]
                start = state.map_start(cfg.name, metric.map, pin_states.get(metric.map),
                                        layouts[metric.map], now_ns)
                if start.reason != "reused":
                    _log.info("series start", program=cfg.name, map=metric.map, reason=start.reason)
                labels = metric.labels
                layout = None
                if isinstance(metric, HistogramConfig):
                    labels = metric.labels[:-1]  # the last label is the bucket slot
                    layout = BucketLayout.from_config(metric)
                map_metrics.append(MapMetric(metric, bpf_map, KeyDecoder(labels, limits.label_cache),
                                             start.start_ns, limiter, layout))
        except BaseException:
            for stream in streams:
                stream.close()
            obj.close()
            raise
        if drainer is not None:
            for stream in streams:
                drainer.add(stream)
        return cls(cfg, obj, links, problems, map_metrics, streams, drainer)

    @property
    def name(self) -> str:
        return self.config.name

    def collect(self, now_ns: int) -> list[Metric]:
        metrics = []
        for mm in self.map_metrics:
            try:
                metrics.append(mm.collect(now_ns))
                mm.failures = 0
            except Exception as exc:  # one broken metric must not hide the others
                mm.failures += 1
                if mm.failures in (1, 10, 100) or mm.failures % 1000 == 0:
                    _log.error("cannot read metric", program=self.name, metric=mm.config.name,
                               map=mm.config.map, error=str(exc), failures=mm.failures)
        for stream in self.streams:
            try:
                metrics.extend(stream.collect(now_ns))
            except Exception as exc:
                _log.error("cannot collect stream", program=self.name, stream=stream.name,
                           error=str(exc))
        return metrics

    def attach_points(self, now_ns: int) -> list[NumberPoint]:
        points = []
        for name in sorted(set(self.obj.programs) | set(self.problems)):
            attached = 1 if name in self.links else 0
            points.append(NumberPoint((("otelbpf.program", self.name), ("bpf.program.name", name)),
                                      attached, now_ns))
        return points

    def detach(self) -> None:
        """Stop counting: after this the maps hold their final values for one last read."""
        self.obj.detach()

    def close(self) -> None:
        for stream in self.streams:
            if self.drainer is not None:
                self.drainer.remove(stream)  # waits for a drain in progress
            stream.close()
        self.streams = []
        self.obj.close()


def attach_metric(programs: Sequence[LoadedProgram], failed: dict[str, OtelbpfError],
                  now_ns: int) -> list[Metric]:
    """``otelbpf.program.attached`` (1/0 per BPF program) and ``otelbpf.program.loaded`` (per config)."""
    attached = [p for prog in programs for p in prog.attach_points(now_ns)]
    loaded = [NumberPoint((("otelbpf.program", prog.name),), 1, now_ns) for prog in programs]
    loaded += [NumberPoint((("otelbpf.program", name),), 0, now_ns) for name in sorted(failed)]
    return [
        Metric("otelbpf.program.attached", "1 when the BPF program is attached, 0 when it failed",
               "{program}", MetricKind.GAUGE, tuple(attached)),
        Metric("otelbpf.program.loaded", "1 when the program config loaded, 0 when it failed",
               "{program}", MetricKind.GAUGE, tuple(loaded)),
    ]
