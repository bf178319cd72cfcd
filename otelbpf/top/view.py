"""The full-screen view of ``otelbpf top``, drawn with urwid.

Layout, top to bottom: a status line (what is shown, that run-time stats are on, how maps are
enumerated), the column titles, the table, a chart of the selected row's history, the keys.
Only rows on screen become widgets (``RowWalker``), so a thousand maps cost a sort and some
formatting per refresh, not a thousand widgets; urwid rewrites only the screen lines that changed.
"""

from __future__ import annotations

import urwid

from otelbpf.top.sample import MAPS_EVERY_HIDDEN, MapRow, ProgramRow, Sampler, Snapshot
from otelbpf.top.table import (MAP_COLUMNS, PROGRAM_COLUMNS, Column, cell, header, human, layout, line, matches,
                               sort_rows)

PALETTE = [
    ("status", "black", "light gray"),
    ("title", "bold", ""),
    ("selected", "black", "dark cyan"),
    ("ours", "light cyan", ""),
    ("ok", "dark green", ""),
    ("warning", "yellow", ""),
    ("critical", "light red,bold", ""),
    ("full", "light blue", ""),  # preallocated arrays: full by construction, never a pressure
    ("keys", "black", "light gray"),
    ("chart bar", "dark cyan", ""),
    ("chart bar2", "brown", ""),
    ("chart title", "bold", ""),
]
KEYS = " ↑↓ select  </> sort  r reverse  / filter  Esc unfilter  m maps/programs  q quit"


class Row(urwid.Text):
    """One table line that can take the focus (the selection)."""

    _selectable = True

    def keypress(self, size, key):
        return key


class RowList(urwid.ListBox):
    """The table; ``on_move`` runs when a key moved the selection (until then the top row is
    selected, whatever the sort brings there)."""

    def __init__(self, walker: "RowWalker", on_move) -> None:
        super().__init__(walker)
        self._walker, self._on_move = walker, on_move

    def keypress(self, size, key):
        before = self._walker.focus
        unhandled = super().keypress(size, key)
        if self._walker.focus != before:
            self._on_move()
        return unhandled


class RowWalker(urwid.ListWalker):
    """The sorted rows of the current refresh; widgets are made only for positions shown, and a
    line that reads as before keeps its widget (urwid then reuses its rendered canvas)."""

    def __init__(self) -> None:
        self.rows: list = []
        self.render = lambda row: ""
        self.on_focus = lambda: None
        self.focus = 0
        self._cache: dict[int, urwid.Widget] = {}
        self._by_markup: dict[str, urwid.Widget] = {}  # this refresh's line widgets by their text
        self._previous: dict[str, urwid.Widget] = {}  # ... and the last refresh's

    def update(self, rows: list, render, focus: int) -> None:
        self.rows, self.render = rows, render
        self.focus = min(max(focus, 0), max(len(rows) - 1, 0))
        self._cache = {}
        self._previous, self._by_markup = self._by_markup, {}
        self._modified()

    def _widget(self, pos: int):
        w = self._cache.get(pos)
        if w is None:
            markup = self.render(self.rows[pos])
            key = repr(markup)
            w = self._previous.get(key) or self._by_markup.get(key)
            if w is None:
                w = urwid.AttrMap(Row(markup, wrap="clip"), None, focus_map="selected")
            self._cache[pos] = self._by_markup[key] = w
        return w

    def get_focus(self):
        if not self.rows:
            return None, None
        return self._widget(self.focus), self.focus

    def set_focus(self, position: int) -> None:
        self.focus = position
        self._modified()
        self.on_focus()

    def get_next(self, position: int):
        if position + 1 >= len(self.rows):
            return None, None
        return self._widget(position + 1), position + 1

    def get_prev(self, position: int):
        if position <= 0:
            return None, None
        return self._widget(position - 1), position - 1


class Chart(urwid.WidgetWrap):
    """A titled column chart of the last values that fit its width, one column per refresh,
    drawn with eighth-block characters so it reads the same in colour and in a text capture."""

    def __init__(self, bar_attr: str) -> None:
        self.title = urwid.Text("", wrap="clip")
        self.plot = urwid.Text("", wrap="clip")
        self.bar_attr = bar_attr
        super().__init__(urwid.Pile([("pack", urwid.AttrMap(self.title, "chart title")),
                                     urwid.Filler(urwid.AttrMap(self.plot, bar_attr), valign="bottom")]))

    def show(self, title: str, values: list[float], width: int, height: int) -> None:
        self.title.set_text(title)
        self.plot.set_text(column_chart(values[-max(width, 1):], max(height, 1)))


