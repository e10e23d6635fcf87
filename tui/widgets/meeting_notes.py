"""What meeting mode writes down: who came (attendance, ticked off against who was expected),
and the plus/delta, typed one item a line into two columns.

The widgets draw what the screen gives them and post what the facilitator did as messages; the
screen turns those into transitions of the draft (so the draft stays the one truth, saved on
every change).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.markup import escape
from textual.message import Message
from textual.widgets import Input, OptionList, SelectionList, Static
from textual.widgets.selection_list import Selection

from p2pnode.meeting import MAX_ITEM_LENGTH

COLUMN_TITLES = {"plus": "[b]Plus[/b] — what worked", "delta": "[b]Delta[/b] — what to change"}
_RSVP_MARK = {True: "said yes", False: "said no", None: ""}


class Attendance(Vertical):
    """Who was expected (accepted learners, and anyone who RSVP'd yes) with a box each to tick
    who came; a name typed below adds someone who came without signing up."""

    DEFAULT_CSS = """
    Attendance { width: 1fr; height: 1fr; border: round $panel; }
    Attendance:focus-within { border: round $accent; }
    Attendance #attendance-title { height: auto; padding: 0 1; }
    Attendance SelectionList { height: 1fr; border: none; padding: 0; }
    Attendance Input { height: 1; border: none; }
    """

    @dataclasses.dataclass
    class Toggled(Message):
        who: str
        present: bool

    def compose(self) -> ComposeResult:
        yield Static(id="attendance-title")
        yield SelectionList[str](id="attendance-list", compact=True)
        yield Input(placeholder="someone else came? name + Enter", id="walk-in", compact=True,
                    max_length=128)

    def show(self, roster: list[dict[str, Any]], present: tuple[str, ...]) -> None:
        """Rebuild the list (keeping the highlighted row) for `roster` and who is ticked."""
        listed = self.query_one("#attendance-list", SelectionList)
        highlighted = listed.highlighted
        known = {p["key"] for p in roster}
        rows = [(p["name"], _RSVP_MARK[p["rsvp"]], p["key"]) for p in roster]
        rows += [(who, "came along", who) for who in present if who not in known]
        listed.clear_options()
        # names come from peers (and walk-ins are typed): never read as markup
        listed.add_options([Selection(escape(name) + (f"  [dim]{mark}[/dim]" if mark else ""),
                                      key, key in present) for name, mark, key in rows])
        if rows:  # a row is highlighted from the start: space ticks it at once
            listed.highlighted = min(highlighted or 0, len(rows) - 1)
        expected = sum(1 for p in roster if p["rsvp"] is True)
        title = f"[b]Came[/b] {len(present)}" + (f" · said yes {expected}" if expected else "")
        if not rows:
            title += ("\n[dim]Nobody has signed up or said yes yet: type the name of each "
                      "person who came below.[/dim]")
        self.query_one("#attendance-title", Static).update(title)

    @on(SelectionList.SelectionToggled)
    def _toggled(self, event: SelectionList.SelectionToggled) -> None:
        event.stop()
        value = event.selection.value
        self.post_message(self.Toggled(value, value in event.selection_list.selected))

    @on(Input.Submitted, "#walk-in")
    def _walk_in(self, event: Input.Submitted) -> None:
        event.stop()
        name = event.value.strip()
        if name:
            event.input.value = ""
            self.post_message(self.Toggled(name, True))


class ItemColumn(Vertical):
    """One column of the plus/delta: the items so far, and an input that adds one on Enter.
    Delete (or backspace) on a highlighted item removes it."""

    DEFAULT_CSS = """
    ItemColumn { width: 1fr; height: 1fr; border: round $panel; }
    ItemColumn:focus-within { border: round $accent; }
    ItemColumn.-active { border: round $success; }
    ItemColumn .column-title { height: 1; padding: 0 1; }
    ItemColumn OptionList { height: 1fr; border: none; padding: 0; }
    ItemColumn Input { height: 1; border: none; }
    """

    BINDINGS = [Binding("delete,backspace", "remove", "Remove item")]

    @dataclasses.dataclass
    class Added(Message):
        column: str
        text: str

    @dataclasses.dataclass
    class Removed(Message):
        column: str
        index: int

    def __init__(self, column: str, **kwargs: Any) -> None:
        super().__init__(id=f"{column}-column", **kwargs)
        self.column = column

    def compose(self) -> ComposeResult:
        yield Static(COLUMN_TITLES[self.column], classes="column-title")
        yield OptionList(id=f"{self.column}-items", compact=True)
        yield Input(placeholder=f"a {self.column} item + Enter", id=f"{self.column}-input",
                    compact=True, max_length=MAX_ITEM_LENGTH)

    def show(self, items: tuple[str, ...]) -> None:
        listed = self.query_one(OptionList)
        highlighted = listed.highlighted
        listed.clear_options()
        listed.add_options([f"{'+' if self.column == 'plus' else 'Δ'} {item}"
                            for item in items])
        if items:
            listed.highlighted = min(highlighted if highlighted is not None
                                     else len(items) - 1, len(items) - 1)

    @on(Input.Submitted)
    def _add(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():  # the screen empties the input once the item is kept
            self.post_message(self.Added(self.column, event.value))

    def action_remove(self) -> None:
        listed = self.query_one(OptionList)
        if listed.has_focus and listed.highlighted is not None:
            self.post_message(self.Removed(self.column, listed.highlighted))
