"""``${env:NAME}`` in config files: values taken from the environment, as in the Collector's config.

Secrets (API keys, basic-auth credentials) can then stay in the environment — a systemd
EnvironmentFile, a Kubernetes Secret — while the TOML file names where they go::

    [export]
    headers = { authorization = "Basic ${env:GRAFANA_CLOUD_BASIC_AUTH}" }
    endpoint = "${env:OTLP_ENDPOINT:-http://localhost:4318}"

Rules: substitution happens in string values after the TOML is parsed, so a value from the
environment can hold quotes or backslashes without breaking the file's syntax, and it never
changes a value's type (a duration written as ``"${env:INTERVAL}"`` is read like ``"15s"``).
``${env:NAME:-default}`` gives a default when NAME is unset or empty; an unset NAME without a
default is a config error. ``$${`` writes a literal ``${``. Names are
``[A-Za-z_][A-Za-z0-9_]*``; any other ``${…}`` is a config error, so a typo cannot pass through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otelbpf.errors import ConfigError

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_NAME = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def substitute_environment(data: Any, path: Path | str | None, environ: Mapping[str, str],
                           errors: list[ConfigError], where: tuple[str, ...] = ()) -> Any:
    """``data`` (parsed TOML) with every ``${env:…}`` replaced; problems appended to ``errors``."""
    if isinstance(data, str):
        return _substitute(data, path, environ, errors, where)
    if isinstance(data, dict):
        return {key: substitute_environment(value, path, environ, errors, (*where, str(key)))
                for key, value in data.items()}
    if isinstance(data, list):
        # An item is reported as the list's field with its index: programs[2].
        parent, name = where[:-1], where[-1] if where else ""
        return [substitute_environment(value, path, environ, errors, (*parent, f"{name}[{i}]"))
                for i, value in enumerate(data)]
    return data


def _substitute(text: str, path, environ: Mapping[str, str], errors: list[ConfigError],
                where: tuple[str, ...]) -> str:
    if "$" not in text:
        return text

    def replace(match: re.Match) -> str:
        if match.group(0) == "$${":
            return "${"
        reference = _NAME.fullmatch(match.group(1))
        entry = ".".join(where[:-1]) or None
        field = where[-1] if where else None
        if reference is None:
            errors.append(ConfigError(path, entry, field,
                                      f'"${{{match.group(1)}}}" is not an environment reference',
                                      "write ${env:NAME} or ${env:NAME:-default}; "
                                      "write $${ for a literal ${"))
            return match.group(0)
        name, default = reference.group(1), reference.group(2)
        value = environ.get(name, "")
        if value:
            return value
        if default is not None:
            return default
        if name in environ:
            return ""
        errors.append(ConfigError(path, entry, field,
                                  f"environment variable {name} is not set",
                                  f"set {name}, or write ${{env:{name}:-default}}"))
        return ""

    return _REFERENCE.sub(replace, text)
