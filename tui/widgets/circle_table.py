"""The table of circles: one row per circle, keyed by its id, refreshed in place so that the
cursor and the scroll position stay where the learner left them when rows arrive live."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from p2pnode.store.models import CircleSummary
from tui import format as fmt

#: most telling first: at 80 columns the first five fit
COLUMNS = ("Circle", "Next meeting", "Seats", "Status", "Where", "Lang", "Facilitator",
           "Course")
_WIDTHS = (24, 22, 6, 9, 24, 5, 36, 28)
_MINE = {"facilitating": "◆ ", "joined": "● "}


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
    return tuple(fmt.shorten(text, width) for text, width in zip(cells, _WIDTHS, strict=True))


def _plain(cell: str) -> Text:
    """A cell as plain text: names come from peers and are never read as markup (a str cell
    would be), which also spares the table a markup parse per cell painted."""
    return Text(cell, no_wrap=True, end="")


class CircleTable(DataTable):
    """Circles, soonest first. `show()` replaces the rows, keeping cursor and scroll."""

    DEFAULT_CSS = """
    CircleTable {
        height: 1fr;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._rows: list[tuple[str, tuple[str, ...]]] = []

    def on_mount(self) -> None:
        for label in COLUMNS:
            self.add_column(label, key=label)

    @property
    def selected_id(self) -> bytes | None:
        if not self._rows or self.cursor_row < 0 or self.cursor_row >= len(self._rows):
            return None
        return bytes.fromhex(self._rows[self.cursor_row][0])

    def show(self, circles: Sequence[CircleSummary], mine: dict[bytes, str]) -> None:
        rows = [(c.id.hex(), circle_row(c, mine.get(c.id))) for c in circles]
        if rows == self._rows:
            return
        if [key for key, _ in rows] == [key for key, _ in self._rows]:
            # same circles in the same order: change only the cells that changed
            for (key, cells), (_, old) in zip(rows, self._rows, strict=True):
                for label, new_cell, old_cell in zip(COLUMNS, cells, old, strict=True):
                    if new_cell != old_cell:
                        self.update_cell(key, label, _plain(new_cell))
            self._rows = rows
            return
        keep = self.selected_id
        scroll_x, scroll_y = self.scroll_x, self.scroll_y
        self.clear()
        for key, cells in rows:
            self.add_row(*map(_plain, cells), key=key)
        self._rows = rows
        if keep is not None:
            index = next((i for i, (key, _) in enumerate(rows) if key == keep.hex()), None)
            if index is not None:
                self.move_cursor(row=index, scroll=False)
        self.call_after_refresh(self.scroll_to, scroll_x, scroll_y, animate=False)
