"""One configured program: its BPF object, links, and the metrics read from its maps and streams.

Everything that can go wrong with one program (bad config, verifier rejection, a kprobe on a
kernel without kprobes, a decoder that chokes on a key) stays inside this program: the agent
keeps running the others and reports the failure as ``otelbpf.program.*`` metrics and log lines.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from otelbpf import log
from otelbpf.aggregate.buckets import BucketLayout
from otelbpf.aggregate.cardinality import CardinalityLimiter, MonotonicSeries
from otelbpf.aggregate.maps import OutOfRangeSlots, counter_metric, histogram_metric
from otelbpf.agent.state import AgentState
from otelbpf.config.agent import ExportConfig, LimitsConfig
from otelbpf.config.program import CounterConfig, HistogramConfig, ProgramConfig
from otelbpf.config.validate import validate_against_object
from otelbpf.labels.keys import KeyDecoder
from otelbpf.errors import AttachError, ConfigError, ConfigErrors, LoadError, OtelbpfError
from otelbpf.kernel import BpfObject
from otelbpf.kernel import libbpf as lb
from otelbpf.kernel.links import BpfLink
from otelbpf.kernel.maps import BpfMap, MapSnapshot
from otelbpf.kernel.pinned_programs import PinnedProgram
from otelbpf.metrics.model import Metric, MetricKind, NumberPoint
from otelbpf.streams import StreamDrainer, StreamSource, open_stream

_log = log.get("otelbpf.program")


def _digest(value: object) -> str:
    """A short, stable fingerprint of a value's repr (saved in state and compared at start)."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def config_layout(metric: CounterConfig | HistogramConfig) -> str:
    """How the config reads a map's bytes (label sizes and padding, bucket settings).

    The map definition itself is guarded by the kernel layer (an incompatible pin is replaced);
    this guards what it can't see: the same bytes read with a new meaning. Names and help are
    left out, so renaming a label keeps the counts and their start time.
    """
    parts: list = [[(lbl.size, lbl.padding) if lbl.offset is None else (lbl.size, lbl.padding, lbl.offset)
                    for lbl in metric.labels]]
    if isinstance(metric, HistogramConfig):
        parts += [metric.bucket_type, metric.bucket_min, metric.bucket_max,
                  list(metric.bucket_keys), metric.bucket_multiplier]
        if metric.bucket_type == "exponential":  # indexes at another scale are other buckets
            parts.append(metric.bucket_scale)
    else:
        if metric.multiplier != 1.0:  # the same counts in another unit: a new series
            parts.append(metric.multiplier)
        if metric.value_offset:  # another field of the value
            parts.append(("value_offset", metric.value_offset))
    return _digest(parts)


def map_layouts(cfg: ProgramConfig) -> dict[str, str]:
    """{map: its config_layout}; a map read by several metrics (counters of one struct value)
    gets one layout for all of them, so that a change to any of them starts its series afresh."""
    by_map: dict[str, set[str]] = {}
    for metric in (*cfg.counters, *cfg.histograms):
        by_map.setdefault(metric.map, set()).add(config_layout(metric))
    return {name: layouts.pop() if len(layouts) == 1 else _digest(sorted(layouts))
            for name, layouts in by_map.items()}


def lookup_maps(cfg: ProgramConfig) -> dict[str, tuple[str, ...]]:
    """{aggregate map: the maps its labels look slots up in (decoder "lookup")}."""
    out = {}
    for metric in (*cfg.counters, *cfg.histograms):
        names = sorted({d.options["map"] for label in metric.labels for d in label.decoders
                        if d.name == "lookup"})
        if names:
            out[metric.map] = tuple(names)
    return out


def parameters_digest(cfg: ProgramConfig) -> str:
    """The program's ``[parameters]``: a filter or a sample rate is part of what a count means."""
    return _digest(sorted(cfg.parameters.items()))


def program_identity(cfg: ProgramConfig) -> str:
    """What must be equal for a program left attached by an earlier process to be adopted as is:
    the whole config (parameters included) and the object's bytes."""
    digest = hashlib.sha256(repr(cfg).encode())
    digest.update(cfg.object.read_bytes())
    return digest.hexdigest()[:16]


