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

    agent = Agent(_config_path(args.config))
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

    configs, errors = read_program_configs(cfg)
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


def cmd_top(args: argparse.Namespace) -> int:
    """Live view of every BPF program's cost and every map's fill; ``--once --json`` for scripts."""
    from otelbpf.top.command import run_top

    return run_top(args)


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
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="load and attach everything once and report")
    check.add_argument("--config")
    check.set_defaults(func=cmd_check)
    from otelbpf.top.command import add_arguments as add_top_arguments

    top = sub.add_parser("top", help="live view of every BPF program's cost and every map's fill")
    add_top_arguments(top)
    top.set_defaults(func=cmd_top)
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
