"""Command line: ``otelbpf run``, ``otelbpf check``, ``otelbpf --version``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from otelbpf import __version__, log
from otelbpf.errors import OtelbpfError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _config_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    from otelbpf.config.agent import default_config_path

    return default_config_path()


def cmd_run(args: argparse.Namespace) -> int:
    from otelbpf.agent.runtime import Agent

    agent = Agent(_config_path(args.config), ebpf_exporter=_ebpf_exporter_option(args))
    agent.install_signal_handlers()
    try:
        agent.start()
    except OtelbpfError as exc:
        agent.close()
        print(f"otelbpf: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return agent.run(iterations=args.iterations)


def cmd_check(args: argparse.Namespace) -> int:
    """Load and attach everything once, print a status line per program, map and metric."""
    from otelbpf.agent.program import LoadedProgram
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
            prog = LoadedProgram.load(pcfg, state=state, limits=cfg.limits)
        except OtelbpfError as exc:
            ok = False
            print(f"FAIL program {name}: {exc}", file=out)
            continue
        try:
            print(f"ok   program {name} ({pcfg.object})", file=out)
            for bpf_name in sorted(prog.obj.programs):
                if bpf_name in prog.links:
                    print(f"ok   program {name}/{bpf_name} attached", file=out)
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
    parse_program_config(text, out or source.with_suffix(".toml"), where)  # must load back
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otelbpf", description=__doc__)
    parser.add_argument("--version", action="version", version=f"otelbpf {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", choices=["json", "console"], default=None,
                        help="default: json when stderr is not a terminal")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the agent")
    run.add_argument("--config", help="agent config (default: conf/otelbpf.toml in a checkout, "
                                      "/etc/otelbpf/otelbpf.toml when installed)")
    run.add_argument("--iterations", type=int, default=None, help=argparse.SUPPRESS)
    _add_ebpf_exporter_options(run)
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="load and attach everything once and report")
    check.add_argument("--config")
    _add_ebpf_exporter_options(check)
    check.set_defaults(func=cmd_check)
    convert = sub.add_parser("convert", help="write the native TOML of an ebpf_exporter config")
    convert.add_argument("yaml", metavar="DIR/NAME.yaml")
    convert.add_argument("-o", "--output", metavar="conf.d/NAME.toml",
                         help="file to write (default: stdout)")
    convert.add_argument("--prefix", default="ebpf_exporter_",
                         help='metric name prefix (default "ebpf_exporter_")')
    convert.add_argument("--aggregation", default="explicit", choices=["explicit", "auto"],
                         help="histograms: explicit le buckets (default) or exponential where exact")
    convert.set_defaults(func=cmd_convert)
    detach = sub.add_parser("detach", help="detach programs left attached and remove their pins "
                                           "(stop the agent first)")
    detach.add_argument("programs", nargs="*", metavar="PROGRAM",
                        help="programs to detach (default: every program pinned under pin_dir)")
    detach.add_argument("--config")
    detach.set_defaults(func=cmd_detach)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    json = None if args.log_format is None else args.log_format == "json"
    level = args.log_level
    if args.command == "check" and level == "info":
        level = "warning"  # check prints its own status lines; keep stderr for problems
    log.configure(level, json=json)
    try:
        return args.func(args)
    except OtelbpfError as exc:
        print(f"otelbpf: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