def alternative_programs(cfg: ProgramConfig) -> set[str]:
    return {name for group in cfg.alternatives for name in group}


def why_not(error: OtelbpfError) -> str:
    """Why a BPF program does not run, in one line (a verifier log left out)."""
    if isinstance(error, LoadError):
        return error.message
    return error.reason if isinstance(error, AttachError) else str(error)


def load_problems(cfg: ProgramConfig, obj: BpfObject) -> dict[str, OtelbpfError]:
    """The programs that failed to load, but those of a group of alternatives of which another
    loaded (the group is judged when it attaches)."""
    errors = obj.program_errors
    judged_later = {name for group in cfg.alternatives if not all(n in errors for n in group)
                    for name in group}
    return {name: err for name, err in errors.items() if name not in judged_later}


class SwapRejected(OtelbpfError):
    """The new version of a program could not take over; the running version was kept."""


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
    out_of_range: OutOfRangeSlots | None = None

    def __post_init__(self) -> None:
        # Evicted or recreated keys must not make a series go down (see MonotonicSeries).
        self.series = MonotonicSeries(self.limiter)

    def take_over(self, running: MapMetric) -> None:
        """A new version of the program reads the same pinned map: it carries on with the running
        version's totals of evicted keys, or the swap would read as a counter reset."""
        if running.config.name == self.config.name and running.limiter.limit == self.limiter.limit:
            self.series = running.series

    def collect(self, now_ns: int, snapshots: dict[str, MapSnapshot] | None = None) -> Metric:
        """``snapshots``: maps already read in this collection, by name; metrics that read one
        map (counters of one struct value) see the same moment of it, read once."""
        snapshots = {} if snapshots is None else snapshots
        snapshot = snapshots.get(self.config.map)
        if snapshot is None:
            snapshot = snapshots[self.config.map] = self.bpf_map.read_all()
        cpu_label = self.config.per_cpu == "label"
        if self.layout is None:
            metric = counter_metric(self.config, snapshot, self.decoder, self.start_ns, now_ns,
                                    cpu_label=cpu_label)
        else:
            metric = histogram_metric(self.config, snapshot, self.decoder, self.layout,
                                      self.start_ns, now_ns, cpu_label=cpu_label, out_of_range=self.out_of_range)
        return self.series.apply(metric, now_ns)


