"""Strict reading of TOML tables, shared by the agent and program configs.

A ``Table`` wraps one TOML table and hands out typed values. Each problem (wrong type, bad
value, missing key) is recorded in the file's ``ErrorList`` and a harmless fallback is returned,
so one pass reports every mistake in the file. ``Table.finish()`` reports the keys nobody read as
unknown, with the closest known key as a suggestion.
"""

from __future__ import annotations

import datetime
import difflib
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from otelbpf.config import toml
from otelbpf.config.substitution import substitute_environment
from otelbpf.errors import ConfigError, ConfigErrors

MISSING: Any = object()


class ErrorList:
    """The config errors of one file, in the order found."""

    def __init__(self, path: Path | str | None):
        self.path = path
        self.errors: list[ConfigError] = []

    def add(self, entry: str | None, field: str | None, message: str,
            fix: str | None = None) -> None:
        self.errors.append(ConfigError(self.path, entry or None, field, message, fix))

    def extend(self, errors: Iterable[ConfigError]) -> None:
        self.errors.extend(errors)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigErrors(list(self.errors))


def read_toml(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse a TOML file; unreadable or malformed files raise ``ConfigErrors`` with one error."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        message = f"cannot read the file: {exc.strerror or exc}"
        raise ConfigErrors([ConfigError(path, None, None, message,
                                        "check the path and its permissions")]) from None
    return parse_toml(data, path, environ)


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def parse_toml(data: bytes | str, path: Path | str | None,
               environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parsed TOML with ``${env:NAME}`` references replaced from ``environ`` (default:
    os.environ), see config.substitution."""
    parsed = _parse_toml(data, path)
    errors: list[ConfigError] = []
    parsed = substitute_environment(parsed, path, os.environ if environ is None else environ,
                                    errors)
    if errors:
        raise ConfigErrors(errors)
    return parsed


def _parse_toml(data: bytes | str, path: Path | str | None) -> dict[str, Any]:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise ConfigErrors([ConfigError(path, f"byte {exc.start}", None,
                                        "the file is not valid UTF-8",
                                        "save the file as UTF-8")]) from None
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as exc:
        message = str(exc)
        entry = None
        match = _TOML_POSITION.search(message)
        if match:
            entry = f"line {match.group(1)}, column {match.group(2)}"
            message = message[: match.start()]
        raise ConfigErrors([ConfigError(path, entry, None, f"invalid TOML: {message}",
                                        "fix the TOML syntax at that position")]) from None
    except RecursionError:
        raise ConfigErrors([ConfigError(path, None, None, "invalid TOML: nested too deeply",
                                        "flatten the nested arrays or tables")]) from None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """``'use "interval"'`` when ``word`` looks like a misspelled candidate, else None."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f'did you mean "{matches[0]}"?' if matches else None


def describe(value: Any) -> str:
    """How a TOML value reads in a message: ``integer 5``, ``string "x"``, ``a table``."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'string "{shown}"'
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return f"date/time {value}"
    return type(value).__name__


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Longer waits are mistakes, and overflow timer APIs (threading waits, poll timeouts).
MAX_DURATION = 365 * 24 * 3600.0


def parse_duration(value: Any) -> float:
    """``"10s"``, ``"500ms"``, ``"1m30s"``, ``"1h"`` or a number of seconds → seconds.

    Raises ValueError for anything else, including negative, infinite or NaN values.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {describe(value)}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if not text or pos != len(text):
            raise ValueError(f'cannot read {describe(value)} as a duration')
    else:
        raise ValueError(f"expected a duration, got {describe(value)}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite, non-negative number of seconds, got {value}")
    if seconds > MAX_DURATION:
        raise ValueError(f"duration {value} is longer than a year")
    return seconds


DURATION_FIX = 'write it like "10s", "500ms", "1m" or a number of seconds'


def freeze(value: Any) -> Any:
    """Deep read-only copy of a TOML value: lists → tuples, tables → MappingProxyType."""
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


class Table:
    """One TOML table read strictly; ``entry`` names it in errors (``counters[0] "x"``)."""

    def __init__(self, data: Mapping[str, Any], errors: ErrorList, entry: str):
        self.data = data
        self.errors = errors
        self.entry = entry
        self._read: set[str] = set()

    # -- plumbing -----------------------------------------------------------------------------

    def error(self, field: str | None, message: str, fix: str | None = None) -> None:
        self.errors.add(self.entry, field, message, fix)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        """The value as TOML gave it, marked as read (no type check)."""
        self._read.add(key)
        return self.data.get(key, default)

    def _get(self, key: str, required: bool, expected: str) -> tuple[bool, Any]:
        """(True, value) when the key is present; (False, None) otherwise (an error if required)."""
        self._read.add(key)
        if key in self.data:
            return True, self.data[key]
        if required:
            self.error(key, f"is required ({expected})", f"add {key} = ...")
        return False, None

    def _typed(self, key: str, required: bool, types: tuple[type, ...],
               expected: str) -> tuple[bool, Any]:
        """Like ``_get``, but a value of the wrong type is an error and reads as absent."""
        found, value = self._get(key, required, expected)
        if not found:
            return False, None
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            self.error(key, f"expected {expected}, got {describe(value)}")
            return False, None
        return True, value

    # -- scalar readers -----------------------------------------------------------------------
    # Each returns ``default`` when the key is absent or unusable (after recording the error);
    # leaving ``default`` out makes the key required.

    def string(self, key: str, default: Any = MISSING, *, choices: Sequence[str] | None = None,
               non_empty: bool = False) -> str:
        fallback = _fallback(default, choices[0] if choices else "")
        found, value = self._typed(key, default is MISSING, (str,), "a string")
        if not found:
            return fallback
        if non_empty and not value:
            self.error(key, "must not be empty")
            return fallback
        if choices is not None and value not in choices:
            options = ", ".join(f'"{c}"' for c in choices)
            hint = did_you_mean(value, choices)
            self.error(key, f'"{value}" is not one of {options}', hint or f"use one of {options}")
            return fallback
        return value

    def integer(self, key: str, default: Any = MISSING, *, min: int | None = None,
                max: int | None = None) -> int:
        fallback = _fallback(default, min if min is not None else 0)
        found, value = self._typed(key, default is MISSING, (int,), "an integer")
        if not found:
            return fallback
        if (min is not None and value < min) or (max is not None and value > max):
            self.error(key, f"{value} is out of range", _range_fix(min, max))
            return fallback
        return value

    def number(self, key: str, default: Any = MISSING, *, min: float | None = None,
               max: float | None = None, min_exclusive: bool = False) -> float:
        fallback = _fallback(default, float(max) if max is not None else 1.0)
        found, value = self._typed(key, default is MISSING, (int, float), "a number")
        if not found:
            return fallback
        bad = not math.isfinite(value)
        bad = bad or (min is not None and (value <= min if min_exclusive else value < min))
        bad = bad or (max is not None and value > max)
        if bad:
            lower = f"> {min}" if min_exclusive else f">= {min}"
            parts = [p for p in ((lower if min is not None else ""),
                                 (f"<= {max}" if max is not None else "")) if p]
            fix = f"use a finite number {' and '.join(parts)}".rstrip()
            self.error(key, f"{value} is out of range", fix)
            return fallback
        return float(value)

    def boolean(self, key: str, default: Any = MISSING) -> bool:
        found, value = self._typed(key, default is MISSING, (bool,), "true or false")
        return value if found else _fallback(default, False)

    def duration(self, key: str, default: Any = MISSING, *, positive: bool = True) -> float:
        fallback = _fallback(default, 1.0)
        found, value = self._get(key, default is MISSING, "a duration")
        if not found:
            return fallback
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.error(key, str(exc), DURATION_FIX)
            return fallback
        if positive and seconds <= 0:
            self.error(key, "must be longer than zero", DURATION_FIX)
            return fallback
        return seconds

    def strings(self, key: str, default: Any = MISSING, *, unique: bool = False) -> tuple[str, ...]:
        found, value = self._typed(key, default is MISSING, (list,), "an array of strings")
        if not found:
            return _fallback(default, ())
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.error(f"{key}[{i}]", f"expected a string, got {describe(item)}")
            elif unique and item in out:
                self.error(f"{key}[{i}]", f'"{item}" is listed twice', "remove the duplicate")
            else:
                out.append(item)
        return tuple(out)

    def string_table(self, key: str, *, what: str = "value",
                     secret: bool = False) -> dict[str, str]:
        """A table of string → string (``headers``, ``[resource]``)."""
        found, value = self._typed(key, False, (dict,), "a table of strings")
        if not found:
            return {}
        return self.string_pairs(value, prefix=f"{key}.", what=what, secret=secret)

    def string_pairs(self, value: Mapping[str, Any], *, prefix: str = "", what: str = "value",
                     secret: bool = False) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in value.items():
            if isinstance(v, dict):
                dotted = [k]
                while isinstance(v, dict) and v:
                    key = next(iter(v))
                    dotted.append(key)
                    v = v[key]
                self.error(f"{prefix}{k}", "a dotted key made a nested table",
                           f'quote the whole key: "{".".join(dotted)}" = ...')
            elif not isinstance(v, str):
                shown = "a non-string value" if secret else describe(v)
                self.error(f"{prefix}{k}", f"expected a string {what}, got {shown}",
                           "quote the value")
            else:
                out[k] = v
        return out

    # -- nested tables ------------------------------------------------------------------------

    def table(self, key: str, entry: str | None = None) -> Table:
        """A sub-table (absent → empty). Its ``entry`` defaults to ``PARENT.key``."""
        found, value = self._typed(key, False, (dict,), "a table")
        value = value if found else {}
        name = entry or (f"{self.entry}.{key}" if self.entry else key)
        return Table(value, self.errors, name)

    def tables(self, key: str, entry: Callable[[int, Mapping[str, Any]], str],
               required: bool = False) -> list[Table]:
        """An array of tables (``[[counters]]`` or ``labels = [{...}]``)."""
        found, value = self._typed(key, required, (list,), "an array of tables")
        out: list[Table] = []
        if not found:
            return out
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                self.error(f"{key}[{i}]", f"expected a table, got {describe(item)}",
                           f"write {key} = [{{ name = ... }}, ...]")
                continue
            out.append(Table(item, self.errors, entry(i, item)))
        return out

    def finish(self, known: Iterable[str] = ()) -> None:
        """Report every key that was not read as unknown."""
        known = set(known) | self._read
        for key in self.data:
            if key not in known:
                hint = did_you_mean(key, known)
                self.error(key, "unknown key", hint or _known_list(known))


def _fallback(default: Any, fallback: Any) -> Any:
    return fallback if default is MISSING else default


def _known_list(known: Iterable[str]) -> str:
    keys = sorted(known)
    if not keys:
        return "remove it"
    return "known keys: " + ", ".join(keys)


def _range_fix(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"use a value from {lo} to {hi}"
    if lo is not None:
        return f"use a value >= {lo}"
    return f"use a value <= {hi}"


def entry_name(section: str, index: int, item: Mapping[str, Any], key: str = "name") -> str:
    """``counters[0] "syscalls.count"``: the index plus the name when it is a readable string."""
    name = item.get(key)
    if isinstance(name, str) and name:
        shown = name if len(name) <= 60 else name[:57] + "..."
        return f'{section}[{index}] "{shown}"'
    return f"{section}[{index}]"
