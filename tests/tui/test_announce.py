"""The announce form: defaults, one valid signed entry on submit, and the protocol validator's
own messages inline when input is wrong (with nothing written)."""

from __future__ import annotations

from scenes import network, seeded_home
from textual.widgets import Input, Static, TextArea
from tui_helpers import settle

from protocol.records import validate_record
from tui.screens.announce import AnnounceScreen
from tui.screens.detail import DetailScreen


async def own_entries(node) -> dict[str, int]:
    return (await node.status())["entries_by_kind"]


async def open_form(tmp_path, nodes, open_app):
    seeded_home(tmp_path / "me", "tui me")
    network(tmp_path / "me", joined=False)
    node = await nodes.start("me")
    return node, open_app(node)


def value(screen, widget_id: str) -> str:
    return screen.query_one(f"#{widget_id}", Input).value


def error_text(screen, widget_id: str) -> str:
    return str(screen.query_one(f"#{widget_id}-error", Static).render())


async def fill_required(pilot) -> None:
    screen = pilot.app.screen
    await pilot.press(*"Knitting Circle")
    screen.query_one("#description", TextArea).text = "We knit and talk."
    screen.query_one("#course-title", Input).value = "Knitting 101"
    screen.query_one("#venue-name", Input).value = "Community Hall"
    screen.query_one("#venue-city", Input).value = "Gqeberha"
    await settle(pilot)


async def test_defaults_are_what_a_learner_expects(tmp_path, nodes, open_app, fixed_clock):
    """90 minutes, 6 weekly meetings, 15 seats, this machine's zone and language."""
    _node, app = await open_form(tmp_path, nodes, open_app)
    async with app as pilot:
        await pilot.press("a")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, AnnounceScreen)
        assert (value(screen, "duration"), value(screen, "weeks"), value(screen, "capacity")) \
            == ("90", "6", "15")
        assert value(screen, "timezone") == "Africa/Johannesburg"
        assert value(screen, "language") == "en"
        assert value(screen, "start") == "2027-01-08"  # a week after the (fixed) today


async def test_announcing_writes_one_valid_signed_entry(tmp_path, nodes, open_app):
    """Publishing writes exactly one circle entry, valid by the protocol, and shows it."""
    node, app = await open_form(tmp_path, nodes, open_app)
    before = await own_entries(node)
    async with app as pilot:
        await pilot.press("a")
        await settle(pilot)
        await fill_required(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(pilot.app.screen, DetailScreen)
        after = await own_entries(node)
        assert after["circle"] == before["circle"] + 1
        assert sum(after.values()) == sum(before.values()) + 1
        found = await node.circles(search="knitting")
        assert [c.name for c in found] == ["Knitting Circle"]
        entry = node.home.store.get_entry(found[0].id)
        assert entry.author == node.node_id and entry.kind == "circle"
        entry.verify()
        validate_record("circle", entry.body())
        assert (found[0].duration_min, found[0].signup_limit) == (90, 15)
        assert len((await node.circle(found[0].id)).meetings) == 6


async def test_invalid_input_shows_the_validators_message_and_writes_nothing(
        tmp_path, nodes, open_app):
    """A wrong time, country and link each get the protocol's words under the field; a
    missing city says it is required; nothing is signed."""
    node, app = await open_form(tmp_path, nodes, open_app)
    before = await own_entries(node)
    async with app as pilot:
        await pilot.press("a")
        await settle(pilot)
        await fill_required(pilot)
        screen = pilot.app.screen
        screen.query_one("#meeting-time", Input).value = "25:00"
        screen.query_one("#venue-country", Input).value = "South Africa"
        screen.query_one("#course-link", Input).value = "ftp://example.org"
        screen.query_one("#venue-city", Input).value = ""
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(pilot.app.screen, AnnounceScreen)
        assert "must be a time HH:MM, 00:00-23:59" in error_text(screen, "meeting-time")
        assert "ISO 3166 alpha-2" in error_text(screen, "venue-country")
        assert "http or https" in error_text(screen, "course-link")
        assert "must be 1-256 characters" in error_text(screen, "venue-city")
        assert error_text(screen, "name") == ""
        assert await own_entries(node) == before