@dataclass
class LoadedProgram:
    config: ProgramConfig
    obj: BpfObject
    links: dict[str, BpfLink]
    problems: dict[str, OtelbpfError]
    map_metrics: list[MapMetric]
    streams: list[StreamSource] = field(default_factory=list)
    drainer: StreamDrainer | None = None
    layouts: dict[str, str] = field(default_factory=dict)
    parameters: str = ""
    identity: str | None = None  # set with [state] keep_attached: links are pinned
    adopt: dict[str, Path] = field(default_factory=dict)  # pinned links of an earlier process
    # Alternatives tried and passed over for a later one of their group, and why.
    passed_over: dict[str, OtelbpfError] = field(default_factory=dict)

    @classmethod
    def load(cls, cfg: ProgramConfig, *, state: AgentState, limits: LimitsConfig,
             drainer: StreamDrainer | None = None, histogram_aggregation: str = "auto",
             export: ExportConfig | None = None,
             resource: Mapping[str, object] | None = None) -> LoadedProgram:
        """Open, load, validate and attach. Raises OtelbpfError when nothing of it can run.
        The keyword arguments are those of `prepare`."""
        prog = cls.prepare(cfg, state=state, limits=limits, histogram_aggregation=histogram_aggregation,
                           export=export, resource=resource)
        try:
            prog.go_live(state=state, drainer=drainer)
        except BaseException:
            prog.close()
            raise
        return prog

    @classmethod
    def prepare(cls, cfg: ProgramConfig, *, state: AgentState, limits: LimitsConfig,
                histogram_aggregation: str = "auto", export: ExportConfig | None = None,
                resource: Mapping[str, object] | None = None) -> LoadedProgram:
        """Open, validate and load (the verifier runs here) without attaching anything and
        without touching a running version's pins: a reload swaps only a prepared version.

        `histogram_aggregation` is what histograms left at aggregation = "auto" become.
        ``export``/``resource``: where the spans of ``cfg.spans`` go (without: spans are not read).
        """
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
            errors = validate_against_object(cfg, obj.maps, obj.programs)
            if errors:
                raise ConfigErrors(errors)
            layouts = map_layouts(cfg)
            parameters = parameters_digest(cfg)
            identity = program_identity(cfg) if state.keep_attached else None
            # Programs left attached must keep writing where the next agent reads: every map of
            # theirs is pinned then (ring buffers included), not only the aggregate ones.
            # A map that names another's slots (decoder "lookup") is pinned with it, and that
            # map's counts are kept only with it.
            together = lookup_maps(cfg)
            looked_up = {m for ms in together.values() for m in ms}
            others = sorted(set(obj.maps) - set(layouts)) if identity else sorted(looked_up - set(layouts))
            paths, fresh = state.pin_plan(cfg.name, layouts, parameters, others)
            obj.set_pin_paths(paths, fresh, together if paths else None)
            adopt = state.adoptable_links(cfg.name, identity) if identity else {}
            if adopt and (fresh or not all(p.exists() for p in paths.values())):
                adopt = {}  # its maps would not be the ones the attached programs count into
            # Loaded even when adopting: a running version must be able to attach again if a
            # new one fails to take over (go_live), adopted or not.
            obj.load(stage_pins=True)
            # Readers exist before anything is attached, so the first event already has a reader.
            for sc in cfg.streams:
                streams.append(open_stream(sc, obj.maps, program=cfg.name,
                                           default_cardinality_limit=limits.cardinality,
                                           default_aggregation=histogram_aggregation,
                                           label_cache=limits.label_cache))
            if cfg.cgroup_id_map is not None:
                from otelbpf.agent.cgroup_id_map import CgroupIdMapFiller

                streams.append(CgroupIdMapFiller(cfg.cgroup_id_map,
                                                 obj.maps[cfg.cgroup_id_map.name],
                                                 program=cfg.name))
            if export is not None and cfg.spans:
                # The OpenTelemetry SDK is imported only by programs that make spans.
                from otelbpf.traces.spans import SpanSource, span_exporter

                for span in cfg.spans:
                    streams.append(SpanSource(span, obj.maps[span.ringbuf], program=cfg.name,
                                              exporter=span_exporter(export),
                                              resource=resource or {}))
            map_metrics = []
            limiter = CardinalityLimiter(limits.cardinality)
            for metric in (*cfg.counters, *cfg.histograms):
                labels = metric.labels
                layout = None
                if isinstance(metric, HistogramConfig):
                    labels = metric.series_labels  # the last label is the bucket slot
                    layout = BucketLayout.from_config(metric, histogram_aggregation)
                map_metrics.append(MapMetric(metric, obj.maps[metric.map],
                                             KeyDecoder(labels, limits.label_cache, maps=obj.maps), 0, limiter,
                                             layout,
                                             out_of_range=OutOfRangeSlots(cfg.name) if layout else None))
        except BaseException:
            for stream in streams:
                stream.close()
            obj.close()
            raise
        return cls(cfg, obj, {}, load_problems(cfg, obj), map_metrics, streams, None, layouts,
                   parameters, identity, adopt)

    def go_live(self, *, state: AgentState, drainer: StreamDrainer | None,
                replacing: LoadedProgram | None = None) -> None:
        """Take over from ``replacing`` (the running version), or from links an earlier process
        left pinned: detach them, attach this version, then pin its new maps and links.

        A version that would run less than the one it replaces (a program that fails to load or
        attach) is refused: the running version — or at start the version an earlier process
        left attached — keeps (or gets back) its links and keeps its pins, and SwapRejected says
        why. There is no moment when both versions count into shared maps; the price, when they
        share one, is a moment when neither counts, logged as ``uncounted_ms``.
        """
        cfg = self.config
        start_ns = time.time_ns()  # before attaching: no counted event predates its series
        if self.adopt:
            self.links = {name: BpfLink.open_pinned(path, name) for name, path in self.adopt.items()}
            _log.info("program adopted: still attached since the previous agent", program=cfg.name,
                      attached=sorted(self.links))
        else:
            # At start (keep_attached): the changed version an earlier agent left attached.
            left = state.pinned_programs(cfg.name) if replacing is None else []
            try:
                self._take_over(state, replacing, left)
            finally:
                for program in left:
                    program.close()  # its program fds: a pinned link holds each program now
        pin_states = self.obj.pin_states
        for mm in self.map_metrics:
            start = state.map_start(cfg.name, mm.config.map, pin_states.get(mm.config.map),
                                    self.layouts[mm.config.map], self.parameters, start_ns)
            if start.reason != "reused":
                _log.info("series start", program=cfg.name, map=mm.config.map, reason=start.reason)
            elif replacing is not None:
                for old in replacing.map_metrics:
                    if old.config.map == mm.config.map:
                        mm.take_over(old)
            mm.start_ns = start.start_ns
        if self.identity:
            state.save_identity(cfg.name, self.identity,
                                (set(self.obj.programs) | set(self.problems)) - set(self.links))
        self.drainer = drainer
        self.resume_streams()

    def _take_over(self, state: AgentState, replacing: LoadedProgram | None,
                   left: Sequence[PinnedProgram]) -> None:
        """Attach this version in place of ``replacing`` or of the version an earlier agent left
        attached (``left``), or refuse (SwapRejected) with that version attached again."""
        if replacing is not None:
            running_problems, running_attached = set(replacing.problems), bool(replacing.links)
            shared = self._shares_maps_with(replacing)
        else:
            running_problems, running_attached = state.not_attached(self.name), bool(left)
            ours = {m.id for m in self.obj.maps.values() if m.id}
            # Maps unknown (the program could not be opened): assume shared, the safe side.
            shared = any(p.map_ids is None or ours & set(p.map_ids) for p in left)
        was_running = replacing is not None or bool(left)
        if was_running:
            # A program the verifier rejected is known now: refuse before touching anything.
            self._refuse_losses(running_problems, running_attached, load_problems(self.config, self.obj),
                                attached=False)
        stuck = [f"{p.name}: {p.why_not_reattachable}" for p in left if p.why_not_reattachable]
        if shared and stuck:
            # It would have to be detached first, and could not count again if this one failed.
            raise SwapRejected("the previous version shares its maps with this one and could not "
                               "be attached again if this one failed (" + "; ".join(stuck) + "); "
                               f"`otelbpf detach {self.name}` then a start installs this version, "
                               "counting from zero")
        # Sharing a map, the versions must never be attached together (events would count
        # twice): detach first. Sharing none, the new one is attached first and the running
        # one detached only once the new one is known good: nothing goes uncounted.
        detached_at = time.monotonic()
        detached = False

        def detach_running() -> None:
            nonlocal detached, detached_at
            detached, detached_at = True, time.monotonic()
            if replacing is not None:
                replacing.detach()
                replacing.pause_streams()
            for program in left:
                program.detach()

        if shared:
            detach_running()
        self.problems.update(self._attach())
        try:
            if was_running:
                self._refuse_losses(running_problems, running_attached, self.problems,
                                    attached=True)
                if not shared:
                    detach_running()
            self.obj.commit_pins()
            self._pin_links(state)
            if was_running:
                _log.info("program swapped", program=self.name,
                          uncounted_ms=round((time.monotonic() - detached_at) * 1e3, 3)
                          if shared else 0.0)
        except (OtelbpfError, OSError) as exc:
            for link in self.links.values():
                link.unpin()
            self.obj.detach()
            self.links = {}
            if detached and replacing is not None:
                replacing.reattach(state, detached_at)
                replacing.resume_streams()
            elif detached:
                self._attach_left_again(left, detached_at)
            raise exc if isinstance(exc, SwapRejected) else SwapRejected(str(exc)) from None

    def _attach_left_again(self, left: Sequence[PinnedProgram], detached_at: float) -> None:
        """The version an earlier agent left attached counts again, through new pinned links."""
        attached = []
        for program in left:
            try:
                program.attach_again()
                attached.append(program.name)
            except OSError as exc:
                _log.error("previous version not attached again", program=self.name,
                           bpf_program=program.name, target=program.target, error=str(exc))
        _log.info("program kept: the previous agent's version is attached again",
                  program=self.name, attached=attached,
                  uncounted_ms=round((time.monotonic() - detached_at) * 1e3, 3))

    def _shares_maps_with(self, other: LoadedProgram) -> bool:
        ids = {m.id for m in self.obj.maps.values() if m.id}
        return bool(ids & {m.id for m in other.obj.maps.values() if m.id})

    def _refuse_losses(self, running_problems: set[str], running_attached: bool,
                       problems: dict[str, OtelbpfError], *, attached: bool) -> None:
        """SwapRejected when this version would run a BPF program less than the running one,
        which did not run ``running_problems`` and had a link if ``running_attached``."""
        lost = sorted(n for n in problems if n not in running_problems and n in self.obj.programs)
        if lost:
            raise SwapRejected("; ".join(f"{n}: {problems[n]}" for n in lost))
        if attached and running_attached and not self.links:
            raise SwapRejected("no program of the new version attached")

    def _attach(self) -> dict[str, OtelbpfError]:
        """Attach every program, and the first of each group of alternatives that loaded and
        attaches; the ones that failed (of a group: when none of it runs), each logged once."""
        problems: dict[str, OtelbpfError] = {}
        grouped = alternative_programs(self.config)
        for name, result in self.obj.attach_all(exclude=grouped).items():
            if isinstance(result, AttachError):
                problems[name] = result
                _log.error("program not attached", program=self.name, bpf_program=name,
                           reason=result.reason)
            else:
                self.links[name] = result
        for name, err in self.obj.program_errors.items():
            if name not in grouped:
                _log.error("program not loaded", program=self.name, bpf_program=name, reason=str(err))
        for group in self.config.alternatives:
            problems.update(self._attach_first(group))
        return problems

    def _attach_first(self, group: Sequence[str]) -> dict[str, OtelbpfError]:
        """Attach the first program of ``group`` that loaded and attaches: {} then; when none
        does, every one's error."""
        failed: dict[str, OtelbpfError] = {}
        for name in group:
            error = self.obj.program_errors.get(name)
            if error is None:
                try:
                    self.links[name] = self.obj.attach(name)
                except AttachError as exc:
                    error = exc
                else:
                    if failed:
                        _log.info("alternative in use", program=self.name, bpf_program=name,
                                  instead_of={n: why_not(e) for n, e in failed.items()})
                    self.passed_over.update(failed)
                    return {}
            failed[name] = error
        for name, error in failed.items():
            _log.error("program not attached, nor any alternative", program=self.name,
                       bpf_program=name, alternatives=list(group), reason=str(error))
        return failed

    @property
    def standby(self) -> set[str]:
        """Alternatives that do not run because another of their group does."""
        running = set(self.links)
        return {name for group in self.config.alternatives if running.intersection(group)
                for name in group} - running

    def _pinned_link_paths(self, state: AgentState) -> dict[str, Path]:
        base = state.link_dir(self.name) if self.identity else None
        return {name: base / name for name in self.links} if base else {}

    def _pin_links(self, state: AgentState) -> None:
        """With keep_attached: the kernel keeps counting through these pins when the agent stops,
        and the next agent can attach the programs again (their pins) if it must detach them."""
        links = self._pinned_link_paths(state)
        for name, path in links.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            self.links[name].pin(path)
        programs = state.program_pin_dir(self.name)
        if not links or programs is None:
            return
        programs.mkdir(parents=True, exist_ok=True)
        for path in programs.iterdir():
            if path.name not in links:  # a program of the version replaced
                path.unlink()
        for name in links:
            path = programs / name
            path.unlink(missing_ok=True)
            lb.check(lb.bpf_obj_pin(self.obj.programs[name].fd, os.fsencode(path)),
                     f"bpf_obj_pin({path})")

    def reattach(self, state: AgentState, detached_at: float) -> None:
        """Attach this (running) version again after a new version failed to take over."""
        self.links = {}
        self._attach()
        self._pin_links(state)
        _log.info("program kept: the running version is attached again", program=self.name,
                  attached=sorted(self.links),
                  uncounted_ms=round((time.monotonic() - detached_at) * 1e3, 3))

    def pause_streams(self) -> None:
        # One reader per ring at a time: a kept-attached ring buffer is shared by both versions.
        if self.drainer is not None:
            for stream in self.streams:
                self.drainer.remove(stream)

    def resume_streams(self) -> None:
        if self.drainer is not None:
            for stream in self.streams:
                self.drainer.add(stream)

    @property
    def name(self) -> str:
        return self.config.name

    def collect(self, now_ns: int) -> list[Metric]:
        metrics = []
        snapshots: dict[str, MapSnapshot] = {}
        for mm in self.map_metrics:
            try:
                metrics.append(mm.collect(now_ns, snapshots))
                outside = mm.out_of_range and mm.out_of_range.metric(mm.start_ns, now_ns)
                if outside:
                    metrics.append(outside)
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
        """1 or 0 for each BPF program, alternatives standing by left out."""
        points = []
        for name in sorted((set(self.obj.programs) | set(self.problems)) - self.standby):
            attached = 1 if name in self.links else 0
            points.append(NumberPoint((("otelbpf.program", self.name), ("bpf.program.name", name)),
                                      attached, now_ns))
        return points

    def detach(self) -> None:
        """Stop counting (pinned links too): after this the maps hold their final values. The
        closed links stay listed: the last export still says what was attached until now."""
        for link in self.links.values():
            link.unpin()
            link.close()
        self.obj.detach()

    def close(self) -> None:
        """Free everything; a pinned link stays attached (keep_attached), any other detaches."""
        for link in self.links.values():
            link.close()
        for stream in self.streams:
            if self.drainer is not None:
                self.drainer.remove(stream)  # waits for a drain in progress
            stream.close()
        self.streams = []
        self.obj.close()


