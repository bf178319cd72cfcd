"""Structured logging: JSON lines when stderr is not a terminal, readable key=value lines when it is.

Logs go to stderr so that stdout stays free for the console exporter's metrics.
"""

from __future__ import annotations

import logging
import sys

import structlog

from otelbpf.errors import ConfigError


def configure(level: str = "info", *, json: bool | None = None) -> None:
    """Every line — structlog's and the standard library's — goes through one stdlib handler, so
    each carries ``logger`` (the module's logger name), ``level`` and ``timestamp``, and an
    exception's traceback is part of the line (an ``exception`` string in JSON mode)."""
    if json is None:
        json = not sys.stderr.isatty()
    rendering: list = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if json
        else [structlog.dev.ConsoleRenderer(colors=False)]
    )
    numeric = logging.getLevelName(level.upper())  # "INFO" -> 20 (works on Python 3.9)
    # Modules that log through the standard library (kernel, streams, health) come out in the
    # same format as structlog's own lines.
    shared = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        foreign_pre_chain=shared,
    ))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


# OTEL_LOG_LEVEL as the OpenTelemetry SDKs spell it → our level names.
_OTEL_LOG_LEVELS = {"debug": "debug", "info": "info", "warn": "warning", "warning": "warning",
                    "error": "error"}


def level_from_environment(environ) -> str | None:
    """The level OTEL_LOG_LEVEL asks for, None when unset; ConfigError for an unknown level."""
    value = environ.get("OTEL_LOG_LEVEL", "").strip().lower()
    if not value:
        return None
    if value not in _OTEL_LOG_LEVELS:
        raise ConfigError("environment", None, "OTEL_LOG_LEVEL", f'"{value}" is not a log level',
                          'use "debug", "info", "warn" or "error"')
    return _OTEL_LOG_LEVELS[value]


def get(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
