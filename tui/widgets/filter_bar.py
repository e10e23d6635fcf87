"""Search box and filters above the circle table: topic, language, weekday, status, mine.

Posts `FilterBar.Changed` with the whole `CircleQuery` whenever any of them changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.geometry import Size
from textual.message import Message
from textual.reactive import Reactive
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Select

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: status filter choices; "current" (upcoming or running) is what a learner looks for
STATUS_CHOICES = (("Current", "current"), ("Upcoming", "upcoming"),
                  ("Running", "running"), ("Ended", "ended"), ("Cancelled", "cancelled"),
                  ("Any status", "any"))


@dataclasses.dataclass(frozen=True)
class CircleQuery:
    """What the learner asked the table to show."""

    search: str = ""
    topic: str | None = None
    language: str | None = None
    weekday: int | None = None
    status: str = "current"
    mine: bool = False

    @property
    def filtered(self) -> bool:
        return self != CircleQuery()


class SearchInput(Input):
    """The search box. Its size is fixed by the stylesheet, so the text growing by a key needs
    a repaint, not a layout of the whole screen (Input's own virtual size asks for one: ~10 ms
    of each keystroke at 160x50, bench/app_speed.py)."""

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)


class FilterBar(Widget):
    """The search box and the filter controls."""

    DEFAULT_CSS = """
    FilterBar {
        height: auto;
        padding: 0 0;
    }
    FilterBar #search {
        width: 1fr;
        margin: 0 1;
        background: $boost;
    }
    FilterBar Horizontal {
        height: auto;
    }
    FilterBar Select {
        width: 1fr;
        min-width: 12;
        margin: 0 1;
    }
    FilterBar Checkbox {
        width: auto;
        border: none;
        padding: 0 1;
        height: 1;
    }
    """

    @dataclasses.dataclass
    class Changed(Message):
        query: CircleQuery

    def compose(self) -> ComposeResult:
        yield SearchInput(placeholder="Search circles: name, course, venue, topic…  (/)",
                          id="search", compact=True)
        with Horizontal(id="filters"):
            yield Select[str]([], prompt="Topic", id="topic", compact=True)
            yield Select[str]([], prompt="Language", id="language",
                              compact=True)
            yield Select[int]([(day, i) for i, day in enumerate(WEEKDAYS)], prompt="Weekday",
                              id="weekday", compact=True)
            yield Select[str](STATUS_CHOICES, value="current", allow_blank=False, id="status",
                              compact=True)
            yield Checkbox("Mine", id="mine")

    @property
    def query_value(self) -> CircleQuery:
        def chosen(select_id: str):
            value = self.query_one(f"#{select_id}", Select).value
            return None if value is Select.NULL else value

        return CircleQuery(
            search=self.query_one("#search", Input).value.strip(),
            topic=chosen("topic"),
            language=chosen("language"),
            weekday=chosen("weekday"),
            status=chosen("status") or "current",
            mine=self.query_one("#mine", Checkbox).value,
        )

    def offer(self, topics: Iterable[str], languages: Iterable[str]) -> None:
        """Set the topic and language choices (keeping what is chosen)."""
        for select_id, values in (("topic", topics), ("language", languages)):
            select = self.query_one(f"#{select_id}", Select)
            options = sorted(set(values) | ({select.value} - {Select.NULL}))
            if [o for o in options] != getattr(select, "_offered", None):
                current = select.value
                select.set_options((o, o) for o in options)
                select._offered = options  # type: ignore[attr-defined]
                if current is not Select.NULL:
                    select.value = current

    def toggle_mine(self) -> None:
        box = self.query_one("#mine", Checkbox)
        box.value = not box.value

    @on(Input.Changed, "#search")
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event: Message) -> None:
        event.stop()
        self.post_message(self.Changed(self.query_value))
