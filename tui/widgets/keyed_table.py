"""A table of rows with keys (a resource's blob, a peer's id) that can be refilled in place:
`show()` replaces the rows and keeps the cursor on the same key and the scroll where it was, so
a live refresh never moves what the learner is looking at. Cells are plain text (never markup).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable


class KeyedTable(DataTable):
    """Rows ``(key, cells)`` under fixed `columns`; `selected_key` is the row under the cursor."""

    DEFAULT_CSS = """
    KeyedTable {
        height: auto;
        max-height: 1fr;
    }
    """

    def __init__(self, columns: Sequence[str], **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.labels = tuple(columns)
        self._rows: list[tuple[str, tuple[str, ...]]] = []

    def on_mount(self) -> None:
        for label in self.labels:
            self.add_column(label, key=label)

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self._rows]

    @property
    def selected_key(self) -> str | None:
        if not self._rows or not 0 <= self.cursor_row < len(self._rows):
            return None
        return self._rows[self.cursor_row][0]

    def show(self, rows: Sequence[tuple[str, Sequence[str]]]) -> None:
        new = [(key, tuple(cells)) for key, cells in rows]
        if new == self._rows:
            return
        if [key for key, _ in new] == self.keys:
            for (key, cells), (_, old) in zip(new, self._rows, strict=True):
                for label, cell, was in zip(self.labels, cells, old, strict=True):
                    if cell != was:
                        self.update_cell(key, label, Text(cell), update_width=True)
            self._rows = new
            return
        keep = self.selected_key
        scroll_x, scroll_y = self.scroll_x, self.scroll_y
        self.clear()
        for key, cells in new:
            self.add_row(*(Text(cell) for cell in cells), key=key)
        self._rows = new
        if keep in self.keys:
            self.move_cursor(row=self.keys.index(keep), animate=False)
        self.scroll_to(scroll_x, scroll_y, animate=False)
