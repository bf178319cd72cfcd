"""The columns of both views: titles, widths, how a value is shown and how rows sort.

Pure logic shared by the urwid view and the plain ``--once`` output. Fixed columns always show
(they fit 80 columns); the free-text columns at the end (attach target, process, otelbpf
metrics) share what a wider terminal leaves, in that order, each only when it gets its minimum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from otelbpf.top.sample import MapRow, Snapshot

BAR_CELLS = 8
_PARTIAL = " ▏▎▍▌▋▊▉█"
OURS_MARK = "*"  # in front of the name of programs and maps an otelbpf agent loaded


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int  # fixed width; for flexible columns the minimum
    right: bool
    value: Callable  # row -> sortable value (None sorts last)
    text: Callable  # row -> shown text
    flexible: bool = False
    preferred: int = 0  # flexible columns: width before the last one takes the rest


def human(value: float | None, unit: str = "") -> str:
    """3 significant digits with K/M/G/T (powers of 1000), "-" when unknown."""
    if value is None:
        return "-"
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}{unit}"
    if value == int(value):
        return f"{int(value)}{unit}"
    return f"{value:.3g}{unit}"


def human_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    for suffix, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value}B"


def fill_bar(utilization: float | None, cells: int = BAR_CELLS) -> str:
    """``cells`` block characters (eighths) and the percentage, e.g. "█████▌   70%"."""
    if utilization is None:
        return " " * cells + "   -"
    eighths = round(min(max(utilization, 0.0), 1.0) * cells * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (_PARTIAL[part] if part else "")
    return f"{bar:<{cells}}{utilization * 100:4.0f}%"


def _name(row) -> str:
    return (OURS_MARK if row.otelbpf else " ") + row.name


PROGRAM_COLUMNS: tuple[Column, ...] = (
    Column("id", "ID", 6, True, lambda r: r.id, lambda r: str(r.id)),
    Column("type", "TYPE", 14, False, lambda r: r.type, lambda r: r.type),
    Column("name", " NAME", 16, False, lambda r: r.name, _name),
    Column("runs_per_s", "RUNS/S", 8, True, lambda r: r.runs_per_s, lambda r: human(r.runs_per_s)),
    Column("avg_ns", "AVG NS", 7, True, lambda r: r.avg_ns, lambda r: human(r.avg_ns)),
    Column("cpu_percent", "CPU%", 6, True, lambda r: r.cpu_percent,
           lambda r: "-" if r.cpu_percent is None else f"{r.cpu_percent:.2f}"),
    Column("attached", "ATTACHED", 14, False, lambda r: ",".join(r.attached), lambda r: ",".join(r.attached),
           flexible=True, preferred=28),
    Column("process", "PROCESS", 14, False, lambda r: ",".join(r.owners), lambda r: ",".join(r.owners),
           flexible=True, preferred=22),
    Column("otelbpf", "OTELBPF METRICS", 16, False, lambda r: r.otelbpf, lambda r: r.otelbpf or "",
           flexible=True),
)


def _entries(row: MapRow) -> str:
    return human_bytes(row.ringbuf_used) if row.count_method == "ringbuf" else human(row.entries)


def _max_entries(row: MapRow) -> str:
    return human_bytes(row.max_entries) if row.count_method == "ringbuf" else human(row.max_entries)


MAP_COLUMNS: tuple[Column, ...] = (
    Column("id", "ID", 6, True, lambda r: r.id, lambda r: str(r.id)),
    Column("type", "TYPE", 12, False, lambda r: r.type, lambda r: r.type),
    Column("name", " NAME", 16, False, lambda r: r.name, _name),
    Column("entries", "ENTRIES", 7, True,
           lambda r: r.ringbuf_used if r.count_method == "ringbuf" else r.entries, _entries),
    Column("max_entries", "MAX", 7, True, lambda r: r.max_entries, _max_entries),
    # Preallocated arrays are full by construction and never a pressure: they sort after real fills.
    Column("utilization", "FILL", BAR_CELLS + 5, False, lambda r: None if r.prealloc_full else r.utilization,
           lambda r: fill_bar(r.utilization)),
    Column("memory", "MEMORY", 7, True, lambda r: r.memory, lambda r: human_bytes(r.memory)),
    Column("count_method", "COUNTED BY", 11, False, lambda r: r.count_method, lambda r: r.count_method,
           flexible=True, preferred=11),
    Column("otelbpf", "OTELBPF METRICS", 16, False, lambda r: r.otelbpf, lambda r: r.otelbpf or "",
           flexible=True),
)


def layout(columns: Sequence[Column], width: int) -> list[tuple[Column, int]]:
    """(column, width) of the columns that fit ``width`` screen cells, one space between them."""
    shown = [(c, c.width) for c in columns if not c.flexible]
    left = width - sum(w for _, w in shown) - (len(shown) - 1)
    flexible = [c for c in columns if c.flexible]
    for i, c in enumerate(flexible):
        if left < c.width + 1:
            break
        last = i == len(flexible) - 1 or left - (c.preferred + 1) < flexible[i + 1].width + 1
        w = left - 1 if last else c.preferred
        shown.append((c, w))
        left -= w + 1
        if last:
            break
    return shown


def cell(text: str, width: int, right: bool) -> str:
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.rjust(width) if right else text.ljust(width)


def header(shown: Sequence[tuple[Column, int]], sort_key: str, descending: bool) -> str:
    parts = []
    for c, w in shown:
        title = c.title + (("▼" if descending else "▲") if c.key == sort_key else "")
        parts.append(cell(title, w, c.right))
    return " ".join(parts)


def line(row, shown: Sequence[tuple[Column, int]]) -> str:
    return " ".join(cell(c.text(row), w, c.right) for c, w in shown)


def matches(name: str, text: str) -> bool:
    """The name filter: case-insensitive substring."""
    return not text or text.lower() in name.lower()


def sort_rows(rows: Sequence, column: Column, descending: bool) -> list:
    """Rows ordered by ``column``; rows without a value always last, ties by id."""
    keyed = [(column.value(r), r.id, r) for r in rows]
    known = sorted((k for k in keyed if k[0] is not None), key=lambda k: k[1])
    known.sort(key=lambda k: k[0], reverse=descending)
    unknown = sorted((k for k in keyed if k[0] is None), key=lambda k: k[1])
    return [k[2] for k in known] + [k[2] for k in unknown]


def plain_tables(snapshot: Snapshot, name_filter: str, width: int = 160) -> str:
    """Both tables as text, for ``otelbpf top --once`` without ``--json``."""
    out = []
    for title, columns, rows, key in (("programs", PROGRAM_COLUMNS, snapshot.programs, "cpu_percent"),
                                      ("maps", MAP_COLUMNS, snapshot.maps, "utilization")):
        shown = layout(columns, width)
        column = next(c for c in columns if c.key == key)
        out.append(f"{title}:")
        out.append(header(shown, key, True))
        out.extend(line(r, shown).rstrip() for r in sort_rows(
            [r for r in rows if matches(r.name, name_filter)], column, True))
        out.append("")
    return "\n".join(out).rstrip("\n")

