"""The Circles screen: search as you type, each filter, the empty state, and live updates from
a second real node on loopback."""

from __future__ import annotations

from builders import circle_body
from scenes import network, seeded_home
from tui_helpers import notifications, screen_text, settle

from p2pnode import actions
from tui.screens.detail import DetailScreen
from tui.widgets.circle_table import CircleTable


def names(pilot) -> list[str]:
    table = pilot.app.screen.query_one(CircleTable)
    return [row[1][0].lstrip("◆● ") for row in table.rows] if table.display else []


async def start_with_network(tmp_path, nodes):
    seeded_home(tmp_path / "me", "tui me")
    ids = network(tmp_path / "me")
    return await nodes.start("me"), ids


async def choose(pilot, select_id: str, value) -> None:
    pilot.app.screen.query_one(f"#{select_id}").value = value
    await settle(pilot)


async def test_typing_in_search_narrows_the_table(tmp_path, nodes, open_app, fixed_clock):
    """Each keystroke narrows the list with the node's full-text search (prefixes match)."""
    node, _ = await start_with_network(tmp_path, nodes)
    async with open_app(node) as pilot:
        assert names(pilot) == ["Écrire en français", "Data Science Basics",
                                "Python for Everybody", "Linux Command Line"]
        await pilot.press("slash", *"pyth")
        await settle(pilot)
        assert names(pilot) == ["Data Science Basics", "Python for Everybody"]
        await pilot.press(*"on for")
        await settle(pilot)
        assert names(pilot) == ["Python for Everybody"]
        await pilot.press(*"xyz")
        await settle(pilot)
        assert names(pilot) == []
        assert "No circle matches" in str(pilot.app.screen.query_one("#empty").render())


async def test_each_filter_does_what_it_says(tmp_path, nodes, open_app, fixed_clock):
    """Topic, language, weekday, status and "mine" each narrow the list to what they name."""
    node, _ = await start_with_network(tmp_path, nodes)
    async with open_app(node) as pilot:
        await choose(pilot, "topic", "python")
        assert names(pilot) == ["Data Science Basics", "Python for Everybody"]
        await choose(pilot, "topic", pilot.app.screen.query_one("#topic").NULL)
        await choose(pilot, "language", "fr")
        assert names(pilot) == ["Écrire en français"]
        await choose(pilot, "language", pilot.app.screen.query_one("#language").NULL)
        await choose(pilot, "weekday", 3)  # Thursday
        assert names(pilot) == ["Linux Command Line"]
        await choose(pilot, "weekday", pilot.app.screen.query_one("#weekday").NULL)
        await choose(pilot, "status", "ended")
        assert names(pilot) == ["Intro to Statistics"]
        await choose(pilot, "status", "any")
        assert len(names(pilot)) == 5
        await choose(pilot, "status", "current")
        await pilot.press("m")
        await settle(pilot)
        assert names(pilot) == ["Data Science Basics", "Python for Everybody"]


async def test_enter_opens_the_circle_under_the_cursor(tmp_path, nodes, open_app, fixed_clock):
    """Down twice and Enter opens the third circle of the list on its own screen."""
    node, _ = await start_with_network(tmp_path, nodes)
    async with open_app(node) as pilot:
        third = pilot.app.screen.query_one(CircleTable).rows[2][0]
        await pilot.press("down", "down", "enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, DetailScreen)
        assert pilot.app.screen.circle_id.hex() == third


async def test_a_forked_author_is_marked(tmp_path, nodes, open_app, fixed_clock):
    """A circle whose author signed two entries for one seq shows the CLI's forked mark."""
    node, _ = await start_with_network(tmp_path, nodes)
    async with open_app(node) as pilot:
        table = pilot.app.screen.query_one(CircleTable)
        rows = {cells[0]: cells for _, cells in table.rows}
        assert "[FORKED FEED]" in rows["Linux Command Line"][6]
        assert "FORKED" not in rows["● Python for Everybody"][6]


async def test_empty_network_explains_how_peers_are_found(tmp_path, nodes, open_app):
    """With no circles the screen says mDNS is off, how to add a peer and how to announce."""
    node = await nodes.start("fresh", peers=["127.0.0.1:9"])
    async with open_app(node, welcome=False) as pilot:
        text = str(pilot.app.screen.query_one("#empty").render())
        assert "mDNS is off" in text
        assert "127.0.0.1:9" in text
        assert "add a peer by address" in text and "announce" in text


async def test_a_circle_announced_on_another_node_appears_live(tmp_path, nodes, open_app):
    """A second node on loopback announces; the table gains the row without a key press,
    the cursor stays on the circle it was on, and a notification names the new circle."""
    seeded_home(tmp_path / "me", "tui me")
    network(tmp_path / "me")
    me = await nodes.start("me")
    other = await nodes.start("other", peers=[me])
    await other.perform(actions.set_profile, "Zanele")
    async with open_app(me) as pilot:
        table = pilot.app.screen.query_one(CircleTable)
        await pilot.press("down", "down")
        before = table.selected_id
        await other.perform(actions.announce_circle, circle_body(
            [], name="Guitar for Beginners", start="2027-01-04", topics=["music"]))
        for _ in range(200):
            await settle(pilot)
            if "Guitar for Beginners" in names(pilot):
                break
        assert names(pilot)[0] == "Guitar for Beginners"  # it meets soonest
        assert table.selected_id == before
        assert any("New circle" in n and "Guitar for Beginners" in n
                   for n in notifications(pilot.app))


async def test_names_from_peers_are_shown_as_written_never_as_markup(tmp_path, nodes, open_app):
    """A circle named with markup-like brackets shows them literally, in the table and on its
    own screen."""
    seeded_home(tmp_path / "me", "tui me")
    node = await nodes.start("me")
    await node.perform(actions.set_profile, "Ana")
    entry = await node.perform(actions.announce_circle, circle_body(
        [], name="[b]Loud[/b] now", start="2027-01-04"))
    async with open_app(node, welcome=False) as pilot:
        assert "[b]Loud[/b] now" in screen_text(pilot.app)
        pilot.app.open_circle(entry.id)
        await settle(pilot)
        assert "[b]Loud[/b] now" in screen_text(pilot.app)


async def test_a_search_longer_than_the_box_keeps_its_end_in_view(tmp_path, nodes, open_app,
                                                                  fixed_clock):
    """The search box repaints without a layout per key, and still scrolls: at 80 columns the
    end of a 98-character search is on screen, and it narrows the table to nothing."""
    node, _ = await start_with_network(tmp_path, nodes)
    async with open_app(node, size=(80, 24)) as pilot:
        await pilot.press("slash", *("pythondatasciencebasics" * 4 + "zzzend"))
        await settle(pilot)
        search_line = screen_text(pilot.app).splitlines()[1]
        assert search_line.rstrip().endswith("zzzend")
        assert names(pilot) == []
