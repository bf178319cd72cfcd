"""``otelbpf top`` in a real terminal (tmux): the program row with its rate, the map view, quitting."""

from __future__ import annotations

import re
import shlex
import struct
import time
import uuid

import pytest

from otelbpf.kernel.maps import BpfMap, MapType
from otelbpf.kernel.object import BpfObject

from .conftest import MAP_KEYS

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

_SCALE = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_human(text: str) -> float | None:
    """Inverse of otelbpf.top.table.human ("2.01K" -> 2010.0; "-" -> None)."""
    if text == "-":
        return None
    m = re.fullmatch(r"([0-9.]+)([KMGT]?)", text)
    assert m, f"not a number as top shows it: {text!r}"
    return float(m.group(1)) * _SCALE[m.group(2)]


def program_row(screen: str, prog_id: int) -> re.Match | None:
    return re.search(rf"(?m)^\s*{prog_id} +\S+ +[ *]?health_tp +(\S+) +(\S+) +(\S+)(.*)$", screen)


def running_row(prog_id: int):
    def seen(screen: str) -> bool:
        row = program_row(screen, prog_id)
        return row is not None and (parse_human(row.group(1)) or 0) > 0
    return seen


def start_top(tmux, known_program, *args: str) -> None:
    command = shlex.join(known_program.top_command("--interval", "0.5", *args))
    tmux.type_line(f"{command}; echo TOP-EXITED $?")


def quit_and_check_restored(tmux) -> None:
    tmux.send("q")
    screen = tmux.wait_for(lambda s: re.search(r"(?m)^TOP-EXITED \d+$", s), 15, "top exiting after q")
    assert re.search(r"(?m)^TOP-EXITED 0$", screen)
    # The alternate screen was left: the shell's own screen is back, without the table.
    assert not tmux.alternate_screen()
    assert "RUNS/S" not in screen and "m maps/programs" not in screen


def test_program_row_map_view_and_quit(tmux_factory, known_program):
    tmux = tmux_factory(160, 45)
    # Filtered: on a shared host, other programs could fill the screen above ours.
    start_top(tmux, known_program, "--filter", "health_tp")
    screen = tmux.wait_for(running_row(known_program.prog_id), 30, "health_tp with runs/s > 0")
    assert tmux.alternate_screen()
    row = program_row(screen, known_program.prog_id)
    runs = parse_human(row.group(1))
    assert known_program.rate / 3 < runs < known_program.rate * 3
    assert parse_human(row.group(2)) > 0  # average ns per run
    # The kernel says where it is attached; the process holding it is this test's.
    assert "tracepoint:sys_enter_sched_" in row.group(4) and " python(" in row.group(4)
    assert "kernel run-time stats ON while top runs" in screen

    tmux.send("m")
    tmux.wait_for(lambda s: "FILL" in s, 10, "map view")
    tmux.send("/")
    tmux.send("-l", known_program.map_name)
    tmux.send("Enter")
    map_row = rf"(?m)^\s*{known_program.map_id} +hash +[ *]?{known_program.map_name} +{MAP_KEYS} +1.02K +[▏▎▍▌] +4%"
    screen = tmux.wait_for(lambda s: re.search(map_row, s), 15, f"{known_program.map_name} row, {MAP_KEYS} entries")
    assert "FILL" in screen and "MEMORY" in screen

    quit_and_check_restored(tmux)


def test_fits_80x24(tmux_factory, known_program):
    tmux = tmux_factory(80, 24)
    start_top(tmux, known_program, "--filter", "health_tp")
    screen = tmux.wait_for(running_row(known_program.prog_id), 30, "health_tp with runs/s > 0 at 80x24")
    lines = screen.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    assert "RUNS/S" in screen and "CPU%" in screen
    assert lines[-1].startswith(" ↑↓ select") and lines[-1].rstrip().endswith("q quit")  # all keys shown
    # The selected (only) row's history chart: its title and at least one drawn column.
    assert re.search(r"health_tp \(id \d+\) runs/s, last \d+s", screen)
    assert any(ch in screen for ch in "▁▂▃▄▅▆▇█")
    quit_and_check_restored(tmux)


