"""Log lines as operators read them: one JSON object per line, each with ``logger``, tracebacks
inside the line; OTEL_LOG_LEVEL; global options before or after the subcommand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from otelbpf import log
from otelbpf.cli import build_parser
from otelbpf.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

PROGRAM = """
import logging, structlog
from otelbpf import log
log.configure("debug", json=True)
structlog.get_logger("otelbpf.export").warning("structlog line", n=1)
logging.getLogger("otelbpf.kernel").info("stdlib line %d", 2)
try:
    1 / 0
except ZeroDivisionError:
    structlog.get_logger("otelbpf.agent").exception("flush failed")
    logging.getLogger("otelbpf.streams").error("reader failed", exc_info=True)
"""


def test_json_lines_carry_logger_and_tracebacks():
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                         cwd=REPO, timeout=60, check=True)
    lines = [json.loads(line) for line in out.stderr.splitlines()]
    assert [(e["logger"], e["event"]) for e in lines] == [
        ("otelbpf.export", "structlog line"), ("otelbpf.kernel", "stdlib line 2"),
        ("otelbpf.agent", "flush failed"), ("otelbpf.streams", "reader failed")]
    for event in lines[2:]:
        assert event["level"] == "error"
        assert event["exception"].startswith("Traceback") and "ZeroDivisionError" in event["exception"]
    assert all("timestamp" in e and "level" in e for e in lines)


@pytest.mark.parametrize("value,level", [("warn", "warning"), ("DEBUG", "debug"), ("", None),
                                         ("error", "error")])
def test_otel_log_level(value, level):
    assert log.level_from_environment({"OTEL_LOG_LEVEL": value}) == level


def test_bad_otel_log_level_is_a_config_error():
    with pytest.raises(ConfigError, match="OTEL_LOG_LEVEL.*verbose"):
        log.level_from_environment({"OTEL_LOG_LEVEL": "verbose"})


@pytest.mark.parametrize("argv", [
    ["--log-level", "debug", "--log-format", "json", "run", "--once"],
    ["run", "--log-level", "debug", "--once", "--log-format", "json"],
])
def test_global_options_before_or_after_the_subcommand(argv):
    args = build_parser().parse_args(argv)
    assert (args.command, args.log_level, args.log_format, args.once) == ("run", "debug", "json",
                                                                         True)


def test_an_option_before_the_subcommand_is_kept_when_not_repeated():
    args = build_parser().parse_args(["--log-level", "error", "check", "--export"])
    assert args.log_level == "error" and args.export


def test_help_lists_exit_codes_environment_and_docs():
    text = build_parser().format_help()
    for expected in ("exit codes:", "2  configuration error", "OTEL_LOG_LEVEL",
                     "OTEL_EXPORTER_OTLP_", "docs/backends.md", "docs/troubleshooting.md"):
        assert expected in text
    out = subprocess.run([sys.executable, "-m", "otelbpf", "run", "--help"], capture_output=True,
                         text=True, cwd=REPO, timeout=60)
    assert "--once" in out.stdout and "exit codes:" in out.stdout


def test_otel_log_level_applies_without_flag():
    out = subprocess.run([sys.executable, "-m", "otelbpf", "check", "--config", "/nonexistent.toml"],
                         capture_output=True, text=True, cwd=REPO, timeout=60,
                         env={"OTEL_LOG_LEVEL": "loud", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2
    assert out.stderr.strip() == ('otelbpf: environment: OTEL_LOG_LEVEL: "loud" is not a log level '
                                  '(fix: use "debug", "info", "warn" or "error")')


def test_otelbpf_config_names_the_file_and_config_wins(tmp_path):
    mounted = tmp_path / "mounted.toml"
    mounted.write_text('[agent]\nintervl = "1s"\n')
    env = {"OTELBPF_CONFIG": str(mounted), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "otelbpf", "check"], capture_output=True,
                         text=True, cwd=REPO, timeout=60, env=env)
    assert out.returncode == 2 and str(mounted) in out.stdout and "intervl" in out.stdout
    other = tmp_path / "other.toml"
    other.write_text('[agent]\nintervall = "1s"\n')
    out = subprocess.run([sys.executable, "-m", "otelbpf", "check", "--config", str(other)],
                         capture_output=True, text=True, cwd=REPO, timeout=60, env=env)
    assert out.returncode == 2 and str(other) in out.stdout and str(mounted) not in out.stdout
