"""The column logic of ``otelbpf top`` (pure): what fits a terminal, how rows sort, how fill reads."""

from __future__ import annotations

from otelbpf.health.map_types import CountMethod
from otelbpf.health.pressure import MapObservation
from otelbpf.top.sample import MapRow
from otelbpf.top.table import MAP_COLUMNS, PROGRAM_COLUMNS, fill_bar, human, layout, sort_rows


def widths(columns, width):
    shown = layout(columns, width)
    return [c.key for c, _ in shown], sum(w for _, w in shown) + len(shown) - 1


def test_80_columns_keep_every_number_and_a_wider_terminal_adds_text_columns():
    keys, used = widths(PROGRAM_COLUMNS, 80)
    assert keys[:6] == ["id", "type", "name", "runs_per_s", "avg_ns", "cpu_percent"] and used <= 80
    assert "attached" in keys
    keys, used = widths(PROGRAM_COLUMNS, 160)
    assert {"attached", "process", "otelbpf"} <= set(keys) and used == 160
    keys, used = widths(MAP_COLUMNS, 80)
    assert {"entries", "max_entries", "utilization", "memory"} <= set(keys) and used <= 80
    assert "otelbpf" in widths(MAP_COLUMNS, 160)[0]


def _map(map_id, method, entries, max_entries=100):
    obs = MapObservation(id=map_id, name=f"m{map_id}", type="hash", max_entries=max_entries,
                         count_method=method, entries=entries)
    return MapRow(obs, None, None, 0.7, 0.9)


def test_fill_sort_puts_real_pressure_first_and_full_arrays_and_unknowns_last():
    rows = [_map(1, CountMethod.MAX_ENTRIES, 100), _map(2, CountMethod.KFUNC, 95),
            _map(3, CountMethod.NONE, None), _map(4, CountMethod.KFUNC, 50)]
    fill = next(c for c in MAP_COLUMNS if c.key == "utilization")
    assert [r.id for r in sort_rows(rows, fill, True)] == [2, 4, 1, 3]
    assert [r.id for r in sort_rows(rows, fill, False)] == [4, 2, 1, 3]
    assert [r.pressure for r in rows] == ["ok", "critical", None, "ok"]  # arrays: never a pressure


def test_fill_bar_and_numbers():
    assert fill_bar(0.5) == "████      50%"  # 8 cells, then the percentage in 4
    assert fill_bar(1.0) == "████████ 100%"
    assert fill_bar(None).strip() == "-"
    assert (human(None), human(12), human(2010), human(4.5e6)) == ("-", "12", "2.01K", "4.5M")
