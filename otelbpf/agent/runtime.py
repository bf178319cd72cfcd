"""The agent: loads the configured programs, collects every interval, exports, reloads, shuts down.

One thread runs the flush loop; stream readers drain on their own thread so a slow collector never
stalls the kernel side. Signals only set flags and wake the loop:
SIGTERM/SIGINT → detach (unless [state] keep_attached), drain the streams, one last collection and
export within the export timeout, exit 0; SIGHUP → reload the config.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from otelbpf import __version__, log
from otelbpf.agent.health_endpoint import HealthEndpoint, HealthState
from otelbpf.agent.privileges import RunTimePrivileges, enter_run_time
from otelbpf.agent.program import LoadedProgram, attach_metric
from otelbpf.agent.state import AgentState
from otelbpf.agent.watchdog import Watchdog
from otelbpf.aggregate.cardinality import OVERFLOW_ATTRIBUTES
from otelbpf.aggregate.delta import DeltaConverter
from otelbpf.config.agent import AgentConfig, load_agent_config
from otelbpf.config.ebpf_exporter import EbpfExporterConfig, read_ebpf_exporter_configs
from otelbpf.config.program import ProgramConfig, load_program_config
from otelbpf.errors import ConfigError, OtelbpfError
from otelbpf.export.exporter import build_exporter
from otelbpf.export.outcome import Exporter
from otelbpf.export.resource import build_resource
from otelbpf.metrics.model import Metric, MetricBatch, MetricKind, NumberPoint
from otelbpf.streams import StreamDrainer

_log = log.get("otelbpf.agent")

SCOPE = "otelbpf"


def read_program_configs(cfg: AgentConfig, ebpf_exporter: EbpfExporterConfig | None = None
                         ) -> tuple[dict[str, ProgramConfig], dict[str, OtelbpfError]]:
    """Native program configs, then the ebpf_exporter YAML configs of ``ebpf_exporter`` (the
    command line's) or else of the agent config's ``[ebpf_exporter]``."""
    configs: dict[str, ProgramConfig] = {}
    errors: dict[str, OtelbpfError] = {}
    yaml_source = ebpf_exporter or cfg.ebpf_exporter
    if yaml_source is not None:
        yaml_configs, yaml_errors = read_ebpf_exporter_configs(yaml_source)
        configs.update(yaml_configs)
        errors.update(yaml_errors)
    for path in cfg.program_config_paths():
        if not path.exists():
            errors[path.stem] = ConfigError(
                cfg.path, "agent", "programs", f"program {path.stem!r}: {path} does not exist",
                f"create {path.name} in {cfg.programs_dir} or remove {path.stem!r} from programs")
            continue
        try:
            configs[path.stem] = load_program_config(path, cfg.objects_dir)
        except OtelbpfError as exc:
            errors[path.stem] = exc
    return configs, errors


def file_digest(*paths: Path) -> str:
    """Changes when a program's config or object changes (a reload then reloads that program)."""
    parts = []
    for p in paths:
        try:
            st = p.stat()
            parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{p}:missing")
    return "|".join(parts)


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off for one flush. A flush allocates a few objects per
    series (points, attribute tuples) that die together afterwards, and each collection it
    triggers walks every live object, label caches included: about a fifth of a 100K-series
    flush (benchmarks/flush.py). Reference counting still frees everything that is not a cycle;
    cycles wait for the next collection after the flush."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Wakeup:
    """Wakes the flush loop, also from a signal handler.

    A pipe, not a threading.Event: a Python signal handler runs between two bytecodes of the
    main thread, possibly while that thread holds the Event's internal lock inside wait(); taking
    that lock again in the handler deadlocks the agent for good (seen with SIGHUP). Writing to a
    pipe takes no lock. It stays open for the agent's lifetime: a signal may come at any time.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def set(self) -> None:
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:  # the pipe is full: a wake-up is pending anyway
            pass

    def wait(self, timeout: float) -> None:
        """Sleep until set() or ``timeout``; consumes every pending wake-up."""
        select.select([self._read], [], [], timeout)
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass


@dataclass
class ReloadOutcomes:
    """``otelbpf.config.reloads{outcome}``, so that a rejected deploy shows in metrics too:
    ``applied``, ``partial`` (applied, but at least one changed program kept its running version)
    or ``rejected`` (the new config as a whole)."""

    start_ns: int = field(default_factory=time.time_ns)
    counts: dict[str, int] = field(
        default_factory=lambda: {"applied": 0, "partial": 0, "rejected": 0})

    def metric(self, now_ns: int) -> Metric:
        points = tuple(NumberPoint((("outcome", outcome),), n, now_ns, self.start_ns)
                       for outcome, n in self.counts.items())
        return Metric("otelbpf.config.reloads", "Config reloads (SIGHUP), by outcome", "{reload}",
                      MetricKind.SUM, points)


@dataclass
class Builtin:
    source: object
    interval: float
    next_due: float = 0.0


@dataclass
class Agent:
    config_path: Path
    config: AgentConfig | None = None
    ebpf_exporter: EbpfExporterConfig | None = None  # run --ebpf-exporter-dir (wins over the file)
    programs: dict[str, LoadedProgram] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    failed: dict[str, OtelbpfError] = field(default_factory=dict)
    builtins: list[Builtin] = field(default_factory=list)
    drainer: StreamDrainer | None = None
    exporter: Exporter | None = None
    # One converter per scope (two programs may both define a metric of the same name); None
    # unless exporting with delta temporality.
    delta: dict[str, DeltaConverter] | None = None
    watchdog: Watchdog = field(default_factory=Watchdog)
    # `otelbpf run` drops capabilities after setup; an Agent embedded in another process (tests,
    # benchmarks) must not take that process's capabilities away.
    drop_capabilities: bool = False
    privileges: RunTimePrivileges | None = None  # set by start(): what was kept
    health: HealthState | None = None
    health_endpoint: HealthEndpoint | None = None
    reloads: ReloadOutcomes = field(default_factory=ReloadOutcomes)
    _overflowing: set[tuple[str, str]] = field(default_factory=set)  # (program, metric) warned
    _wake: Wakeup = field(default_factory=Wakeup)
    _stop: bool = False
    _reload: bool = False

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.config = load_agent_config(self.config_path)
        configs, errors = read_program_configs(self.config, self.ebpf_exporter)
        # Before any thread starts: capabilities are per thread.
        self.privileges = enter_run_time(self.config, configs.values(), drop=self.drop_capabilities)
        self.drainer = StreamDrainer()
        self.drainer.start()
        self._configure(self.config, at_start=True)
        self._detach_removed(set(configs) | set(errors))
        self.failed = dict(errors)
        for name, err in errors.items():
            _log.error("program config rejected", program=name, error=str(err))
        for name, pcfg in configs.items():
            self._load_program(name, pcfg)
        self._start_builtins(self.config)
        self._start_health_endpoint(self.config)
        _log.info("agent started", version=__version__, programs=sorted(self.programs),
                  failed=sorted(self.failed), interval=self.config.interval,
                  exporter=self.exporter.describe())

    def _configure(self, cfg: AgentConfig, *, at_start: bool = False) -> None:
        """Build the state, resource and exporter ``cfg`` asks for, then swap them in.

        Everything is built before anything is replaced: a ConfigError (an unwritable state_dir,
        an exporter that cannot be built) leaves the running exporter and state as they were.
        """
        state = AgentState(cfg.state.pin_dir, cfg.state.state_dir,
                           keep_attached=cfg.state.keep_attached)
        state.check_writable(cfg.path)
        state.claim_pin_dir(cfg.path)
        resource = build_resource(cfg.resource, cfg.state.state_dir)
        try:
            exporter = build_exporter(cfg.export)
        except ValueError as exc:  # endpoint, headers or TLS files the transport refuses
            raise ConfigError(cfg.path, "export", None, str(exc),
                              "correct the [export] settings (or the OTEL_EXPORTER_OTLP_* "
                              "variables)") from None
        old_exporter = self.exporter
        self.state, self.resource, self.exporter = state, resource, exporter
        if old_exporter is not None:
            old_exporter.shutdown()
        # A reload that keeps delta temporality keeps the exported baselines: starting them over
        # would send every series' whole cumulative value again as one delta (double counting).
        # At start, the baselines saved by the previous process: its pinned maps kept counting.
        # (Not on a reload that switches to delta: a file from an older delta run is stale.)
        wants_delta = cfg.export.temporality == "delta"
        kept = self.delta
        if wants_delta and kept is None and at_start:
            kept = {}
            for scope, baseline in self.state.load_delta_baselines().items():
                kept[scope] = DeltaConverter()
                kept[scope].restore(baseline)
        if at_start and not wants_delta:
            self.state.drop_delta_baselines()  # would be stale by the next delta run
        self.delta = (kept if kept is not None else {}) if wants_delta else None

    def _program_options(self) -> dict:
        """What every program is loaded with: the agent's state, limits, histogram default and
        (for spans) export settings and resource."""
        return dict(state=self.state, limits=self.config.limits,
                    histogram_aggregation=self.config.export.default_histogram_aggregation,
                    export=self.config.export, resource=self.resource.as_dict())

    def _load_program(self, name: str, pcfg: ProgramConfig) -> None:
        assert self.config is not None
        self._overflowing = {k for k in self._overflowing if k[0] != name}
        try:
            prog = LoadedProgram.load(pcfg, drainer=self.drainer, **self._program_options())
        except (OtelbpfError, OSError) as exc:
            self.failed[name] = exc if isinstance(exc, OtelbpfError) else \
                ConfigError(pcfg.path, None, "object", str(exc))
            _log.error("program not loaded", program=name, config=str(pcfg.path),
                       error=str(self.failed[name]), **self._left_attached(name))
            return
        self.programs[name] = prog
        self.digests[name] = file_digest(pcfg.path, pcfg.object)
        self.failed.pop(name, None)
        _log.info("program loaded", program=name, attached=sorted(prog.links),
                  not_attached=sorted(set(prog.problems) - set(prog.links)))

    def _left_attached(self, name: str) -> dict:
        """For a program that failed to load: what an earlier agent left attached of it, which
        keeps counting into its pinned maps — unexported, as nothing here reads them."""
        links = self.state.link_dir(name)
        left = sorted(p.name for p in links.iterdir()) if links is not None and links.is_dir() else []
        if not left:
            return {}
        return {"still_attached": left,
                "fix": "the previous version keeps counting into its pinned maps, unexported, "
                       f"until this config is fixed (then restart or reload) or `otelbpf detach "
                       f"{name}` removes it"}

    def _replace_program(self, name: str, pcfg: ProgramConfig, digest: str) -> bool:
        """Swap in the new version only if it loads and attaches; else keep the old one (False)."""
        running = self.programs[name]
        try:
            new = LoadedProgram.prepare(pcfg, **self._program_options())
        except (OtelbpfError, OSError) as exc:
            error = exc if isinstance(exc, OtelbpfError) else ConfigError(pcfg.path, None, "object",
                                                                           str(exc))
            _log.error("reload rejected for program: keeping the running version", program=name,
                       config=str(pcfg.path), error=str(error))
            return False
        try:
            new.go_live(state=self.state, drainer=self.drainer, replacing=running)
        except OtelbpfError as exc:
            new.close()
            _log.error("reload rejected for program: keeping the running version", program=name,
                       config=str(pcfg.path), error=str(exc),
                       fix="make every BPF program of the new version load and attach")
            return False
        running.close()
        self._overflowing = {k for k in self._overflowing if k[0] != name}
        self.programs[name] = new
        self.digests[name] = digest
        _log.info("program loaded", program=name, attached=sorted(new.links),
                  not_attached=sorted(set(new.problems) - set(new.links)))
        return True

    def _detach_removed(self, configured: set[str]) -> None:
        """At start: programs an earlier agent pinned that are no longer configured go for good
        (a configured program whose config is broken keeps its pins)."""
        for name in self.state.programs_pinned():
            if name not in configured:
                _log.info("program removed: detaching and unpinning what an earlier agent left",
                          program=name)
                self.state.unpin_program(name)

    def _start_builtins(self, cfg: AgentConfig) -> None:
        for b in self.builtins:
            b.source.close()
        self.builtins = []
        mp, ps = cfg.builtin.map_pressure, cfg.builtin.program_stats
        if mp.enabled:
            try:
                from otelbpf.health.map_pressure import MapPressure

                self.builtins.append(Builtin(MapPressure(mp, cfg.objects_dir),
                                             mp.interval or cfg.interval))
            except (OtelbpfError, OSError) as exc:  # e.g. no CAP_SYS_ADMIN: the agent runs on
                _log.error("map pressure disabled", error=str(exc))
        if ps.enabled:
            try:
                from otelbpf.health.program_stats import ProgramStats

                stats = self.privileges.run_stats if self.privileges is not None else None
                self.builtins.append(Builtin(ProgramStats(ps, cfg.objects_dir, stats),
                                             ps.interval or cfg.interval))
            except (OtelbpfError, OSError) as exc:
                _log.error("program stats disabled", error=str(exc))

    def _start_health_endpoint(self, cfg: AgentConfig) -> None:
        """Off by default: no listening socket unless ``[health_endpoint] enabled = true``."""
        if self.health_endpoint is not None:
            self.health_endpoint.close()
            self.health_endpoint = None
        # Stuck: no flush for three intervals plus one export timeout (a flush's export ends
        # within one interval, see flush()).
        stale_after = 3 * cfg.interval + cfg.export.timeout
        if self.health is None:
            self.health = HealthState(stale_after)
        self.health.stale_after = stale_after
        self.health.programs(self.programs, self.failed)
        he = cfg.health_endpoint
        if not he.enabled:
            return
        try:
            self.health_endpoint = HealthEndpoint(he.host, he.port, self.health.report)
        except OSError as exc:
            _log.error("health endpoint not started", address=f"{he.host}:{he.port}", error=str(exc),
                       fix="free the port or set [health_endpoint] address to another one")

    def close(self) -> None:
        if self.health_endpoint is not None:
            self.health_endpoint.close()
            self.health_endpoint = None
        for prog in self.programs.values():
            prog.close()
        self.programs.clear()
        if self.drainer is not None:
            self.drainer.close()
        for b in self.builtins:
            b.source.close()
        self.builtins = []
        if self.privileges is not None:
            self.privileges.close()
        if self.exporter is not None:
            self.exporter.shutdown()

    # -- collection and export ------------------------------------------------------------------

    def collect(self, now_ns: int | None = None, *, force_builtins: bool = False) -> list[MetricBatch]:
        now_ns = now_ns or time.time_ns()
        batches = []
        for name, prog in self.programs.items():
            # Map metrics (already cardinality-limited) and stream metrics: each exactly once, as
            # a series sent twice in one request would count twice once converted to delta.
            metrics = prog.collect(now_ns)
            self._note_overflow(name, metrics)
            batches.append(MetricBatch(f"{SCOPE}/{name}", tuple(metrics), __version__))
        mono = time.monotonic()
        for b in self.builtins:
            if force_builtins or mono >= b.next_due:
                b.next_due = mono + b.interval
                try:
                    batches.append(MetricBatch(f"{SCOPE}/{b.source.name}",
                                               tuple(b.source.collect(now_ns)), __version__))
                except Exception as exc:  # a builtin failing must not stop the export
                    _log.error("builtin collection failed", builtin=b.source.name, error=str(exc))
        own = attach_metric(list(self.programs.values()), self.failed, now_ns)
        own += self.watchdog.collect(now_ns)
        own.append(self.reloads.metric(now_ns))
        own += self.exporter.self_metrics(now_ns)
        batches.append(MetricBatch(SCOPE, tuple(own), __version__))
        return [b for b in batches if b.metrics]

    def _note_overflow(self, program: str, metrics) -> None:
        """Say once per metric when its cardinality limit starts folding series into overflow."""
        for metric in metrics:
            if (program, metric.name) in self._overflowing:
                continue
            if any(p.attributes == OVERFLOW_ATTRIBUTES for p in metric.points):
                self._overflowing.add((program, metric.name))
                _log.warning("cardinality limit reached: further series are merged into the "
                             "otel.metric.overflow=true series", program=program,
                             metric=metric.name, limit=self.config.limits.cardinality,
                             fix="raise [limits] cardinality (streams: cardinality_limit) or "
                                 "drop a high-cardinality label")

    def flush(self, *, final: bool = False) -> bool:
        with _collector_paused():
            return self._flush(final=final)

    def _flush(self, *, final: bool = False) -> bool:
        batches = self.collect(force_builtins=final)
        tokens = []
        if self.delta is not None:
            batches, tokens = self._to_delta(batches)
        # Retries must end before the next interval: the next collection carries fresh totals.
        # The last export at shutdown gets one export timeout, so that stopping is bounded (the
        # bound is in docs/reliability.md, "Shutdown").
        budget = self.config.export.timeout if final else self.config.interval
        outcome = self.exporter.export(self.resource, batches,
                                       deadline=time.monotonic() + budget)
        ok = outcome.success
        if ok and tokens:
            for converter, token in tokens:
                converter.commit(token)
            self.state.save_delta_baselines(
                {scope: c.baseline() for scope, c in self.delta.items()})
        _log.debug("flushed", ok=ok, final=final,
                   points=sum(len(m.points) for b in batches for m in b.metrics))
        return ok

    def _to_delta(self, batches: list[MetricBatch]):
        """Deltas against the last exported baseline: failed intervals merge into the next one."""
        out, tokens = [], []
        for batch in batches:
            converter = self.delta.setdefault(batch.scope, DeltaConverter())
            metrics, token = converter.convert(batch.metrics)
            out.append(replace(batch, metrics=tuple(metrics)))
            tokens.append((converter, token))
        return out, tokens

    # -- reload -------------------------------------------------------------------------------

    def reload(self) -> None:
        """Apply a changed config, or keep everything as it is when the new one is bad."""
        try:
            new = load_agent_config(self.config_path)
            configs, errors = read_program_configs(new, self.ebpf_exporter)
        except OtelbpfError as exc:
            _log.error("reload rejected: config invalid, keeping the running set", error=str(exc))
            self.reloads.counts["rejected"] += 1
            return
        if errors:
            for name, err in errors.items():
                _log.error("reload rejected: program config invalid, keeping the running set",
                           program=name, error=str(err))
            self.reloads.counts["rejected"] += 1
            return
        old = self.config
        assert old is not None
        if self.privileges is not None:
            self.privileges.say_missing(new, configs.values())
        if (new.export, new.resource, new.state) != (old.export, old.resource, old.state):
            try:
                self._configure(new)
            except OtelbpfError as exc:
                _log.error("reload rejected: config invalid, keeping the running set",
                           error=str(exc))
                self.reloads.counts["rejected"] += 1
                return
        self.config = new
        for name in sorted(set(self.programs) - set(configs)):
            _log.info("program removed", program=name)
            removed = self.programs.pop(name)
            removed.detach()
            removed.close()
            self.digests.pop(name, None)
            self.state.unpin_program(name)
            if self.delta is not None:
                self.delta.pop(f"{SCOPE}/{name}", None)
        self.failed = {}
        kept = []
        for name, pcfg in configs.items():
            digest = file_digest(pcfg.path, pcfg.object)
            if name in self.programs and self.digests.get(name) == digest \
                    and self.programs[name].config == pcfg:
                continue
            if name in self.programs:
                _log.info("program changed, reloading", program=name)
                if not self._replace_program(name, pcfg, digest):
                    kept.append(name)
            else:
                self._load_program(name, pcfg)
        if (new.builtin, new.objects_dir, new.interval) != (old.builtin, old.objects_dir, old.interval):
            self._start_builtins(new)
        if (new.health_endpoint, new.interval, new.export.timeout) != \
                (old.health_endpoint, old.interval, old.export.timeout):
            self._start_health_endpoint(new)
        self.reloads.counts["partial" if kept else "applied"] += 1
        _log.info("config reloaded", programs=sorted(self.programs), failed=sorted(self.failed),
                  kept_running_version=kept)

    # -- main loop ----------------------------------------------------------------------------

    def request_stop(self, *_args) -> None:
        self._stop = True
        self._wake.set()

    def request_reload(self, *_args) -> None:
        self._reload = True
        self._wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    def run(self, *, iterations: int | None = None, on_flush: Callable[[bool], None] | None = None) -> int:
        """Flush every interval until stopped. Returns the process exit code."""
        assert self.config is not None
        next_flush = time.monotonic() + self.config.interval
        done = 0
        try:
            while not self._stop:
                self._wake.wait(max(0.0, next_flush - time.monotonic()))
                if self._reload:
                    self._reload = False
                    self.reload()
                    next_flush = min(next_flush, time.monotonic() + self.config.interval)
                if self._stop:
                    break
                if time.monotonic() >= next_flush:
                    next_flush += self.config.interval
                    # Skip ticks we missed (suspend, slow export) instead of flushing in a burst.
                    if next_flush < time.monotonic():
                        next_flush = time.monotonic() + self.config.interval
                    ok = self._safe_flush()
                    if on_flush:
                        on_flush(ok)
                    done += 1
                    if iterations is not None and done >= iterations:
                        break
            # Detach first, so the final export holds exactly what the kernel counted; with
            # keep_attached the pinned links stay and the kernel counts on for the next agent.
            if not self.state.keep_attached:
                for prog in self.programs.values():
                    prog.detach()
            if self.drainer is not None:
                self.drainer.stop()  # joins the thread, then drains what the kernel had written
            self._safe_flush(final=True)
        finally:
            self.close()
        _log.info("agent stopped")
        return 0

    def _safe_flush(self, *, final: bool = False) -> bool:
        try:
            ok = self.flush(final=final)
        except Exception as exc:  # never let one bad interval kill a months-long process
            _log.exception("flush failed", error=str(exc))
            ok = False
        if self.health is not None:
            self.health.programs(self.programs, self.failed)
            self.health.flushed(ok)
        return ok
