"""The strict table reader: durations, TOML syntax errors, unknown keys, type errors."""

from __future__ import annotations

import math

import pytest

from otelbpf.config.tables import ErrorList, Table, parse_duration, parse_toml
from otelbpf.errors import ConfigErrors


@pytest.mark.parametrize("text,seconds", [
    ("10s", 10.0), ("500ms", 0.5), ("1m", 60.0), ("1h", 3600.0), ("1m30s", 90.0),
    ("1.5s", 1.5), (" 2s ", 2.0), (5, 5.0), (0.25, 0.25), ("0s", 0.0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "s", "10 s", "-1s", "1d", "1s2", True, [1], -3,
                                  math.inf, math.nan, "1e400s", "10sec"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_toml_syntax_error_has_line_and_column():
    with pytest.raises(ConfigErrors) as info:
        parse_toml("[agent]\ninterval = \n", "x.toml")
    (error,) = info.value.errors
    assert error.entry == "line 2, column 12"
    assert "invalid TOML" in error.message
    assert str(error).startswith("x.toml: line 2, column 12: invalid TOML")


def test_non_utf8_file():
    with pytest.raises(ConfigErrors, match="not valid UTF-8"):
        parse_toml(b"a = '\xff'", "x.toml")


def read(data: dict) -> tuple[Table, ErrorList]:
    errors = ErrorList("f.toml")
    return Table(data, errors, "section"), errors


def test_unknown_key_suggests_closest():
    table, errors = read({"intervl": 1, "zzz": 2})
    table.duration("interval", 10.0)
    table.finish()
    assert [(e.field, e.fix) for e in errors.errors] == [
        ("intervl", 'did you mean "interval"?'), ("zzz", "known keys: interval")]


@pytest.mark.parametrize("method,value,message", [
    ("integer", "5", 'expected an integer, got string "5"'),
    ("integer", True, "expected an integer, got boolean true"),
    ("string", 5, "expected a string, got integer 5"),
    ("boolean", 1, "expected true or false, got integer 1"),
    ("number", "x", 'expected a number, got string "x"'),
    ("strings", "x", "expected an array of strings"),
])
def test_type_errors_name_the_field(method, value, message):
    table, errors = read({"key": value})
    getattr(table, method)("key")
    (error,) = errors.errors
    assert (error.path, error.entry, error.field) == ("f.toml", "section", "key")
    assert message in error.message


def test_required_and_range():
    table, errors = read({"n": 0, "f": math.inf})
    assert table.string("missing") == ""
    assert table.integer("n", 3, min=1) == 3
    assert table.number("f", 0.5, min=0, max=1) == 0.5
    assert [e.field for e in errors.errors] == ["missing", "n", "f"]
    assert "is required" in errors.errors[0].message


def test_dotted_key_in_string_table():
    table, errors = read({"deployment": {"environment": {"name": "dev"}}, "ok": "x"})
    assert table.string_pairs(table.data) == {"ok": "x"}
    assert '"deployment.environment.name"' in errors.errors[0].fix


def test_secret_values_are_not_echoed():
    table, errors = read({"headers": {"authorization": 12345}})
    table.string_table("headers", secret=True)
    assert "12345" not in str(errors.errors[0])
