"""Command line: ``otelbpf run``, ``otelbpf check``, ``otelbpf --version``.

Each subcommand is a ``cmd_NAME(args)`` function plus one block in ``build_parser``; global
options (``--log-level``, ``--log-format``) are accepted before or after the subcommand.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from otelbpf import __version__, log
from otelbpf.errors import OtelbpfError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

# numpy's OpenBLAS starts a worker thread at import unless told not to; the agent does no linear
# algebra, and it must still be single-threaded when it drops capabilities (agent/privileges.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

EPILOG = """exit codes:
  0  success
  1  failure: a program did not load or attach (check), an export failed (check --export,
     run --once), or an unexpected error (one line here, the traceback in the debug log)
  2  configuration error: one line naming the file or variable, the entry, the field and the fix

environment:
  OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT, _PROTOCOL, _HEADERS, _TIMEOUT, _COMPRESSION,
  _INSECURE, _CERTIFICATE, _CLIENT_CERTIFICATE, _CLIENT_KEY, OTEL_RESOURCE_ATTRIBUTES,
  OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: defaults for [export]
  and [resource]; the config file wins (docs/configuration.md#environment-variables).
  OTEL_METRICS_EXPORTER (otlp, console, none), OTEL_SDK_DISABLED, OTEL_METRIC_EXPORT_INTERVAL,
  OTEL_METRIC_EXPORT_TIMEOUT: likewise. ${env:NAME} in the TOML files reads any variable.
  OTEL_LOG_LEVEL: debug, info, warn or error, when --log-level is not given.
  OTELBPF_CONFIG: the agent config file, when --config is not given.

docs: docs/configuration.md, docs/backends.md, docs/troubleshooting.md
"""


def _config_path(arg: str | None) -> Path:
    """--config, else OTELBPF_CONFIG (a container points it at a mounted file instead of the
    packaged one), else the default location."""
    if arg:
        return Path(arg)
    if os.environ.get("OTELBPF_CONFIG", "").strip():
        return Path(os.environ["OTELBPF_CONFIG"].strip())
    from otelbpf.config.agent import default_config_path

    return default_config_path()


def cmd_run(args: argparse.Namespace) -> int:
    from otelbpf.agent.runtime import Agent

    agent = Agent(_config_path(args.config), ebpf_exporter=_ebpf_exporter_option(args),
                  drop_capabilities=True)
    agent.install_signal_handlers()
    try:
        agent.start()
    except OtelbpfError as exc:
        agent.close()
        print(f"otelbpf: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not args.once:
        return agent.run()
    flushes: list[bool] = []
    code = agent.run(iterations=1, on_flush=flushes.append)
    return code if all(flushes) else EXIT_FAILED


def cmd_check(args: argparse.Namespace) -> int:
    """Load and attach everything once, print a status line per program, map and metric."""
    from otelbpf.agent.program import LoadedProgram, why_not
    from otelbpf.agent.state import AgentState
    from otelbpf.agent.runtime import read_program_configs
    from otelbpf.config.agent import load_agent_config
    from otelbpf.kernel.features import probe

    out = sys.stdout
    ok = True
    try:
        cfg = load_agent_config(_config_path(args.config))
    except OtelbpfError as exc:
        print(f"FAIL config {exc}", file=out)
        return EXIT_CONFIG
    print(f"ok   config {cfg.path}", file=out)
    if not _check_export(cfg, args.export, out):
        ok = False

    for name, (present, reason) in probe().as_dict().items():
        print(f"{'ok  ' if present else 'no  '} kernel {name}" + ("" if present else f": {reason}"),
              file=out)
    try:
        from otelbpf.health import health_features

        for name, (present, reason) in health_features().items():
            print(f"{'ok  ' if present else 'no  '} health {name}" + ("" if present else f": {reason}"),
                  file=out)
    except ImportError:
        pass

    configs, errors = read_program_configs(cfg, _ebpf_exporter_option(args))
    for name, err in errors.items():
        ok = False
        print(f"FAIL program {name}: {err}", file=out)
    # Never touch the running agent's pins: check loads into no pin directory at all.
    state = AgentState(None, None)
    for name, pcfg in configs.items():
        try:
            prog = LoadedProgram.load(pcfg, state=state, limits=cfg.limits,
                                      histogram_aggregation=cfg.export.default_histogram_aggregation)
        except OtelbpfError as exc:
            ok = False
            print(f"FAIL program {name}: {exc}", file=out)
            continue
        try:
            print(f"ok   program {name} ({pcfg.object})", file=out)
            standby = prog.standby
            for bpf_name in sorted(prog.obj.programs):
                if bpf_name in prog.links:
                    print(f"ok   program {name}/{bpf_name} attached", file=out)
                elif bpf_name in standby:
                    why = prog.passed_over.get(bpf_name)
                    print(f"ok   program {name}/{bpf_name} not used, an alternative runs"
                          + (f" (this one failed: {why_not(why)})" if why else ""), file=out)
                else:
                    ok = False
                    print(f"FAIL program {name}/{bpf_name}: {prog.problems.get(bpf_name)}", file=out)
            for map_name, m in sorted(prog.obj.maps.items()):
                print(f"ok   map {name}/{map_name} type={m.type.name if hasattr(m.type, 'name') else m.type}"
                      f" key={m.key_size}B value={m.value_size}B max_entries={m.max_entries}", file=out)
            now = time.time_ns()
            for mm in prog.map_metrics:
                try:
                    metric = mm.collect(now)
                    print(f"ok   metric {metric.name} ({metric.kind.value}, {len(metric.points)} series)",
                          file=out)
                except Exception as exc:
                    ok = False
                    print(f"FAIL metric {mm.config.name}: {exc}", file=out)
            for stream in prog.streams:
                print(f"ok   stream {stream.name}", file=out)
        finally:
            prog.close()
    _check_capabilities(cfg, configs.values(), out)
    return EXIT_OK if ok else EXIT_FAILED


def _add_ebpf_exporter_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ebpf_exporter configs (run them next to conf.d)")
    group.add_argument("--ebpf-exporter-dir", metavar="DIR",
                       help="directory of ebpf_exporter's NAME.yaml + NAME.bpf.o "
                            "(like its --config.dir); wins over [ebpf_exporter] in the config")
    group.add_argument("--names", metavar="A,B,C",
                       help="configs of that directory to run (like --config.names; "
                            "default: every NAME.yaml)")
    group.add_argument("--ebpf-exporter-prefix", metavar="PREFIX", default=None,
                       help='metric name prefix (default "ebpf_exporter_")')


def _ebpf_exporter_option(args: argparse.Namespace):
    """The --ebpf-exporter-* options as an EbpfExporterConfig, or None when not given."""
    from otelbpf.config.ebpf_exporter import DEFAULT_PREFIX, EbpfExporterConfig, parse_names

    if not args.ebpf_exporter_dir:
        if args.names or args.ebpf_exporter_prefix is not None:
            raise OtelbpfError("--names and --ebpf-exporter-prefix need --ebpf-exporter-dir DIR")
        return None
    names = parse_names(args.names) if args.names else None
    prefix = DEFAULT_PREFIX if args.ebpf_exporter_prefix is None else args.ebpf_exporter_prefix
    return EbpfExporterConfig(Path(args.ebpf_exporter_dir).absolute(), names, prefix)


def cmd_convert(args: argparse.Namespace) -> int:
    """ebpf_exporter's NAME.yaml → the equivalent native NAME.toml (stdout, or -o FILE)."""
    import os

    from otelbpf.config.ebpf_exporter import native_toml
    from otelbpf.config.program import parse_program_config

    source = Path(args.yaml)
    out = Path(args.output) if args.output else None
    object_path = source.with_name(source.name.removesuffix(".yaml") + ".bpf.o").absolute()
    # Relative to where the TOML goes, when that is the object's own directory.
    where = out.parent.absolute() if out else Path.cwd()
    shown = (os.path.relpath(object_path, where) if object_path.parent == where
             else str(object_path))
    text = native_toml(source, prefix=args.prefix, aggregation=args.aggregation,
                       object_path=shown)
    # It must load back; kernel addresses are looked up when the TOML runs, not here.
    parse_program_config(text, out or source.with_suffix(".toml"), where, kallsyms=None)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    return EXIT_OK


def cmd_detach(args: argparse.Namespace) -> int:
    """Detach programs left attached ([state] keep_attached) and remove their pins for good."""
    from otelbpf.agent.state import AgentState
    from otelbpf.config.agent import load_agent_config

    cfg = load_agent_config(_config_path(args.config))
    if cfg.state.pin_dir is None:
        print("nothing to detach: [state] pin_dir is empty, nothing is pinned")
        return EXIT_OK
    state = AgentState(cfg.state.pin_dir, cfg.state.state_dir)
    if cfg.state.pin_dir.exists():
        state.claim_pin_dir(cfg.path)  # never unpin in a directory that is not ours
    pinned = state.programs_pinned()
    unknown = sorted(set(args.programs) - set(pinned))
    for name in args.programs or pinned:
        if name in unknown:
            continue
        state.unpin_program(name)
        print(f"detached {name}: its links and pinned maps under {cfg.state.pin_dir / name} are gone")
    if unknown:
        print(f"otelbpf: not pinned under {cfg.state.pin_dir}: {', '.join(unknown)} "
              f"(pinned: {', '.join(pinned) or 'none'})", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _check_export(cfg, send: bool, out) -> bool:
    """Build the exporter the config asks for; with ``send``, make one real export."""
    from otelbpf.export.diagnose import check_export
    from otelbpf.export.exporter import build_exporter
    from otelbpf.export.resource import build_resource

    try:
        exporter = build_exporter(cfg.export)
    except (OtelbpfError, ValueError) as exc:
        print(f"FAIL export {exc}", file=out)
        return False
    transport = getattr(exporter, "transport", None)
    try:
        if transport is None:  # console or none: nothing leaves the host
            print(f"ok   export {cfg.export.protocol}", file=out)
            return True
        where = f"{cfg.export.protocol} {transport.endpoint}"
        if not send:
            print(f"ok   export {where} (not sent: add --export to send one)", file=out)
            return True
        result = check_export(transport, build_resource(cfg.resource, cfg.state.state_dir),
                              cfg.export.timeout)
        if result.ok:
            print(f"ok   export {where} accepted one data point", file=out)
            return True
        print(f"FAIL export {where}: {result.message}", file=out)
        if result.hint:
            print(f"     hint: {result.hint}", file=out)
        return False
    finally:
        exporter.shutdown()


def _check_capabilities(cfg, program_configs, out) -> None:
    """What `otelbpf run` would keep after start (docs/security.md), and what it would lack."""
    from otelbpf.agent.privileges import process_capabilities, run_time_needs

    keep = cfg.security.keep_capabilities or run_time_needs(program_configs)
    held = process_capabilities()["CapPrm"]
    print(f"ok   capabilities after start: {', '.join(sorted(keep & held)) or 'none'}", file=out)
    for cap in sorted(keep - held):
        print(f"no   capabilities: {cap} is needed at run time but not held", file=out)


def cmd_top(args: argparse.Namespace) -> int:
    """Live view of every BPF program's cost and every map's fill; ``--once --json`` for scripts."""
    from otelbpf.top.command import run_top

    return run_top(args)


def build_parser() -> argparse.ArgumentParser:
    # Global options live on a parent parser shared by the top level and every subcommand, so
    # "otelbpf run --log-level debug" works too. SUPPRESS keeps a subcommand's unset option
    # from overwriting a value given before the subcommand; main() fills in the defaults.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS,
                        choices=["debug", "info", "warning", "error"],
                        help="default: info (warning for check), or OTEL_LOG_LEVEL")
    common.add_argument("--log-format", choices=["json", "console"], default=argparse.SUPPRESS,
                        help="default: json when stderr is not a terminal")
    parser = argparse.ArgumentParser(prog="otelbpf", description=__doc__.split("\n")[0],
                                     epilog=EPILOG, parents=[common],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"otelbpf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_command(name: str, func, help: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help, description=help, epilog=EPILOG,
                                 parents=[common],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        command.set_defaults(func=func)
        return command

    run = add_command("run", cmd_run, "run the agent")
    run.add_argument("--config", help="agent config (default: $OTELBPF_CONFIG, else "
                                      "conf/otelbpf.toml in a checkout, "
                                      "/etc/otelbpf/otelbpf.toml when installed)")
    run.add_argument("--once", action="store_true",
                     help="count for one interval, export once, detach and exit "
                          "(exit 1 if that export failed)")
    _add_ebpf_exporter_options(run)

    check = add_command("check", cmd_check,
                        "load and attach everything once, build the exporter, and report")
    check.add_argument("--config")
    check.add_argument("--export", action="store_true",
                       help="also send one real export and explain a failure")
    _add_ebpf_exporter_options(check)

    convert = add_command("convert", cmd_convert, "write the native TOML of an ebpf_exporter config")
    convert.add_argument("yaml", metavar="DIR/NAME.yaml")
    convert.add_argument("-o", "--output", metavar="conf.d/NAME.toml",
                         help="file to write (default: stdout)")
    convert.add_argument("--prefix", default="ebpf_exporter_",
                         help='metric name prefix (default "ebpf_exporter_")')
    convert.add_argument("--aggregation", default="explicit", choices=["explicit", "auto"],
                         help="histograms: explicit le buckets (default) or exponential where exact")

    detach = add_command("detach", cmd_detach,
                         "detach programs left attached and remove their pins (stop the agent first)")
    detach.add_argument("programs", nargs="*", metavar="PROGRAM",
                        help="programs to detach (default: every program pinned under pin_dir)")
    detach.add_argument("--config")

    from otelbpf.top.command import add_arguments as add_top_arguments

    add_top_arguments(add_command("top", cmd_top,
                                  "live view of every BPF program's cost and every map's fill"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_format = getattr(args, "log_format", None)
    json = None if log_format is None else log_format == "json"
    level = getattr(args, "log_level", None)
    if level is None:
        try:
            level = log.level_from_environment(os.environ)
        except OtelbpfError as exc:
            print(f"otelbpf: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    if level is None:
        # check prints its own status lines; keep stderr for problems.
        level = "warning" if args.command == "check" else "info"
    log.configure(level, json=json)
    try:
        return args.func(args)
    except OtelbpfError as exc:
        print(f"otelbpf: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - a bug must still end in one line, not a traceback
        logging.getLogger("otelbpf.cli").debug("unexpected error", exc_info=True)
        print(f"otelbpf: unexpected error: {type(exc).__name__}: {exc} "
              "(run with --log-level debug for the traceback, and please report it)",
              file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
