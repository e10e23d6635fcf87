"""The table of circles: one row per circle, keyed by its id, refreshed in place so that the
cursor and the scroll position stay where the learner left them when rows arrive live.

Built on Textual's Line API rather than `DataTable`: only the lines on screen are rendered
(`render_line`), each row's line is cached until its cells, stripe or cursor change, and
`show()` replaces the rows without rebuilding any per-row structure. On a home of 10 000
circles a `DataTable` measured and re-rendered every cell on each keystroke (bench/app_speed.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from p2pnode.store.models import CircleSummary
from tui import format as fmt

#: most telling first: at 80 columns the first five fit
COLUMNS = ("Circle", "Next meeting", "Seats", "Status", "Where", "Lang", "Facilitator",
           "Course")
_WIDTHS = (24, 22, 6, 9, 24, 5, 36, 28)
_MINE = {"facilitating": "◆ ", "joined": "● "}
#: control characters (from peers' names) would move the terminal's cursor: shown as spaces
_CONTROL = dict.fromkeys([*range(32), 127], " ")
#: rows formatted and lines rendered kept; a few screens' worth is all that is ever reused
_CACHE_ROWS = 1000
_CACHE_LINES = 2000

Row = tuple[str, tuple[str, ...]]


def circle_row(circle: CircleSummary, mine: str | None) -> tuple[str, ...]:
    cells = (
        _MINE.get(mine or "", "") + circle.name,
        fmt.when(circle),
        fmt.seats(circle),
        circle.status,
        fmt.where(circle),
        circle.language,
        fmt.facilitators(circle),
        circle.course_title,
    )
    return tuple(fmt.shorten(text if text.isprintable() else text.translate(_CONTROL), width)
                 for text, width in zip(cells, _WIDTHS, strict=True))


class CircleTable(ScrollView, can_focus=True):
    """Circles, soonest first, with a row cursor. `show()` replaces the rows, keeping cursor
    and scroll; Enter (or a click on the row under the cursor) posts `RowSelected`."""

    COMPONENT_CLASSES = {"circle-table--header", "circle-table--cursor",
                         "circle-table--even-row", "circle-table--odd-row"}

    DEFAULT_CSS = """
    CircleTable {
        height: 1fr;
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .circle-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .circle-table--header { background-tint: $foreground 5%; }
        }
        & > .circle-table--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .circle-table--header { background: ansi_bright_blue; color: ansi_default; }
        & > .circle-table--even-row { background: $surface-lighten-1 50%; }
        &:dark > .circle-table--even-row { background: $surface-darken-1 40%; }
        & > .circle-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", show=False),
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
    ]

    @dataclasses.dataclass
    class RowSelected(Message):
        """The learner chose a row (Enter, or a click on the row under the cursor)."""

        table: CircleTable
        circle_id: bytes
        row: int

        @property
        def control(self) -> CircleTable:
            return self.table

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._rows: list[Row] = []
        self._widths: list[int] = [cell_len(label) for label in COLUMNS]
        self.cursor_row = 0
        #: (circle, mine) -> its cells, as formatted for an earlier show()
        self._cells: dict[tuple[CircleSummary, str | None], tuple[str, ...]] = {}
        #: (cells, style kind, scroll_x, width) -> the row's line as seen in the window
        self._lines: dict[tuple[tuple[str, ...], str, int], Strip] = {}

    # -- the rows ----------------------------------------------------------------------------
    @property
    def rows(self) -> list[Row]:
        """(circle id in hex, cells) for each row shown, in order."""
        return list(self._rows)

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def selected_id(self) -> bytes | None:
        if not 0 <= self.cursor_row < len(self._rows):
            return None
        return bytes.fromhex(self._rows[self.cursor_row][0])

    def show(self, circles: Sequence[CircleSummary], mine: dict[bytes, str]) -> None:
        """Show `circles`; the cursor stays on its circle (wherever that moved) and the scroll
        where it was."""
        if len(self._cells) > _CACHE_ROWS:
            self._cells.clear()
        rows = []
        for circle in circles:
            key = (circle, mine.get(circle.id))
            cells = self._cells.get(key)
            if cells is None:  # formatting is most of a show(): typing on mostly keeps rows
                cells = self._cells[key] = circle_row(*key)
            rows.append((circle.id.hex(), cells))
        if rows == self._rows:
            return
        keep = self.selected_id
        self._rows = rows
        widths = [max([cell_len(label)] + [cell_len(cells[i]) for _, cells in rows])
                  for i, label in enumerate(COLUMNS)]
        if widths != self._widths:
            self._widths = widths
            self._lines.clear()
        index = None
        if keep is not None:
            index = next((i for i, (key, _) in enumerate(rows) if key == keep.hex()), None)
        self.cursor_row = min(index if index is not None else self.cursor_row,
                              max(0, len(rows) - 1))
        self._resize(Size(self._table_width, len(rows) + 1))  # + the header
        self.refresh()

    def _resize(self, size: Size) -> None:
        """A new virtual size without a layout of the whole screen (the table's own size is
        set by the stylesheet): only the scrollbars follow, as ScrollView does after a layout.
        A scrollbar appearing or going does lay out again (its reactive asks for it)."""
        if size != self.virtual_size:
            self.set_reactive(CircleTable.virtual_size, size)
            self._scroll_update(size)

    @property
    def _table_width(self) -> int:
        return sum(self._widths) + 2 * len(self._widths)

    # -- rendering ---------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()  # a theme or focus change restyles every line

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            return self._line(COLUMNS, "header", scroll_x, width)
        if (index := scroll_y + y - 1) < len(self._rows):
            kind = ("cursor" if index == self.cursor_row
                    else "odd-row" if index % 2 else "even-row")
            return self._line(self._rows[index][1], kind, scroll_x, width)
        return Strip.blank(width, self.rich_style)

    def _line(self, cells: tuple[str, ...], kind: str, scroll_x: int, width: int) -> Strip:
        """A row's line as seen through the window (scroll_x, width), from the cache."""
        key = (cells, kind, scroll_x, width)
        line = self._lines.get(key)
        if line is None:
            if len(self._lines) > _CACHE_LINES:
                self._lines.clear()
            style = self.get_component_rich_style(f"circle-table--{kind}")
            text = "".join(f" {set_cell_size(cell, size)} "
                           for cell, size in zip(cells, self._widths, strict=True))
            text = set_cell_size(text + " " * max(0, scroll_x + width - len(text)),
                                 scroll_x + width)
            if scroll_x:
                text = _crop_left(text, scroll_x)
            line = self._lines[key] = Strip([Segment(text, style)], width)
        return line

    # -- the cursor --------------------------------------------------------------------------
    def move_cursor(self, row: int) -> None:
        """Put the cursor on `row` (clamped) and scroll it into view."""
        if not self._rows:
            return
        old, self.cursor_row = self.cursor_row, max(0, min(row, len(self._rows) - 1))
        if old != self.cursor_row:
            self._refresh_row(old)
            self._refresh_row(self.cursor_row)
        rows_seen = max(1, self.scrollable_content_region.height - 1)
        top = round(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + rows_seen:
            self.scroll_to(y=self.cursor_row - rows_seen + 1, animate=False, immediate=True)

    def _refresh_row(self, index: int) -> None:
        self.refresh_line(index + 1)  # line 0 is the header

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - max(1, self.scrollable_content_region.height - 2))

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + max(1, self.scrollable_content_region.height - 2))

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._rows) - 1)

    def action_select_cursor(self) -> None:
        circle_id = self.selected_id
        if circle_id is not None:
            self.post_message(self.RowSelected(self, circle_id, self.cursor_row))

    def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return  # the header or a scrollbar
        index = round(self.scroll_y) + offset.y - 1
        if index >= len(self._rows):
            return
        event.stop()
        if index == self.cursor_row:
            self.action_select_cursor()  # a click on the row under the cursor opens it
        else:
            self.move_cursor(index)


def _crop_left(text: str, cells: int) -> str:
    """`text` without its first `cells` cells (a wide character cut in two becomes a space)."""
    if len(text) == cell_len(text):  # no wide characters: cells are characters
        return text[cells:]
    start = 0
    while cell_len(text[:start]) < cells:
        start += 1
    return " " * (cell_len(text[:start]) - cells) + text[start:]