# The load-time parameter of bpf/include/otelbpf.h's OTELBPF_SAMPLING: count 1 event in N, N times.
SAMPLING_PARAMETER = "sample_every"


def attach_metric(programs: Sequence[LoadedProgram], failed: dict[str, OtelbpfError],
                  now_ns: int) -> list[Metric]:
    """``otelbpf.program.attached`` (1/0 per BPF program), ``otelbpf.program.loaded`` (per config)
    and ``otelbpf.program.sample_every`` (per config of a sampling program, the N it runs with)."""
    attached = [p for prog in programs for p in prog.attach_points(now_ns)]
    loaded = [NumberPoint((("otelbpf.program", prog.name),), 1, now_ns) for prog in programs]
    loaded += [NumberPoint((("otelbpf.program", name),), 0, now_ns) for name in sorted(failed)]
    sampling = [NumberPoint((("otelbpf.program", prog.name),), prog.obj.parameter_values[SAMPLING_PARAMETER],
                            now_ns)
                for prog in programs if SAMPLING_PARAMETER in prog.obj.parameter_values]
    metrics = [
        Metric("otelbpf.program.attached", "1 when the BPF program is attached, 0 when it failed",
               "{program}", MetricKind.GAUGE, tuple(attached)),
        Metric("otelbpf.program.loaded", "1 when the program config loaded, 0 when it failed",
               "{program}", MetricKind.GAUGE, tuple(loaded)),
    ]
    if sampling:
        metrics.append(Metric(
            "otelbpf.program.sample_every",
            "The program counts 1 event in N (per CPU) as N events, so its counts and sums stay "
            "totals: N (1 = every event)", "{event}", MetricKind.GAUGE, tuple(sampling)))
    return metrics
