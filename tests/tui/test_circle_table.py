"""The circle table widget (tui/widgets/circle_table.py) on its own: rows as the node lists
them, cursor and scroll kept across live changes, Enter and clicks, names shown literally,
only the visible rows rendered, and the cursor and stripes styled in light and dark themes."""

from __future__ import annotations

import hashlib

import pytest
from textual.app import App, ComposeResult
from tui_helpers import screen_text

from p2pnode.store.models import CircleSummary, Person
from tui.widgets.circle_table import CircleTable

SIZE = (80, 24)


def circle(n: int, name: str | None = None) -> CircleSummary:
    """A circle as `Node.circles()` returns it, numbered `n` (soonest first by number)."""
    ana = Person(hashlib.sha256(b"ana").digest(), "Ana")
    return CircleSummary(
        id=hashlib.sha256(f"circle {n}".encode()).digest(), name=name or f"Circle {n}",
        course_title="Python course", language="en", venue="Library", city="Nairobi",
        online=False, timezone="Africa/Nairobi", meeting_time="18:00", duration_min=90,
        start_date="2027-03-01", end_date="2027-04-05", weekday="Monday",
        next_meeting="2027-03-01", status="upcoming", seats_taken=n % 15, signup_limit=15,
        topics=("python",), facilitators=(ana,), author=ana)


class TableApp(App[None]):
    """The table alone, recording what it posts."""

    def __init__(self) -> None:
        super().__init__()
        self.selected: list[CircleTable.RowSelected] = []

    def compose(self) -> ComposeResult:
        yield CircleTable()

    def on_circle_table_row_selected(self, message: CircleTable.RowSelected) -> None:
        self.selected.append(message)


async def test_a_live_change_keeps_the_cursor_on_its_circle_and_the_scroll():
    """Rows arriving above the cursor move it with its circle; the view does not jump."""
    app = TableApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(CircleTable)
        circles = [circle(n) for n in range(200)]
        table.show(circles, {})
        await pilot.pause()
        for _ in range(60):
            await pilot.press("down")
        await pilot.pause()
        chosen, scroll = table.selected_id, table.scroll_y
        assert chosen == circles[60].id and scroll > 0
        table.show([circle(n) for n in range(1000, 1003)] + circles, {})
        await pilot.pause()
        assert table.selected_id == chosen and table.cursor_row == 63
        assert table.scroll_y == scroll
        table.show([c for c in circles if c.id != chosen], {})  # its circle went: same row
        await pilot.pause()
        assert table.cursor_row == 63 and table.scroll_y == scroll


async def test_enter_and_a_click_on_the_cursor_row_select_it():
    """Enter selects the row under the cursor; a click moves the cursor, a second opens."""
    app = TableApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(CircleTable)
        circles = [circle(n) for n in range(30)]
        table.show(circles, {})
        table.focus()
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert [m.circle_id for m in app.selected] == [circles[2].id]
        await pilot.click(CircleTable, offset=(5, 6))  # line 0 is the header: row 5
        await pilot.pause()
        assert table.cursor_row == 5 and len(app.selected) == 1
        await pilot.click(CircleTable, offset=(5, 6))
        await pilot.pause()
        assert [m.circle_id for m in app.selected] == [circles[2].id, circles[5].id]
        await pilot.click(CircleTable, offset=(5, 0))  # the header selects nothing
        await pilot.pause()
        assert table.cursor_row == 5 and len(app.selected) == 2


async def test_a_name_with_markup_or_control_characters_is_shown_as_written():
    """Rich markup in a peer's circle name is shown literally; control characters as spaces."""
    app = TableApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(CircleTable)
        table.show([circle(1, "[b]Loud[/b] [red]x"), circle(2, "Bell\x07\x1b[2Jnow")], {})
        await pilot.pause()
        text = screen_text(app)
        assert "[b]Loud[/b] [red]x" in text
        assert "Bell  [2Jnow" in text


async def test_ten_thousand_rows_render_only_the_lines_on_screen():
    """show() of 10 000 circles renders the visible lines, not the rows (and scrolling to the
    end renders that screenful)."""
    app = TableApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(CircleTable)
        rendered: list[int] = []
        render_line = table.render_line

        def counted(y: int):
            rendered.append(y)
            return render_line(y)

        built: list[str] = []
        line = table._line

        def counted_rows(cells, *args):
            built.append(cells[0])
            return line(cells, *args)

        table.render_line = counted  # type: ignore[method-assign]
        table._line = counted_rows  # type: ignore[method-assign]
        await pilot.pause()
        rendered.clear()
        table.show([circle(n) for n in range(10_000)], {})
        await pilot.pause()
        assert table.row_count == 10_000
        assert 0 < len(rendered) <= 2 * SIZE[1] and len(set(built)) <= SIZE[1]
        rendered.clear()
        built.clear()
        await pilot.press("end")
        await pilot.pause()
        assert 0 < len(rendered) <= 2 * SIZE[1] and len(set(built)) <= SIZE[1]
        assert "Circle 9999" in screen_text(app)


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
async def test_the_cursor_and_the_stripes_stand_out_in_both_themes(theme):
    """The cursor row, even rows and odd rows each have their own background, and the header
    is bold, in the dark and the light theme."""
    app = TableApp()
    app.theme = theme
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(CircleTable)
        table.show([circle(n) for n in range(5)], {})
        table.focus()
        await pilot.press("down")
        await pilot.pause()

        def background(y: int):
            return table.render_line(y)._segments[0].style.bgcolor

        header = table.render_line(0)._segments[0].style
        cursor, even, odd = background(2), background(3), background(4)
        assert header.bold
        assert len({cursor, even, odd}) == 3
