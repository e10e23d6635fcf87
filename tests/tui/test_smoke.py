"""Scratch: the app starts on fixed data."""

from scenes import network, seeded_home


async def test_starts(tmp_path, nodes, open_app, fixed_clock):
    """The app lists the fixed circles."""
    seeded_home(tmp_path / "me", "tui me")
    network(tmp_path / "me")
    node = await nodes.start("me")
    async with open_app(node) as pilot:
        print(pilot.app.screen)
        table = pilot.app.screen.query_one("#circles")
        print(table.row_count)
        pilot.app.save_screenshot("/tmp/shot.svg")
        assert table.row_count == 4
