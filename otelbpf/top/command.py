"""``otelbpf top``: the full-screen view, or ``--once --json`` for scripts.

Only the standard library is imported at module level: ``otelbpf.cli`` imports this module to
build its parser, and every other command would pay for the health and kernel modules."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from otelbpf.errors import OtelbpfError

CAP_SYS_ADMIN = 21
EXIT_USAGE = 2


def missing_privileges() -> list[str]:
    """Capabilities ``top`` lacks: listing programs and maps by id (BPF_*_GET_NEXT_ID) and
    BPF_ENABLE_STATS need CAP_SYS_ADMIN, which also covers loading the map iterator."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                effective = int(line.split()[1], 16)
                return [] if effective >> CAP_SYS_ADMIN & 1 else ["CAP_SYS_ADMIN"]
    return ["CAP_SYS_ADMIN"]


def _sampler(args: argparse.Namespace, history_len: int):
    """Thresholds, objects, pins and program configs from the agent config; without one (none
    installed), the agent's defaults."""
    from otelbpf.cli import _config_path
    from otelbpf.config.agent import load_agent_config, parse_agent_config
    from otelbpf.top.ours import load_configs
    from otelbpf.top.sample import Sampler

    path = _config_path(args.config)
    try:
        cfg = load_agent_config(path)
    except OtelbpfError:
        if args.config or path.exists():
            raise  # named or present: a broken config is an error, not a silent default
        cfg = parse_agent_config({}, path)
    mp = cfg.builtin.map_pressure
    return Sampler(mp.warning, mp.critical, cfg.objects_dir, load_configs(cfg), cfg.state.pin_dir, history_len)


def run_top(args: argparse.Namespace) -> int:
    missing = missing_privileges()
    if missing:
        print(f"otelbpf top: missing {', '.join(missing)}: listing every BPF program and map by id and "
              "turning on run-time stats need it; run as root (sudo otelbpf top)", file=sys.stderr)
        return EXIT_USAGE
    if args.interval <= 0:
        print(f"otelbpf top: --interval {args.interval}: must be above 0 seconds, e.g. --interval 1",
              file=sys.stderr)
        return EXIT_USAGE
    if args.once or args.json:
        return _once(args)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("otelbpf top: the live view needs a terminal on stdin and stdout; for scripts use "
              "--json (or --once for text)", file=sys.stderr)
        return EXIT_USAGE
    try:
        from otelbpf.top.view import TopView
    except ImportError as exc:
        print(f"otelbpf top: the terminal view needs urwid ({exc}): pip install 'urwid>=2.6'", file=sys.stderr)
        return 1
    # Log lines would be drawn over the screen: the header shows what matters instead.
    logging.getLogger().setLevel(logging.CRITICAL)
    history_len = max(2, int(args.history / args.interval))
    sampler = _sampler(args, history_len)
    try:
        TopView(sampler, args.interval, name_filter=args.filter or "").run()
    finally:
        sampler.close()
    return 0


def _once(args: argparse.Namespace) -> int:
    from otelbpf.top.table import matches, plain_tables

    sampler = _sampler(args, 2)
    try:
        sampler.sample()
        time.sleep(args.interval)
        snapshot = sampler.sample()
        document = snapshot.as_json()
        document["run_time_stats"] = sampler.stats.method
        document["map_enumeration"] = sampler.pressure.method
    finally:
        sampler.close()
    document["programs"] = [p for p in document["programs"] if matches(p["name"], args.filter or "")]
    document["maps"] = [m for m in document["maps"] if matches(m["name"], args.filter or "")]
    if args.json:
        json.dump(document, sys.stdout, indent=None if args.compact else 1)
        print()
    else:
        print(plain_tables(snapshot, args.filter or ""))
    return 0


def add_arguments(top: argparse.ArgumentParser) -> None:
    top.add_argument("--config", help="agent config: map pressure thresholds, and which programs and maps "
                                      "otelbpf loaded (default as for `run`; optional)")
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    top.add_argument("--history", type=float, default=300.0,
                     help="seconds of history kept for the selected row's chart (default 300)")
    top.add_argument("--filter", help="show only programs and maps whose name contains this text")
    top.add_argument("--once", action="store_true", help="measure one interval, print, exit")
    top.add_argument("--json", action="store_true", help="one JSON document (implies --once)")
    top.add_argument("--compact", action="store_true", help=argparse.SUPPRESS)