def test_selection_chart_filter_and_sort_keys(tmux_factory, known_program, bpf_build):
    second = BpfObject.open(bpf_build / "tests" / "health_tracepoint.bpf.o")  # loaded, never runs
    second.load()
    try:
        selection_chart_filter_and_sort_keys(tmux_factory(160, 45), known_program)
    finally:
        second.close()


def selection_chart_filter_and_sort_keys(tmux, known_program):
    start_top(tmux, known_program, "--filter", "health_tp")
    screen = tmux.wait_for(running_row(known_program.prog_id), 30, "health_tp row")
    rows = re.findall(r"(?m)^\s*(\d+) +\S+ +[ *]?(\S+) ", screen)
    assert len(rows) >= 2, screen  # the running health_tp and the idle one (and others' copies)
    # The chart follows the top row until a key moves the selection, then stays on the chosen one.
    assert f"{rows[0][1]} (id {rows[0][0]}) runs/s" in screen
    tmux.send("Down")
    chosen = f"{rows[1][1]} (id {rows[1][0]}) runs/s"
    tmux.wait_for(lambda s: chosen in s, 10, "chart of the second row after Down")
    time.sleep(1.2)  # two refreshes at 0.5 s
    assert chosen in tmux.screen()
    tmux.send("/")
    tmux.send("-l", "HEALTH_T")
    tmux.send("Enter")
    screen = tmux.wait_for(lambda s: "filter: HEALTH_T" in s, 10, "filter applied")
    names = re.findall(r"(?m)^\s*\d+ +\S+ +[ *]?(\S+)", screen)
    assert len(names) >= 2 and set(names) == {"health_tp"}  # case-insensitive substring
    # "<" moves the sort to the column left of CPU%; its title gets the arrow.
    tmux.send("<")
    tmux.wait_for(lambda s: "AVG NS▼" in s, 10, "sort by AVG NS")
    tmux.send("r")
    tmux.wait_for(lambda s: "AVG NS▲" in s, 10, "ascending")
    tmux.send("Escape")
    screen = tmux.wait_for(lambda s: "filter:" not in s, 10, "filter cleared")
    assert len(re.findall(r"(?m)^\s*\d+ +\S+ +[ *]?\S+ ", screen)) > 2  # every program again
    quit_and_check_restored(tmux)


def test_fill_bar_takes_the_pressure_colour(tmux_factory, known_program, tmp_path):
    """Thresholds from the agent config (warning 0.7, critical 0.9 by default): 10/10 is red,
    8/10 yellow, 1/10 green (SGR 91, 93, 32 as urwid writes them)."""
    prefix = f"tc_{uuid.uuid4().hex[:4]}_"
    maps = {}
    for level, fill in (("crit", 10), ("warn", 8), ("ok", 1)):
        m = maps[level] = BpfMap.create(MapType.HASH, 4, 8, 10, name=prefix + level)
        for key in range(fill):
            m.update(struct.pack("=I", key), bytes(8))
    try:
        tmux = tmux_factory(120, 30)
        start_top(tmux, known_program, "--filter", prefix)
        tmux.wait_for(lambda s: "RUNS/S" in s, 15, "top started")
        tmux.send("m")
        tmux.wait_for(lambda s: prefix + "ok" in s, 15, "the three maps")
        screen = tmux.screen(colours=True)
        for level, sgr, text in (("crit", "91", "████████ 100%"), ("warn", "93", "██████▍   80%"),
                                 ("ok", "32", "▊         10%")):
            assert re.search(rf"{prefix}{level} .*\x1b\[(?:[0-9;]*;)?{sgr}m(?:\x1b\[[0-9;]*m)*{text}", screen), level
        quit_and_check_restored(tmux)
    finally:
        for m in maps.values():
            m.close()
