"""The first start on a new home: a welcome that asks for a name (or is skipped), once."""

from __future__ import annotations

from textual.widgets import Input
from tui_helpers import settle

from tui.screens.welcome import WelcomeScreen


async def test_the_welcome_saves_the_name_and_is_not_shown_again(nodes, open_app):
    """Typing a name publishes the profile; the next start goes straight to the circles."""
    node = await nodes.start("new")
    async with open_app(node) as pilot:
        assert isinstance(pilot.app.screen, WelcomeScreen)
        pilot.app.screen.query_one("#name", Input).value = "Thandi"
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(pilot.app.screen, WelcomeScreen)
        assert (await node.status())["name"] == "Thandi"
        assert "Thandi" in pilot.app.status_text
    async with open_app(node) as pilot:
        assert not isinstance(pilot.app.screen, WelcomeScreen)


async def test_a_skipped_welcome_is_never_asked_again(nodes, open_app):
    """Skip writes no profile, and the welcome does not come back on the next start."""
    node = await nodes.start("new")
    async with open_app(node) as pilot:
        assert isinstance(pilot.app.screen, WelcomeScreen)
        await pilot.click("#skip")
        await settle(pilot)
        assert not isinstance(pilot.app.screen, WelcomeScreen)
    assert (await node.status())["name"] is None
    async with open_app(node) as pilot:
        assert not isinstance(pilot.app.screen, WelcomeScreen)


async def test_invalid_name_is_refused_with_the_validators_words(nodes, open_app):
    """A blank name is refused in the profile validator's words; nothing is written."""
    node = await nodes.start("new")
    async with open_app(node) as pilot:
        pilot.app.screen.query_one("#name", Input).value = "   "
        await pilot.click("#save")
        await settle(pilot)
        assert isinstance(pilot.app.screen, WelcomeScreen)
        assert "must be 1-80 characters" in str(pilot.app.screen.query_one("#error").render())
    assert (await node.status())["entries"] == 0


async def test_after_the_welcome_keys_act_rather_than_type(nodes, open_app):
    """Back from the welcome on an empty network, `a` opens the announce form (the search box
    does not take the key)."""
    from tui.screens.announce import AnnounceScreen

    node = await nodes.start("new")
    async with open_app(node) as pilot:
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(pilot.app.screen, AnnounceScreen)