def column_chart(values: list[float], height: int) -> str:
    """``height`` text rows, one column per value, scaled so the largest fills the height."""
    top = max(values, default=0) or 1
    eighths = [round(max(v, 0) / top * height * 8) for v in values]
    rows = []
    for level in range(height - 1, -1, -1):
        rows.append("".join(_BLOCKS[min(max(e - level * 8, 0), 8)] for e in eighths))
    return "\n".join(rows)


_BLOCKS = " ▁▂▃▄▅▆▇█"


class TopView:
    def __init__(self, sampler: Sampler, interval: float, name_filter: str = "") -> None:
        self.sampler = sampler
        self.interval = interval
        self.mode = "programs"
        self.sort = {"programs": ("cpu_percent", True), "maps": ("utilization", True)}
        self.filter = name_filter
        self.snapshot = Snapshot((), (), None)
        self.selected_id: dict[str, int | None] = {"programs": None, "maps": None}
        self.chart_rows = 7
        self.refreshes = 0

        self.status = urwid.Text("", wrap="clip")
        self.titles = urwid.Text("", wrap="clip")
        self.walker = RowWalker()
        self.walker.on_focus = self.focus_changed
        self.listbox = RowList(self.walker, self.selection_moved)
        self.chart_left = Chart("chart bar")
        self.chart_right = Chart("chart bar2")
        self.charts = urwid.Columns([self.chart_left, self.chart_right], dividechars=2)
        self.footer = urwid.Text(KEYS, wrap="clip")
        self.edit = urwid.Edit(" filter (name contains, Enter applies, Esc clears): ")
        self.body = urwid.Pile([
            ("pack", urwid.AttrMap(self.titles, "title")),
            self.listbox,
            ("pack", urwid.Divider("─")),
            (7, self.charts),
        ])
        self.frame = urwid.Frame(self.body, header=urwid.AttrMap(self.status, "status"),
                                 footer=urwid.AttrMap(self.footer, "keys"))
        self.loop = urwid.MainLoop(self.frame, PALETTE, handle_mouse=False, unhandled_input=self.on_key)

    # -- data -------------------------------------------------------------------------------

    def run(self) -> None:
        self.loop.set_alarm_in(0, self.refresh)
        self.loop.run()

    def refresh(self, loop=None, _data=None) -> None:
        self.refreshes += 1
        self.snapshot = self.sampler.sample(maps=self.mode == "maps" or self.refreshes % MAPS_EVERY_HIDDEN == 0)
        self.redraw()
        self.loop.set_alarm_in(self.interval, self.refresh)

    def columns(self) -> tuple[Column, ...]:
        return PROGRAM_COLUMNS if self.mode == "programs" else MAP_COLUMNS

    def rows(self) -> list:
        rows = self.snapshot.programs if self.mode == "programs" else self.snapshot.maps
        key, descending = self.sort[self.mode]
        column = next(c for c in self.columns() if c.key == key)
        return sort_rows([r for r in rows if matches(r.name, self.filter)], column, descending)

    # -- drawing ----------------------------------------------------------------------------

    def redraw(self) -> None:
        cols, rows_on_screen = self.loop.screen.get_cols_rows()
        shown = layout(self.columns(), cols)
        key, descending = self.sort[self.mode]
        # A larger terminal gives the chart more rows; 80x24 keeps 7 for it and 13 for the table.
        self.chart_rows = max(7, (rows_on_screen - 6) // 3)
        self.body.contents[3] = (self.charts, self.body.options("given", self.chart_rows))
        self.titles.set_text(header(shown, key, descending))

        rows = self.rows()
        selected = self.selected_id[self.mode]
        focus = next((i for i, r in enumerate(rows) if r.id == selected),
                     0 if selected is None else self.walker.focus)
        render = (lambda r: self.program_markup(r, shown)) if self.mode == "programs" else \
            (lambda r: self.map_markup(r, shown))
        self.walker.update(rows, render, focus)
        self.status.set_text(self.status_text(len(rows)))
        self.draw_chart(rows[self.walker.focus] if rows else None, cols)

    def status_text(self, count: int) -> str:
        total = len(self.snapshot.programs if self.mode == "programs" else self.snapshot.maps)
        stats = self.sampler.stats
        if stats.method:
            stats_text = "kernel run-time stats ON while top runs"
        else:
            stats_text = f"run-time stats OFF: {stats.reason}"
        shown = f"{count}/{total}" if self.filter else str(total)
        parts = [f" {self.mode} {shown}", stats_text, f"every {self.interval:g}s"]
        if self.mode == "maps":
            parts.append(f"maps via {self.sampler.pressure.method}")
        if self.filter:
            parts.append(f"filter: {self.filter}")
        return " │ ".join(parts)

    @staticmethod
    def program_markup(row: ProgramRow, shown):
        text = line(row, shown)
        return [("ours", text)] if row.otelbpf else text

    @staticmethod
    def map_markup(row: MapRow, shown):
        """The fill bar in its pressure colour; the rest plain (otelbpf's own maps highlighted).
        Three segments per line: fewer segments are less for urwid to lay out each refresh."""
        before, bar, after = [], None, []
        for c, w in shown:
            text = cell(c.text(row), w, c.right)
            if c.key == "utilization":
                bar = text
            else:
                (after if bar is not None else before).append(text)
        base = "ours" if row.otelbpf else None
        level = row.pressure
        bar_attr = None if level is None else "full" if row.prealloc_full else level
        return [(base, " ".join(before) + " "), (bar_attr, bar), (base, " " + " ".join(after))]

    def draw_chart(self, row, cols: int) -> None:
        half = max((cols - 2) // 2, 1)
        height = self.chart_rows - 1
        if row is None:
            self.chart_left.show("", [], half, height)
            self.chart_right.show("", [], half, height)
            return
        if self.mode == "programs":
            history = list(self.sampler.program_history.get(row.id, ()))
            runs = [h[1] for h in history]
            avg = [h[2] or 0 for h in history]
            span = _span(history)
            self.chart_left.show(f" {row.name} (id {row.id}) runs/s, {span}: now {human(row.runs_per_s)}, "
                                 f"max {human(max(runs, default=None))}", runs, half, height)
            self.chart_right.show(f" avg ns per run: now {human(row.avg_ns)}, max {human(max(avg, default=None))}",
                                  avg, half, height)
        else:
            history = list(self.sampler.map_history.get(row.id, ()))
            fill = [h[1] or 0 for h in history]
            self.chart_left.show(f" {row.name} (id {row.id}) fill, {_span(history)}: now {_pct(row.utilization)}, "
                                 f"max {_pct(max(fill, default=None))}", [f * 100 for f in fill], cols, height)
        charts = [self.chart_left, self.chart_right] if self.mode == "programs" else [self.chart_left]
        if [w for w, _ in self.charts.contents] != charts:
            self.charts.contents = [(w, self.charts.options()) for w in charts]

    # -- keys -------------------------------------------------------------------------------

    def on_key(self, key) -> bool | None:
        if self.frame.focus_position == "footer":
            return self.on_filter_key(key)
        if key in ("q", "Q"):
            raise urwid.ExitMainLoop()
        if key == "m":
            self.mode = "maps" if self.mode == "programs" else "programs"
        elif key in ("<", ">"):
            keys = [c.key for c, _ in layout(self.columns(), self.loop.screen.get_cols_rows()[0])]
            current, descending = self.sort[self.mode]
            i = keys.index(current) if current in keys else 0
            self.sort[self.mode] = (keys[(i + (1 if key == ">" else -1)) % len(keys)], descending)
        elif key == "esc" and self.filter:
            self.filter = ""
        elif key == "r":
            current, descending = self.sort[self.mode]
            self.sort[self.mode] = (current, not descending)
        elif key == "/":
            self.edit.set_edit_text("")  # a new filter replaces the current one; empty clears it
            self.frame.footer = self.edit
            self.frame.focus_position = "footer"
            return True
        else:
            return None
        self.redraw()
        return True

    def on_filter_key(self, key) -> bool:
        if key == "enter":
            self.filter = self.edit.edit_text.strip()
        elif key != "esc":
            return False
        else:
            self.filter = ""
        self.frame.footer = urwid.AttrMap(self.footer, "keys")
        self.frame.focus_position = "body"
        self.redraw()
        return True

    def focus_changed(self) -> None:
        rows = self.walker.rows
        if rows:
            self.draw_chart(rows[self.walker.focus], self.loop.screen.get_cols_rows()[0])

    def selection_moved(self) -> None:
        """The user chose a row: it stays selected across refreshes and re-sorts."""
        rows = self.walker.rows
        if rows:
            self.selected_id[self.mode] = rows[self.walker.focus].id


def _span(history) -> str:
    """"last 42s": the time the history covers (map readings are sparser while maps are hidden)."""
    if len(history) < 2:
        return "last 0s"
    return f"last {(history[-1][0] - history[0][0]) / 1e9:.0f}s"


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"
